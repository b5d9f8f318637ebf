"""Generic HMAC: a configured header with an HMAC of the body (Shopify-style, in-house senders), and
its signer.

Everything is an endpoint option (``[endpoints.<name>]`` beside ``provider = "hmac"``):

=====================  ==========================================================================
``header``             required: the header carrying the signature (``X-Shopify-Hmac-Sha256``)
``digest``             ``sha256`` (default), ``sha1`` or ``sha512``
``encoding``           ``hex`` (default; either case accepted) or ``base64`` (standard alphabet)
``prefix``             literal text before the signature in the header (GitHub's ``sha256=``)
``signed_prefix``      literal text prepended to the body before signing (as UTF-8)
``event_id_header``    header holding the event id, or ``event_id_field``: dotted JSON path
``event_type_header``  header holding the event type, or ``event_type_field``: dotted JSON path
``payment_ref_field``  dotted JSON path of the payment reference (``data.payment_id``)
``content_types``      accepted media types (default ``["application/json"]``)
``sim_*``              read by ``payhooks sim`` only; ignored here
=====================  ==========================================================================

Each key of the ring is the secret as UTF-8. Nothing is signed but the body, so there is no time
window: replay protection is deduplication on the event id. When no event id is configured or the
configured one is absent, the id is derived from the body: ``sha256:<hex digest of the body>``, so a
redelivery of the same bytes dedupes (and two different events with byte-identical bodies would be
taken for one). An absent event type is ``""`` (kept on ``webhooks.raw``, mapped to nothing); an
absent payment reference is None (the partition key falls back to the event id). The body is parsed
as JSON only when a ``*_field`` option asks for it, and only after the signature holds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ingest.errors import VerificationFailed
from ingest.schemes import ProviderEvent, RawRequest, Verified, signing
from ingest.schemes.json_body import json_object, value_at
from ingest.schemes.options import Options, key_ring
from payhooks.config import EndpointSettings

PROVIDER = "hmac"
DIGESTS = frozenset({"sha1", "sha256", "sha512"})
ENCODINGS = frozenset({"hex", "base64"})

_OPTIONS = frozenset({
    "header", "digest", "encoding", "prefix", "signed_prefix",
    "event_id_header", "event_id_field", "event_type_header", "event_type_field",
    "payment_ref_field", "content_types",
})


def signature(body: bytes, secret: str, *, digest: str = "sha256", encoding: str = "hex",
              prefix: str = "", signed_prefix: bytes = b"") -> str:
    """The signature header value a sender configured like this would send."""
    mac = signing.hmac_digest(secret.encode(), signed_prefix + body, digest)
    return prefix + _encode(mac, encoding)


@dataclass(frozen=True, slots=True)
class GenericHmacScheme:
    keys: tuple[bytes, ...] = field(repr=False)  # never in a log line or traceback
    header: str  # lower case
    digest: str = "sha256"
    encoding: str = "hex"
    prefix: str = ""
    signed_prefix: bytes = b""
    event_id_header: str | None = None
    event_id_field: str | None = None
    event_type_header: str | None = None
    event_type_field: str | None = None
    payment_ref_field: str | None = None
    content_types: frozenset[str] = frozenset({"application/json"})
    provider: str = PROVIDER
    success_body: bytes = b'{"received":true}'
    success_media_type: str = "application/json"

    @classmethod
    def from_settings(cls, endpoint: EndpointSettings) -> GenericHmacScheme:
        options = Options(endpoint, _OPTIONS)
        digest = options.choice("digest", DIGESTS, "sha256")
        encoding = options.choice("encoding", ENCODINGS, "hex")
        return cls(
            keys=key_ring(endpoint),
            header=options.required_header_name("header"),
            digest=digest,
            encoding=encoding,
            prefix=options.text("prefix"),
            signed_prefix=options.text("signed_prefix").encode(),
            event_id_header=options.header_name("event_id_header"),
            event_id_field=options.either_or("event_id_header", "event_id_field"),
            event_type_header=options.header_name("event_type_header"),
            event_type_field=options.either_or("event_type_header", "event_type_field"),
            payment_ref_field=options.field_path("payment_ref_field"),
            content_types=options.media_types("content_types", ("application/json",)),
        )

    async def verify(self, request: RawRequest, now: float) -> Verified:
        candidate = self._candidate(request.headers.get(self.header))
        signed = self.signed_prefix + request.body
        expected = (signing.hmac_digest(key, signed, self.digest) for key in self.keys)
        key_index = signing.first_match(expected, [candidate])
        if key_index is None:
            raise VerificationFailed("signature_mismatch", "no signature matches a key of the ring")
        return Verified(key_index=key_index, events=(self._event(request),))

    def _candidate(self, value: str | None) -> bytes:
        """The signature of the header as raw digest bytes."""
        if not value:
            raise VerificationFailed("missing_header", f"{self.header} header is missing")
        if not value.startswith(self.prefix):
            raise VerificationFailed("malformed_header", f"{self.header} lacks its prefix")
        decoded = _decode(value[len(self.prefix):].strip(), self.encoding)
        if decoded is None:
            raise VerificationFailed("malformed_header", f"{self.header} is not {self.encoding}")
        return decoded

    def _event(self, request: RawRequest) -> ProviderEvent:
        body = request.body
        wants_json = self.event_id_field or self.event_type_field or self.payment_ref_field
        doc = json_object(body) if wants_json else {}
        event_id = _pick(request.headers, self.event_id_header, doc, self.event_id_field)
        event_type = _pick(request.headers, self.event_type_header, doc, self.event_type_field)
        return ProviderEvent(
            event_id=event_id or derived_event_id(body),
            event_type=event_type or "",
            payment_ref=value_at(doc, self.payment_ref_field),
            payload=body,
        )


def derived_event_id(body: bytes) -> str:
    """The id of an event that names none: a digest of its bytes, the same on every redelivery."""
    return f"sha256:{hashlib.sha256(body).hexdigest()}"


def _pick(headers: Mapping[str, str], header: str | None, doc: Any, field: str | None
          ) -> str | None:
    if header is not None:
        return headers.get(header) or None
    return value_at(doc, field)


def _encode(mac: bytes, encoding: str) -> str:
    return mac.hex() if encoding == "hex" else base64.b64encode(mac).decode("ascii")


def _decode(text: str, encoding: str) -> bytes | None:
    if encoding == "base64":
        return signing.b64decode_or_none(text)
    try:
        return binascii.a2b_hex(text)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII text
        return None
