"""GoCardless: ``Webhook-Signature`` over a batch of events, and its signer.

Facts (PSP_NOTES, ``gocardless_pro.webhooks.parse``): HMAC-SHA256, lower-case hex, of the raw body,
keyed with the endpoint's webhook secret as UTF-8. The body is ``{"events": [...], "meta": ...}``:
one signature covers the whole batch, so the batch is accepted or refused as a whole; an event
the receiver cannot identify makes the entire request malformed. Nothing time-bound is signed:
replays are caught by deduplication on each event's ``id``.

Each event becomes its own :class:`ProviderEvent`: ``id`` (``EV...``), type
``{resource_type}.{action}`` (``payments.confirmed``), payment reference ``links.payment``
(``PM...``, absent on mandate, payout and other events). GoCardless events carry no amounts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from ingest.errors import MalformedRequest, VerificationFailed
from ingest.schemes import ProviderEvent, RawRequest, Verified, signing
from ingest.schemes.json_body import dig, json_object, text
from ingest.schemes.options import Options, key_ring
from payhooks.config import EndpointSettings

HEADER = "webhook-signature"
PROVIDER = "gocardless"
OPTIONS: frozenset[str] = frozenset()

#: hex of a 32-byte digest (GoCardless sends lower case; other cases simply do not match)
_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")


def signature(body: bytes, secret: str) -> str:
    """The ``Webhook-Signature`` GoCardless sends for ``body``."""
    return signing.hmac_hex(secret.encode(), body).decode("ascii")


@dataclass(frozen=True, slots=True)
class GoCardlessScheme:
    keys: tuple[bytes, ...]
    provider: str = PROVIDER
    content_types: frozenset[str] = frozenset({"application/json"})
    success_body: bytes = b'{"received":true}'
    success_media_type: str = "application/json"

    @classmethod
    def from_settings(cls, endpoint: EndpointSettings) -> GoCardlessScheme:
        Options(endpoint, OPTIONS)
        return cls(keys=key_ring(endpoint))

    async def verify(self, request: RawRequest, now: float) -> Verified:
        candidate = _parse_header(request.headers.get(HEADER))
        expected = (signing.hmac_hex(key, request.body) for key in self.keys)
        key_index = signing.first_match(expected, [candidate])
        if key_index is None:
            raise VerificationFailed("signature_mismatch", "no signature matches a key of the ring")
        return Verified(key_index=key_index, events=split(request.body))


def split(body: bytes) -> tuple[ProviderEvent, ...]:
    """Every event of an (authentic) batch, in order; MalformedRequest if any is unreadable."""
    what = 'a GoCardless {"events": [...]} batch'
    events = json_object(body, what).get("events")
    if not isinstance(events, list):
        raise MalformedRequest(f"body is not {what}")
    if not events:
        raise MalformedRequest("GoCardless batch carries no events")
    return tuple(_event(event, position) for position, event in enumerate(events))


def _event(event: Any, position: int) -> ProviderEvent:
    if not isinstance(event, dict):
        raise MalformedRequest(f"GoCardless batch item {position} is not an event object")
    event_id = text(event.get("id"))
    resource_type, action = event.get("resource_type"), event.get("action")
    if event_id is None:
        raise MalformedRequest(f"GoCardless batch item {position} lacks an id")
    if not isinstance(resource_type, str) or not resource_type or not isinstance(action, str):
        raise MalformedRequest(f"GoCardless batch item {position} lacks resource_type or action")
    return ProviderEvent(
        event_id=event_id,
        event_type=f"{resource_type}.{action}",
        payment_ref=payment_ref(event),
        payload=orjson.dumps(event),
    )


def payment_ref(event: Mapping[str, Any]) -> str | None:
    """The payment (``PM...``) a GoCardless event links to, or None when it names none."""
    return text(dig(event, "links", "payment"))


def _parse_header(value: str | None) -> bytes:
    if not value:
        raise VerificationFailed("missing_header", "Webhook-Signature is missing")
    if not _SIGNATURE.fullmatch(value):
        raise VerificationFailed(
            "malformed_header", "Webhook-Signature is not a hex SHA-256 digest"
        )
    return value.encode("ascii")
