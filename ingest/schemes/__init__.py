"""Provider schemes: how each PSP signs a delivery and what events it carries, one module each.

A scheme is built from an endpoint's settings and exposes one pure method, ``verify``, that takes
the raw request and the current time and returns the verified events, or raises
:class:`ingest.errors.VerificationFailed` (401) or :class:`ingest.errors.MalformedRequest` (400).
Nothing is parsed before the signature holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

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

    def verify(self, request: RawRequest, now: float) -> Verified: ...


SchemeFactory = Callable[[EndpointSettings], Scheme]


def build_scheme(endpoint: EndpointSettings) -> Scheme:
    """The scheme of one configured endpoint; a provider not built yet is a ConfigError."""
    from ingest.schemes import stripe  # noqa: PLC0415  (the table grows one import per provider)

    factories: dict[str, SchemeFactory] = {"stripe": stripe.StripeScheme.from_settings}
    factory = factories.get(endpoint.provider)
    if factory is None:
        raise ConfigError(
            f"endpoints.{endpoint.name}.provider",
            f"provider {endpoint.provider!r} is not supported by this receiver yet "
            f"(supported: {', '.join(sorted(factories))})",
        )
    return factory(endpoint)
