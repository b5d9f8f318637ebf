"""Checkout.com: ``Cko-Signature`` (hex HMAC-SHA256 of the body), an optional static
``Authorization`` header, and their signer.

Facts (PSP_NOTES; Checkout.com's webhook documentation):

- ``Cko-Signature`` is the hex HMAC-SHA256 of the raw body (lower case; upper case is accepted),
  keyed with the webhook's secret key as UTF-8. Nothing is timestamped: replays are handled
  downstream by the event id.
- A webhook can also carry a fixed ``Authorization`` header value chosen by the merchant. When the
  endpoint configures one (option ``authorization``, or ``authorization_file``), the header must
  equal it (compared in constant time), and it is checked before the signature.
- The event id is the event's ``id`` (``evt_...``) and its type ``type``. The payment reference
  is ``data.id`` (``pay_...``) on payment events and ``data.payment_id`` on dispute events, whose
  ``data.id`` is the dispute (``dsp_...``). Captures and refunds carry ``data.action_id``.

Endpoint settings: ``secrets`` are webhook secret keys; option ``authorization`` (optional).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ingest.errors import MalformedRequest, VerificationFailed
from ingest.schemes import ProviderEvent, RawRequest, Verified, signing
from ingest.schemes.json_body import json_object, text
from ingest.schemes.options import Options, key_ring
from payhooks.config import EndpointSettings

PROVIDER = "checkout"
HEADER = "cko-signature"
AUTHORIZATION_HEADER = "authorization"
OPTIONS = frozenset({"authorization"})
_HEX = frozenset(b"0123456789abcdef")


def signature(body: bytes, secret: str) -> str:
    """The ``Cko-Signature`` Checkout.com sends for ``body``."""
    return signing.hmac_hex(secret.encode(), body).decode("ascii")


def payment_ref(event: Mapping[str, Any]) -> str | None:
    """The ``pay_...`` id an event is about: ``data.payment_id`` (disputes), else ``data.id``."""
    data = event.get("data")
    if not isinstance(data, Mapping):
        return None
    payment_id = data.get("payment_id")
    if isinstance(payment_id, str) and payment_id:
        return payment_id
    own_id = data.get("id")
    if isinstance(own_id, str) and own_id.startswith("pay_"):
        return own_id
    return None


@dataclass(frozen=True, slots=True)
class CheckoutScheme:
    keys: tuple[bytes, ...] = field(repr=False)
    authorization: bytes | None = field(default=None, repr=False)
    provider: str = PROVIDER
    content_types: frozenset[str] = frozenset({"application/json"})
    success_body: bytes = b'{"received":true}'
    success_media_type: str = "application/json"

    @classmethod
    def from_settings(cls, endpoint: EndpointSettings) -> CheckoutScheme:
        authorization = Options(endpoint, OPTIONS).optional_text("authorization")
        return cls(
            keys=key_ring(endpoint),
            authorization=None if authorization is None else authorization.encode(),
        )

    async def verify(self, request: RawRequest, now: float) -> Verified:
        self._check_authorization(request.headers)
        candidate = _signature_header(request.headers.get(HEADER))
        key_index = signing.first_match(
            (signing.hmac_hex(key, request.body) for key in self.keys), [candidate]
        )
        if key_index is None:
            raise VerificationFailed("signature_mismatch",
                                     "no key of the ring produced Cko-Signature")
        return Verified(key_index=key_index, events=(_event(request.body),))

    def _check_authorization(self, headers: Mapping[str, str]) -> None:
        if self.authorization is None:
            return
        header = headers.get(AUTHORIZATION_HEADER)
        # compare even when the header is missing, so timing says nothing either way
        matched = signing.equal(self.authorization, signing.header_bytes(header or ""))
        if not matched or header is None:
            raise VerificationFailed("authorization_failed",
                                     "Authorization header does not match the configured value")


def _signature_header(value: str | None) -> bytes:
    if not value:
        raise VerificationFailed("missing_header", "Cko-Signature header is missing")
    candidate = signing.header_bytes(value.strip()).lower()  # bytes.lower(): ASCII letters only
    if len(candidate) != 64 or not set(candidate) <= _HEX:
        raise VerificationFailed("malformed_header", "Cko-Signature is not a hex SHA-256 digest")
    return candidate


def _event(body: bytes) -> ProviderEvent:
    event = json_object(body, "a Checkout.com event object")
    event_id, event_type = text(event.get("id")), text(event.get("type"))
    if event_id is None or event_type is None:
        raise MalformedRequest("Checkout.com event lacks id or type")
    return ProviderEvent(
        event_id=event_id,
        event_type=event_type,
        payment_ref=payment_ref(event),
        payload=body,
    )
