"""Stripe: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]`` over ``"{t}." + body``, and its signer.

Facts (PSP_NOTES): HMAC-SHA256, hex, keyed with the whole ``whsec_...`` string as UTF-8 (not
decoded); several ``v1`` entries during a rotation; timestamps checked both ways (Stripe's SDK only
rejects old ones). The payment reference is the PaymentIntent: ``data.object.id`` on
``payment_intent.*`` events, ``data.object.payment_intent`` on charges, refunds and disputes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ingest.errors import MalformedRequest, VerificationFailed
from ingest.schemes import ProviderEvent, RawRequest, Verified, signing
from ingest.schemes.json_body import dig, json_object, text
from ingest.schemes.options import Options, key_ring
from payhooks.config import EndpointSettings

HEADER = "stripe-signature"
PROVIDER = "stripe"
OPTIONS: frozenset[str] = frozenset()


def signature_header(body: bytes, secrets: Sequence[str], timestamp: int) -> str:
    """The ``Stripe-Signature`` Stripe would send, one ``v1`` per secret (as in a rotation)."""
    signed = f"{timestamp}.".encode() + body
    v1 = [f"v1={signing.hmac_hex(s.encode(), signed).decode()}" for s in secrets]
    return ",".join([f"t={timestamp}", *v1])


@dataclass(frozen=True, slots=True)
class StripeScheme:
    keys: tuple[bytes, ...]
    tolerance_seconds: int = 300
    provider: str = PROVIDER
    content_types: frozenset[str] = frozenset({"application/json"})
    success_body: bytes = b'{"received":true}'
    success_media_type: str = "application/json"

    @classmethod
    def from_settings(cls, endpoint: EndpointSettings) -> StripeScheme:
        Options(endpoint, OPTIONS)
        return cls(
            keys=key_ring(endpoint),
            tolerance_seconds=endpoint.tolerance_seconds,
        )

    async def verify(self, request: RawRequest, now: float) -> Verified:
        timestamp, candidates = _parse_header(request.headers.get(HEADER))
        key_index = self._matching_key(timestamp, candidates, request.body)
        age = now - timestamp
        if age > self.tolerance_seconds:
            raise VerificationFailed("timestamp_too_old", "signature timestamp is too old")
        if -age > self.tolerance_seconds:
            raise VerificationFailed("timestamp_in_future", "signature timestamp is in the future")
        return Verified(key_index=key_index, events=(_event(request.body),))

    def _matching_key(self, timestamp: int, candidates: Sequence[bytes], body: bytes) -> int:
        signed = b"%d." % timestamp + body
        index = signing.first_match((signing.hmac_hex(k, signed) for k in self.keys), candidates)
        if index is None:
            raise VerificationFailed("signature_mismatch", "no signature matches a key of the ring")
        return index


def _parse_header(value: str | None) -> tuple[int, list[bytes]]:
    if not value:
        raise VerificationFailed("missing_header", "Stripe-Signature header is missing")
    timestamp: int | None = None
    candidates: list[bytes] = []
    for item in value.split(","):
        name, sep, content = item.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            if not (content.isascii() and content.isdigit()) or len(content) > 12:
                raise VerificationFailed("malformed_header", "Stripe-Signature has a bad timestamp")
            timestamp = int(content)
        elif name == "v1":
            # bytes for compare_digest: str with non-ASCII characters would raise TypeError
            candidates.append(signing.header_bytes(content))
    if timestamp is None:
        raise VerificationFailed("malformed_header", "Stripe-Signature has no timestamp")
    if not candidates:
        raise VerificationFailed("malformed_header", "Stripe-Signature has no v1 signature")
    return timestamp, candidates


def _event(body: bytes) -> ProviderEvent:
    event = json_object(body, "a Stripe event object")
    event_id, event_type = text(event.get("id")), event.get("type")
    if event_id is None or not isinstance(event_type, str):
        raise MalformedRequest("Stripe event lacks id or type")
    return ProviderEvent(
        event_id=event_id,
        event_type=event_type,
        payment_ref=payment_ref(event),
        payload=body,
    )


def payment_ref(event: dict[str, Any]) -> str | None:
    """The PaymentIntent id a Stripe event is about, or None when it names none."""
    obj = dig(event, "data", "object")
    if not isinstance(obj, dict):
        return None
    return text(obj.get("id") if obj.get("object") == "payment_intent"
                else obj.get("payment_intent"))
