"""Standard Webhooks events to canonical payment events, when they follow the canonical payload
convention of :mod:`consumers.normalize.canonical_payload` (``{"type", "timestamp", "data"}``)."""

from __future__ import annotations

from consumers.normalize import canonical_payload
from schemas.envelope import Envelope
from schemas.event import PaymentEvent

PROVIDER = "standard"


def normalize(envelope: Envelope) -> PaymentEvent | None:
    return canonical_payload.normalize(envelope, PROVIDER)
