"""Razorpay: ``X-Razorpay-Signature`` over the body, the event id in a header, and the signer.

Facts (PSP_NOTES, ``razorpay.Utility.verify_webhook_signature``): HMAC-SHA256, lower-case hex, of
the raw body, keyed with the webhook secret as UTF-8. The body carries no event id: Razorpay sends
it in ``X-Razorpay-Event-Id``, which is *not* covered by the signature, so it is held to a strict
token format before it becomes a Kafka header and a dedupe key. Nothing time-bound is signed:
replays are caught by deduplication on that id (and running totals make a re-sent body harmless).

Type is the body's ``event``. The payment reference is the Payment id: ``payload.refund.entity.
payment_id`` on ``refund.*``, ``payload.dispute.entity.payment_id`` on ``payment.dispute.*``,
``payload.payment.entity.id`` otherwise (and as the fallback: refund and dispute events embed the
payment too).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ingest.errors import MalformedRequest, VerificationFailed
from ingest.schemes import ProviderEvent, RawRequest, Verified, signing
from ingest.schemes.json_body import dig, json_object, text
from ingest.schemes.options import Options, key_ring
from payhooks.config import EndpointSettings

HEADER = "x-razorpay-signature"
EVENT_ID_HEADER = "x-razorpay-event-id"
PROVIDER = "razorpay"
OPTIONS: frozenset[str] = frozenset()

#: hex of a 32-byte digest (Razorpay sends lower case; other cases simply do not match)
_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")
#: Razorpay's event ids are short alphanumeric tokens (``Ovpqyvyd6XtVBT``); leave room, not abuse
_EVENT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def signature(body: bytes, secret: str) -> str:
    """The ``X-Razorpay-Signature`` Razorpay sends for ``body``."""
    return signing.hmac_hex(secret.encode(), body).decode("ascii")


@dataclass(frozen=True, slots=True)
class RazorpayScheme:
    keys: tuple[bytes, ...]
    provider: str = PROVIDER
    content_types: frozenset[str] = frozenset({"application/json"})
    success_body: bytes = b'{"received":true}'
    success_media_type: str = "application/json"

    @classmethod
    def from_settings(cls, endpoint: EndpointSettings) -> RazorpayScheme:
        Options(endpoint, OPTIONS)
        return cls(keys=key_ring(endpoint))

    async def verify(self, request: RawRequest, now: float) -> Verified:
        candidate = _parse_signature(request.headers.get(HEADER))
        event_id = _parse_event_id(request.headers.get(EVENT_ID_HEADER))
        expected = (signing.hmac_hex(key, request.body) for key in self.keys)
        key_index = signing.first_match(expected, [candidate])
        if key_index is None:
            raise VerificationFailed("signature_mismatch", "no signature matches a key of the ring")
        return Verified(key_index=key_index, events=(_event(request.body, event_id),))


def _parse_signature(value: str | None) -> bytes:
    if not value:
        raise VerificationFailed("missing_header", "X-Razorpay-Signature is missing")
    if not _SIGNATURE.fullmatch(value):
        raise VerificationFailed(
            "malformed_header", "X-Razorpay-Signature is not a hex SHA-256 digest"
        )
    return value.encode("ascii")


def _parse_event_id(value: str | None) -> str:
    if not value:
        raise VerificationFailed("missing_header", "X-Razorpay-Event-Id is missing")
    if not _EVENT_ID.fullmatch(value):
        raise VerificationFailed("malformed_header", "X-Razorpay-Event-Id is not an event id")
    return value


def _event(body: bytes, event_id: str) -> ProviderEvent:
    event = json_object(body, "a Razorpay event object")
    event_type = text(event.get("event"))
    if event_type is None:
        raise MalformedRequest("Razorpay event lacks event")
    return ProviderEvent(
        event_id=event_id, event_type=event_type, payment_ref=payment_ref(event), payload=body
    )


def payment_ref(event: Mapping[str, Any]) -> str | None:
    """The Payment id (``pay_...``) a Razorpay event is about, or None when it names none."""
    event_type = event.get("event")
    payload = event.get("payload")
    if not isinstance(event_type, str) or not isinstance(payload, dict):
        return None
    ref = None
    if event_type.startswith("refund."):
        ref = text(dig(payload, "refund", "entity", "payment_id"))
    elif event_type.startswith("payment.dispute."):
        ref = text(dig(payload, "dispute", "entity", "payment_id"))
    return ref or text(dig(payload, "payment", "entity", "id"))
