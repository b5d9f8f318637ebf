"""Per-provider normalisers: a verified provider event to a canonical payment event, or None.

``None`` means the provider event maps to no canonical type: it is counted and stays on
``webhooks.raw``. A payload that should map but cannot be read raises NormalizeError (poison).
"""

from __future__ import annotations

from collections.abc import Callable

from consumers.errors import NormalizeError
from consumers.normalize import stripe
from schemas.envelope import Envelope
from schemas.event import PaymentEvent

Normalizer = Callable[[Envelope], PaymentEvent | None]

NORMALIZERS: dict[str, Normalizer] = {"stripe": stripe.normalize}


def normalize(envelope: Envelope) -> PaymentEvent | None:
    normalizer = NORMALIZERS.get(envelope.provider)
    if normalizer is None:
        raise NormalizeError(f"no normaliser for provider {envelope.provider!r}")
    try:
        return normalizer(envelope)
    except (ValueError, TypeError) as exc:  # a canonical value refused the provider's data
        raise NormalizeError(str(exc)) from None
