"""Braintree: form fields ``bt_signature`` and ``bt_payload`` (base64 of XML), and their signer.

Facts (PSP_NOTES; Braintree's SDKs, ``braintree.webhook_notification_gateway``):

- The request is ``application/x-www-form-urlencoded`` with ``bt_signature`` and ``bt_payload``.
  The signature is HMAC-SHA1, hex, over the ``bt_payload`` text as received, keyed with the raw
  SHA1 digest of the API private key. ``bt_signature`` holds ``public_key|signature`` pairs joined
  by ``&``, one per API key of the merchant; the receiver checks the pairs of its own public key.
  As Braintree's SDKs do, a signature over the payload plus a trailing newline is accepted too
  (some frameworks strip that newline from form values before the SDK sees them).
- The form is split and percent-decoded here, from the raw bytes; nothing else is decoded before
  the signature holds. Then the base64 payload is decoded and its XML parsed with a parser that
  refuses any document type declaration, so no entity is ever declared or expanded.
- Braintree names no event id. The receiver derives ``{kind}:{timestamp}:{subject id}`` from the
  notification (``timestamp`` exactly as sent); the subject id is the ``id`` of the subject's
  object (transaction, dispute, disbursement, ...), else its ``payment-id`` or
  ``transaction-id``, else empty (the ``check`` kind has none). The payment reference is a
  transaction id: the transaction's ``refunded-transaction-id`` when it is a refund (so a refund
  lands on its sale's partition), else its ``id``; a dispute's or local payment's nested
  ``transaction``; a review's ``transaction-id``. Kinds about no transaction (disbursements,
  subscriptions, ``check``) name no payment.
- Braintree sends no card authorize or capture webhooks: settlement, disbursement, local payment,
  refund-failure and dispute kinds only.

Endpoint settings: ``secrets`` are API private keys; option ``public_key`` (required) is the API
public key whose pairs to check: one string for every key of the ring, or a list (or a
comma-separated string) with one public key per private key, by position, since a rotation at
Braintree is a new API key pair.

The event payload is the whole form body, so the exact signed bytes stay recoverable;
:func:`read_notification` turns it back into the parsed notification for the consumers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NoReturn
from urllib.parse import unquote_to_bytes, urlencode
from xml.parsers import expat

from ingest.errors import MalformedRequest, VerificationFailed
from ingest.schemes import ProviderEvent, RawRequest, Verified, signing
from ingest.schemes.options import Options, parsed_key_ring
from payhooks.config import ConfigError, EndpointSettings

PROVIDER = "braintree"
SIGNATURE_FIELD = b"bt_signature"
PAYLOAD_FIELD = b"bt_payload"
OPTIONS = frozenset({"public_key"})


class UnreadableNotification(ValueError):
    """A payload whose base64 or XML cannot be read as a Braintree notification."""


@dataclass(frozen=True, slots=True)
class Notification:
    """What a verified payload says, as far as the receiver needs it."""

    kind: str
    timestamp: str
    subject_id: str
    transaction_id: str | None
    xml: bytes  # the decoded notification document (parse it with :func:`parse_xml`)

    @property
    def event_id(self) -> str:
        return f"{self.kind}:{self.timestamp}:{self.subject_id}"


def hmac_key(private_key: str) -> bytes:
    """Braintree keys its HMAC with the raw SHA1 digest of the private key."""
    return hashlib.sha1(private_key.encode()).digest()  # noqa: S324  (Braintree's scheme)


def signature(payload: bytes, private_key: str) -> str:
    """Hex HMAC-SHA1 of ``bt_payload`` as Braintree computes it."""
    return signing.hmac_hex(hmac_key(private_key), payload, "sha1").decode("ascii")


def encode_payload(xml: bytes) -> bytes:
    """``bt_payload`` for a notification document: base64 in 76-character lines, as Braintree."""
    return base64.encodebytes(xml)


def form_body(payload: bytes, api_keys: Sequence[tuple[str, str]]) -> bytes:
    """The form Braintree posts: ``bt_signature`` with one pair per ``(public, private)`` key."""
    pairs = "&".join(f"{public}|{signature(payload, private)}" for public, private in api_keys)
    return urlencode({"bt_signature": pairs, "bt_payload": payload.decode("ascii")}).encode()


def parse_xml(document: bytes) -> ET.Element:
    """An XML document as an element tree; any DOCTYPE (and so any entity) is refused.

    Raises :class:`UnreadableNotification` for anything that is not well-formed, entity-free XML.
    """
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_doctype
    parser.buffer_text = True
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(document, True)
    except (expat.ExpatError, LookupError, ValueError) as exc:  # LookupError: unknown encoding
        raise UnreadableNotification(f"payload is not well-formed XML ({type(exc).__name__})"
                                     ) from None
    return builder.close()


def notification(xml: bytes) -> Notification:
    """The notification a decoded payload holds; :class:`UnreadableNotification` if none."""
    root = parse_xml(xml)
    kind, timestamp = (root.findtext(name, "").strip() for name in ("kind", "timestamp"))
    if root.tag != "notification" or not kind or not timestamp:
        raise UnreadableNotification("payload is not a notification with a kind and timestamp")
    subject = _subject_object(root)
    return Notification(
        kind=kind,
        timestamp=timestamp,
        subject_id=_subject_id(subject),
        transaction_id=_transaction_id(subject),
        xml=xml,
    )


def read_notification(body: bytes) -> Notification:
    """The notification of a (verified) form body, as published on ``webhooks.raw``."""
    fields = _form_fields(body)
    payload = fields.get(PAYLOAD_FIELD)
    if payload is None or len(payload) != 1:
        raise UnreadableNotification("form has no single bt_payload")
    return notification(_decode_payload(payload[0]))


@dataclass(frozen=True, slots=True)
class BraintreeScheme:
    keys: tuple[bytes, ...] = field(repr=False)  # SHA1 digests of the private keys
    public_keys: tuple[bytes, ...]  # the public key of each private key, by position
    provider: str = PROVIDER
    content_types: frozenset[str] = frozenset({"application/x-www-form-urlencoded"})
    success_body: bytes = b'{"received":true}'
    success_media_type: str = "application/json"

    @classmethod
    def from_settings(cls, endpoint: EndpointSettings) -> BraintreeScheme:
        Options(endpoint, OPTIONS)
        return cls(
            keys=parsed_key_ring(endpoint, hmac_key),
            public_keys=tuple(p.encode() for p in public_keys(endpoint)),
        )

    async def verify(self, request: RawRequest, now: float) -> Verified:
        fields = _form_fields(request.body)
        pairs = _signature_pairs(fields.get(SIGNATURE_FIELD))
        payloads = fields.get(PAYLOAD_FIELD)
        if payloads is None or len(payloads) != 1:
            raise MalformedRequest("form needs exactly one bt_payload field")
        payload = payloads[0]
        key_index = self._matching_key(pairs, payload)
        try:
            parsed = notification(_decode_payload(payload))
        except UnreadableNotification as exc:
            raise MalformedRequest(str(exc)) from None
        event = ProviderEvent(
            event_id=parsed.event_id,
            event_type=parsed.kind,
            payment_ref=parsed.transaction_id,
            payload=request.body,
        )
        return Verified(key_index=key_index, events=(event,))

    def _matching_key(self, pairs: Sequence[tuple[bytes, bytes]], payload: bytes) -> int:
        if not any(public in self.public_keys for public, _ in pairs):
            raise VerificationFailed("signature_mismatch",
                                     "bt_signature has no pair for the configured public key")
        for index, (key, public) in enumerate(zip(self.keys, self.public_keys, strict=True)):
            mine = [sig for pair_public, sig in pairs if pair_public == public]
            expected = (signing.hmac_hex(key, payload, "sha1"),
                        signing.hmac_hex(key, payload + b"\n", "sha1"))
            if mine and signing.first_match(expected, mine) is not None:
                return index
        raise VerificationFailed("signature_mismatch", "no key of the ring produced bt_signature")


def public_keys(endpoint: EndpointSettings) -> tuple[str, ...]:
    """The ``public_key`` option, one public key per private key of the ring."""
    options = Options(endpoint, OPTIONS)
    key = options.key("public_key")
    value = options.strings("public_key")
    if not value or value == ("",):
        raise ConfigError(key, "is required: the Braintree API public key (or one per secret)")
    if not all(v and "|" not in v and "&" not in v for v in value):
        raise ConfigError(key, "each public key must be a non-empty string without '|' or '&'")
    count = len(endpoint.secrets)
    if len(value) == 1:
        return tuple(value) * count
    if len(value) != count:
        raise ConfigError(key, f"give one public key or one per secret ({count}), not {len(value)}")
    return tuple(value)


def _form_fields(body: bytes) -> dict[bytes, list[bytes]]:
    """Percent-decoded form fields from the raw body; never decodes text, so never raises."""
    fields: dict[bytes, list[bytes]] = {}
    for part in body.split(b"&"):
        name, _, value = part.partition(b"=")
        if name:
            fields.setdefault(_unquote(name), []).append(_unquote(value))
    return fields


def _unquote(text: bytes) -> bytes:
    return unquote_to_bytes(text.replace(b"+", b" "))


def _signature_pairs(values: list[bytes] | None) -> list[tuple[bytes, bytes]]:
    if not values or not values[0]:
        raise VerificationFailed("missing_signature", "form has no bt_signature field")
    if len(values) != 1:
        raise MalformedRequest("form has more than one bt_signature field")
    pairs = []
    for pair in values[0].split(b"&"):
        public, sep, sig = pair.partition(b"|")
        if sep and public and sig:
            pairs.append((public, sig))
    if not pairs:
        raise VerificationFailed("missing_signature", "bt_signature holds no public_key|signature")
    return pairs


def _decode_payload(payload: bytes) -> bytes:
    try:
        return base64.b64decode(payload.replace(b"\n", b""), validate=True)
    except (binascii.Error, ValueError):
        raise UnreadableNotification("bt_payload is not base64") from None


def _refuse_doctype(*_args: object) -> NoReturn:
    raise ValueError("document type declarations are refused")


def _subject_object(root: ET.Element) -> ET.Element | None:
    """The object a notification is about: the first element of ``subject`` (or of its
    ``api-error-response`` wrapper) other than the error's ``errors``, ``message``, ``params``."""
    container = root.find("subject")
    if container is None:
        return None
    wrapped = container.find("api-error-response")
    if wrapped is not None:
        container = wrapped
    for child in container:
        if child.tag not in {"errors", "message", "params"}:
            return child
    return None


def _subject_id(subject: ET.Element | None) -> str:
    if subject is None:
        return ""
    for name in ("id", "payment-id", "transaction-id"):
        text = (subject.findtext(name) or "").strip()
        if text:
            return text
    return ""


def _transaction_id(subject: ET.Element | None) -> str | None:
    if subject is None:
        return None
    if subject.tag == "transaction-review":
        return _child_text(subject, "transaction-id")
    transaction = subject if subject.tag == "transaction" else subject.find("transaction")
    if transaction is None:
        return None
    return _child_text(transaction, "refunded-transaction-id") or _child_text(transaction, "id")


def _child_text(element: ET.Element, name: str) -> str | None:
    text = (element.findtext(name) or "").strip()
    return text or None
