"""Standard Webhooks (and Svix): ``webhook-id``, ``-timestamp``, ``-signature`` over
``"{id}.{timestamp}." + body``, with ``v1`` HMAC and ``v1a`` Ed25519 signatures, and their signers.

Facts (https://www.standardwebhooks.com, reference library ``standardwebhooks``):

- the three headers come as ``webhook-*`` or, from Svix, ``svix-*``; one complete set is used
  (``webhook-*`` first), never a mix of the two;
- ``webhook-signature`` is a space-separated list of ``<version>,<base64>`` entries, several during
  a rotation; ``v1`` is HMAC-SHA256 keyed with the **base64-decoded** ``whsec_`` secret (unlike
  Stripe), ``v1a`` is Ed25519, checked with a ``whpk_`` public key. A ring may mix both kinds; each
  key checks only its own version's entries, other versions are ignored, and a header with no
  entry a key can check is a mismatch. ``whsk_`` private keys belong to senders (the simulator's
  ``sim_signing_key``), never in a receiver's ring;
- ``webhook-timestamp`` is integer unix seconds, within ``tolerance_seconds`` both ways.

The event id is ``webhook-id`` (the spec's idempotency key). The event type is the JSON body's
``type`` (the spec's payload convention ``{"type", "timestamp", "data"}``); the convention is only a
recommendation, so a body without it is kept with type ``""``, while a body that is not a JSON
object is malformed (only ``application/json`` is accepted). The payment reference is read from the
dotted JSON path of option ``payment_ref_field``, by default ``data.payment_id`` (the canonical
payload convention, docs/providers.md), so a payment's events share one partition; an event with
nothing at that path names no payment and its partition key falls back to the event id. Basic
auth, when the endpoint configures it, is checked before all of this (``build_scheme``).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from ingest.errors import VerificationFailed
from ingest.schemes import ProviderEvent, RawRequest, Verified, signing
from ingest.schemes.json_body import json_object, value_at
from ingest.schemes.options import Options, parsed_key_ring
from payhooks.config import EndpointSettings

PROVIDER = "standard"
#: header sets in order of preference; Svix sends the same headers under its own name
HEADER_PREFIXES = ("webhook-", "svix-")
SECRET_PREFIX = "whsec_"  # noqa: S105  (a prefix, not a secret) symmetric secret, base64
PUBLIC_KEY_PREFIX = "whpk_"  # Ed25519 public key, base64 of the 32 raw bytes
PRIVATE_KEY_PREFIX = "whsk_"  # Ed25519 private key, base64 of the 32-byte seed (senders only)
#: more entries than this in one signature header is not a rotation but an attempt to make us work
MAX_SIGNATURES = 16

_OPTIONS = frozenset({"payment_ref_field"})
#: where the canonical payload convention puts the payment (docs/providers.md)
DEFAULT_PAYMENT_REF_FIELD: Final = "data.payment_id"


@dataclass(frozen=True, slots=True)
class HmacKey:
    """A ``whsec_`` secret: checks ``v1`` entries."""

    version: ClassVar[str] = "v1"
    secret: bytes = field(repr=False)  # never in a log line or traceback

    def matches(self, signed: bytes, signatures: Sequence[bytes]) -> bool:
        expected = signing.hmac_digest(self.secret, signed)
        return signing.first_match([expected], signatures) is not None


@dataclass(frozen=True, slots=True)
class Ed25519Key:
    """A ``whpk_`` public key: checks ``v1a`` entries."""

    version: ClassVar[str] = "v1a"
    public_bytes: bytes

    def matches(self, signed: bytes, signatures: Sequence[bytes]) -> bool:
        public_key = Ed25519PublicKey.from_public_bytes(self.public_bytes)
        for candidate in signatures:
            try:
                public_key.verify(candidate, signed)
            except InvalidSignature:
                continue
            return True
        return False


RingKey = HmacKey | Ed25519Key


def sign_v1(msg_id: str, timestamp: int, body: bytes, secret: str) -> str:
    """The ``v1,<base64>`` entry a sender holding the ``whsec_`` ``secret`` puts in the header."""
    mac = signing.hmac_digest(_whsec(secret), signed_content(msg_id, timestamp, body))
    return f"v1,{base64.b64encode(mac).decode('ascii')}"


def sign_v1a(msg_id: str, timestamp: int, body: bytes, private_key: Ed25519PrivateKey) -> str:
    """The ``v1a,<base64>`` entry of a sender holding the Ed25519 ``private_key``."""
    signature = private_key.sign(signed_content(msg_id, timestamp, body))
    return f"v1a,{base64.b64encode(signature).decode('ascii')}"


def webhook_headers(msg_id: str, timestamp: int, signatures: Sequence[str], *,
                    prefix: str = "webhook-") -> dict[str, str]:
    """The three headers of a delivery; ``prefix="svix-"`` for Svix's names."""
    return {
        f"{prefix}id": msg_id,
        f"{prefix}timestamp": str(timestamp),
        f"{prefix}signature": " ".join(signatures),
    }


def signed_content(msg_id: str, timestamp: int | str, body: bytes) -> bytes:
    return signing.header_bytes(f"{msg_id}.{timestamp}.") + body


