"""Per-provider normalisers: a verified provider event to a canonical payment event, or None.

Each ``consumers.normalize.<provider>`` module has ``normalize(envelope) -> PaymentEvent | None``.
``None`` means the provider event maps to no canonical type: it is counted and stays on
``webhooks.raw``. A payload that should map but cannot be read raises NormalizeError (poison).
Normalisers are pure: the same envelope always gives the same canonical event.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable

from consumers.errors import NormalizeError
from schemas.envelope import Envelope
from schemas.event import PaymentEvent

Normalizer = Callable[[Envelope], PaymentEvent | None]

#: providers with a normaliser module
PROVIDERS = ("stripe", "adyen", "braintree", "checkout", "paypal", "square", "gocardless",
             "razorpay", "mollie", "standard", "hmac")


@functools.cache
def normalizer(provider: str) -> Normalizer:
    if provider not in PROVIDERS:
        raise NormalizeError(f"no normaliser for provider {provider!r}")
    try:
        module = importlib.import_module(f"consumers.normalize.{provider}")
    except ModuleNotFoundError:
        raise NormalizeError(f"no normaliser for provider {provider!r} yet") from None
    function: Normalizer = module.normalize
    return function


def normalize(envelope: Envelope) -> PaymentEvent | None:
    try:
        return normalizer(envelope.provider)(envelope)
    except (ValueError, TypeError) as exc:  # a canonical value refused the provider's data
        raise NormalizeError(str(exc)) from None
