"""Mollie next-gen webhooks: ``X-Mollie-Signature: sha256=<hex>`` over the body, and the signer.

Facts (PSP_NOTES, mollie-api-py's ``SignatureValidator``): HMAC-SHA256, lower-case hex, of the raw
body, keyed with the webhook's signing secret as UTF-8. For 24 hours after the secret is rotated
each delivery carries **two** ``X-Mollie-Signature`` header lines, one per secret; proxies and
clients may fold them into one comma-separated value, so both forms are read and any value may
match any key of the ring. Mollie's classic webhooks (a form body ``id=tr_...``) sign nothing and
are not accepted here. Nothing time-bound is signed: replays are caught by deduplication on the
event id.

The body is one event: ``id`` (``event_...``), ``type`` (``payment.paid``, ``refund.refunded``,
``payment-link.paid``, ...), ``entityId``, ``createdAt`` and, with full payloads,
``_embedded.entity`` (a snapshot; amounts are decimal strings in major units). The payment
reference is ``entityId`` when the entity is a payment (``tr_...``), else the snapshot's
``paymentId`` (refunds, chargebacks, captures), else none.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Headers

from ingest.errors import MalformedRequest, VerificationFailed
from ingest.schemes import ProviderEvent, RawRequest, Verified, signing
from ingest.schemes.json_body import dig, json_object, text
from ingest.schemes.options import Options, key_ring
from payhooks.config import EndpointSettings

HEADER = "x-mollie-signature"
PROVIDER = "mollie"
OPTIONS: frozenset[str] = frozenset()
PREFIX = "sha256="

#: one signature value: the prefix and the hex of a 32-byte digest
_SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")


def signature(body: bytes, secret: str) -> str:
    """One ``X-Mollie-Signature`` value Mollie sends for ``body``: ``sha256=<hex>``."""
    return PREFIX + signing.hmac_hex(secret.encode(), body).decode("ascii")


def signatures(body: bytes, secrets: Sequence[str]) -> list[str]:
    """The header values of a delivery signed with every secret (two during a rotation)."""
    return [signature(body, secret) for secret in secrets]


@dataclass(frozen=True, slots=True)
class MollieScheme:
    keys: tuple[bytes, ...]
    provider: str = PROVIDER
    content_types: frozenset[str] = frozenset({"application/json"})
    success_body: bytes = b'{"received":true}'
    success_media_type: str = "application/json"

    @classmethod
    def from_settings(cls, endpoint: EndpointSettings) -> MollieScheme:
        Options(endpoint, OPTIONS)
        return cls(keys=key_ring(endpoint))

    async def verify(self, request: RawRequest, now: float) -> Verified:
        candidates = _parse_headers(_header_lines(request.headers))
        expected = (signing.hmac_hex(key, request.body) for key in self.keys)
        key_index = signing.first_match(expected, candidates)
        if key_index is None:
            raise VerificationFailed("signature_mismatch", "no signature matches a key of the ring")
        return Verified(key_index=key_index, events=(_event(request.body),))


def _header_lines(headers: Mapping[str, str]) -> list[str]:
    """Every ``X-Mollie-Signature`` line (a plain mapping can only hold one, maybe folded)."""
    if isinstance(headers, Headers):
        return headers.getlist(HEADER)
    value = headers.get(HEADER)
    return [] if value is None else [value]


def _parse_headers(lines: Sequence[str]) -> list[bytes]:
    values = [value.strip() for line in lines for value in line.split(",")]
    if not any(values):
        raise VerificationFailed("missing_header", "X-Mollie-Signature is missing")
    candidates = []
    for value in values:
        match = _SIGNATURE.fullmatch(value)
        if match:
            candidates.append(match.group(1).encode("ascii"))
    if not candidates:
        raise VerificationFailed("malformed_header", "X-Mollie-Signature holds no sha256= value")
    return candidates


def _event(body: bytes) -> ProviderEvent:
    event = json_object(body, "a Mollie next-gen event object")
    event_id, event_type = text(event.get("id")), text(event.get("type"))
    if event_id is None:
        raise MalformedRequest("Mollie event lacks id")
    if event_type is None:
        raise MalformedRequest("Mollie event lacks type")
    return ProviderEvent(
        event_id=event_id, event_type=event_type, payment_ref=payment_ref(event), payload=body
    )


def payment_ref(event: Mapping[str, Any]) -> str | None:
    """The Payment id (``tr_...``) a Mollie event is about, or None when it names none."""
    entity_id, event_type = event.get("entityId"), event.get("type")
    is_payment = str(event_type).startswith("payment.") or str(entity_id).startswith("tr_")
    if is_payment and isinstance(entity_id, str) and entity_id:
        return entity_id
    return text(dig(event, "_embedded", "entity", "paymentId"))