def private_key(text: str) -> Ed25519PrivateKey:
    """An Ed25519 private key from ``whsk_`` + base64 of its 32-byte seed."""
    seed = _b64(text.removeprefix(PRIVATE_KEY_PREFIX))
    if seed is None or len(seed) != 32:
        raise ValueError("expected whsk_ followed by the base64 of a 32-byte Ed25519 seed")
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key_text(key: Ed25519PrivateKey) -> str:
    """The ``whpk_`` form of ``key``'s public key: what a receiver puts in its ring."""
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return PUBLIC_KEY_PREFIX + base64.b64encode(raw).decode("ascii")


def private_key_text(key: Ed25519PrivateKey) -> str:
    """The ``whsk_`` form of ``key`` (its seed), as ``sim_signing_key`` takes it."""
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return PRIVATE_KEY_PREFIX + base64.b64encode(seed).decode("ascii")


def parse_key(text: str) -> RingKey:
    """One key of the ring; ValueError (which never quotes the key) when it is not one."""
    if text.startswith(SECRET_PREFIX):
        return HmacKey(_whsec(text))
    if text.startswith(PUBLIC_KEY_PREFIX):
        raw = _b64(text[len(PUBLIC_KEY_PREFIX):])
        if raw is None or len(raw) != 32:
            raise ValueError("a whpk_ key must be followed by the base64 of 32 bytes")
        return Ed25519Key(raw)
    if text.startswith(PRIVATE_KEY_PREFIX):
        raise ValueError("a whsk_ private key belongs to the sender; configure its whpk_ key")
    raise ValueError("expected a whsec_ secret or a whpk_ public key")


@dataclass(frozen=True, slots=True)
class StandardScheme:
    keys: tuple[RingKey, ...]
    tolerance_seconds: int = 300
    payment_ref_field: str | None = None
    provider: str = PROVIDER
    content_types: frozenset[str] = frozenset({"application/json"})
    success_body: bytes = b'{"received":true}'
    success_media_type: str = "application/json"

    @classmethod
    def from_settings(cls, endpoint: EndpointSettings) -> StandardScheme:
        options = Options(endpoint, _OPTIONS)
        return cls(
            keys=parsed_key_ring(endpoint, parse_key),
            tolerance_seconds=endpoint.tolerance_seconds,
            payment_ref_field=options.field_path("payment_ref_field") or DEFAULT_PAYMENT_REF_FIELD,
        )

    async def verify(self, request: RawRequest, now: float) -> Verified:
        msg_id, timestamp_text, signature_header = _headers(request.headers)
        timestamp = _timestamp(timestamp_text)
        signatures = _signatures(signature_header)
        key_index = self._matching_key(signed_content(msg_id, timestamp_text, request.body),
                                       signatures)
        age = now - timestamp
        if age > self.tolerance_seconds:
            raise VerificationFailed("timestamp_too_old", "signature timestamp is too old")
        if -age > self.tolerance_seconds:
            raise VerificationFailed("timestamp_in_future", "signature timestamp is in the future")
        return Verified(key_index=key_index, events=(self._event(msg_id, request.body),))

    def _matching_key(self, signed: bytes, signatures: Mapping[str, Sequence[bytes]]) -> int:
        for index, key in enumerate(self.keys):
            if key.matches(signed, signatures.get(key.version, ())):
                return index
        raise VerificationFailed("signature_mismatch", "no signature matches a key of the ring")

    def _event(self, msg_id: str, body: bytes) -> ProviderEvent:
        doc = json_object(body)
        event_type = doc.get("type")
        return ProviderEvent(
            event_id=msg_id,
            event_type=event_type if isinstance(event_type, str) else "",
            payment_ref=value_at(doc, self.payment_ref_field),
            payload=body,
        )


def _headers(headers: Mapping[str, str]) -> tuple[str, str, str]:
    """``(id, timestamp, signature)`` of the first complete header set."""
    for prefix in HEADER_PREFIXES:
        msg_id = headers.get(f"{prefix}id")
        timestamp = headers.get(f"{prefix}timestamp")
        signature = headers.get(f"{prefix}signature")
        if msg_id and timestamp and signature:
            return msg_id, timestamp, signature
    raise VerificationFailed("missing_header", "webhook-id, -timestamp or -signature is missing")


def _timestamp(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise VerificationFailed("malformed_header", "webhook-timestamp is not unix seconds")
    return int(text)


def _signatures(header: str) -> dict[str, list[bytes]]:
    """The decoded signatures of each version; entries that do not decode can match nothing."""
    entries = [entry.partition(",") for entry in header.split()]
    entries = [(version, sep, value) for version, sep, value in entries if sep]
    if not entries:
        raise VerificationFailed("malformed_header", "webhook-signature has no version,signature")
    if len(entries) > MAX_SIGNATURES:
        raise VerificationFailed("malformed_header", "webhook-signature has too many entries")
    by_version: dict[str, list[bytes]] = {}
    for version, _, value in entries:
        decoded = signing.b64decode_or_none(value)
        if decoded is not None:
            by_version.setdefault(version, []).append(decoded)
    return by_version


def _whsec(text: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret: the base64 after the prefix, decoded."""
    secret = _b64(text.removeprefix(SECRET_PREFIX)) if text.startswith(SECRET_PREFIX) else None
    if not secret:
        raise ValueError("expected whsec_ followed by non-empty base64")
    return secret


def _b64(text: str) -> bytes | None:
    """Strict base64, tolerating missing padding (some senders strip it)."""
    return signing.b64decode_or_none(text + "=" * (-len(text) % 4))
