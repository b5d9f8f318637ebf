"""Provider schemes: how each PSP signs a delivery and what events it carries, one module each.

A scheme is built from an endpoint's settings (``from_settings``, which raises ConfigError naming
the key) and exposes ``verify``: it takes the raw request and the current time and returns the
verified events, or raises :class:`ingest.errors.VerificationFailed` (401) or
:class:`ingest.errors.MalformedRequest` (400). Nothing is parsed before the signature holds (Adyen,
which signs parsed fields, is the documented exception). ``verify`` is a coroutine only so that a
scheme can fetch key material (PayPal's certificate); the checks themselves are pure functions.

HTTP Basic auth is not a scheme's business: when an endpoint configures ``basic_auth``,
:func:`build_scheme` puts a :class:`~ingest.schemes.basic_auth.BasicAuthGuard` in front of its
scheme, which checks the credentials before the scheme sees the request, for every provider.

Each provider module also holds the signer of its scheme: tests, the simulator and the benchmarks
sign with the same code the receiver verifies with.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from ingest.schemes.basic_auth import guarded
from payhooks.config import ConfigError, EndpointSettings


@dataclass(frozen=True, slots=True)
class RawRequest:
    """What the route hands a scheme: the body exactly as received and the headers."""

    body: bytes
    headers: Mapping[str, str]  # case-insensitive (starlette's Headers) or lower-case keys


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """One provider event of a verified delivery, before it becomes an envelope."""

    event_id: str
    event_type: str
    payment_ref: str | None  # the payment the event is about, when it names one
    payload: bytes  # the event as received (the whole body for single-event deliveries)


@dataclass(frozen=True, slots=True)
class Verified:
    """A delivery whose signature held: which key of the ring matched and what it carries."""

    key_index: int
    events: tuple[ProviderEvent, ...]


class Scheme(Protocol):
    @property
    def provider(self) -> str: ...
    @property
    def content_types(self) -> frozenset[str]:
        """Accepted media types, without parameters."""
    @property
    def success_body(self) -> bytes:
        """What the provider expects in a 200."""
    @property
    def success_media_type(self) -> str: ...

    async def verify(self, request: RawRequest, now: float) -> Verified: ...


#: provider -> "module:class" of its scheme; each class has ``from_settings(endpoint)``
SCHEMES: dict[str, str] = {
    "stripe": "ingest.schemes.stripe:StripeScheme",
    "adyen": "ingest.schemes.adyen:AdyenScheme",
    "braintree": "ingest.schemes.braintree:BraintreeScheme",
    "paypal": "ingest.schemes.paypal:PayPalScheme",
    "checkout": "ingest.schemes.checkout:CheckoutScheme",
    "square": "ingest.schemes.square:SquareScheme",
    "gocardless": "ingest.schemes.gocardless:GoCardlessScheme",
    "razorpay": "ingest.schemes.razorpay:RazorpayScheme",
    "mollie": "ingest.schemes.mollie:MollieScheme",
    "standard": "ingest.schemes.standard:StandardScheme",
    "hmac": "ingest.schemes.generic_hmac:GenericHmacScheme",
}


def build_scheme(endpoint: EndpointSettings) -> Scheme:
    """The scheme of one configured endpoint, behind its Basic auth when it configures one;
    settings it cannot use are a ConfigError."""
    target = SCHEMES.get(endpoint.provider)
    key = f"endpoints.{endpoint.name}.provider"
    if target is None:
        raise ConfigError(key, f"unknown provider {endpoint.provider!r}")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        raise ConfigError(
            key, f"provider {endpoint.provider!r} is not supported by this receiver yet"
        ) from None
    factory: Callable[[EndpointSettings], Scheme] = getattr(module, class_name).from_settings
    return guarded(endpoint, factory(endpoint))
