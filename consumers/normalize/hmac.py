"""Generic HMAC senders' events to canonical payment events, when they follow the canonical payload
convention of :mod:`consumers.normalize.canonical_payload` (the type from the endpoint's
``event_type_header`` or ``event_type_field``, ``data`` in the body).

Named for the provider, ``hmac``: imports are absolute everywhere, so ``import hmac`` still means
the standard library, in this package as anywhere else.
"""

from __future__ import annotations

from consumers.normalize import canonical_payload
from schemas.envelope import Envelope
from schemas.event import PaymentEvent

PROVIDER = "hmac"


def normalize(envelope: Envelope) -> PaymentEvent | None:
    return canonical_payload.normalize(envelope, PROVIDER)
