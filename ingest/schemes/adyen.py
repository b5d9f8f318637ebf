"""Adyen: classic notifications, each item signed over eight of its fields, and their signer.

Facts (PSP_NOTES; Adyen's "Verify HMAC signatures" and its Python library ``Adyen.util``):

- The body is ``{"live": "false", "notificationItems": [{"NotificationRequestItem": {...}}]}``, a
  batch of one or more items. Each item carries its own ``additionalData.hmacSignature``: base64
  HMAC-SHA256, keyed with the hex key decoded to bytes, over
  ``pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:eventCode:success``
  (``value`` and ``currency`` from ``amount``; a missing field is empty; nothing is escaped).
- This is the one scheme that signs parsed fields, so the body is parsed before anything is
  verified. Every item is verified and a batch is all or nothing: one bad item refuses the request.
  Each item may match any key of the ring; the delivery reports the highest index any item needed
  (the oldest key still in use), which is what tells an operator whether an old key can go.
- Only those eight fields are signed. Everything else in an item (``eventDate``, ``reason``,
  ``additionalData``, ``paymentMethod``, ...) is protected only by HTTP Basic auth and TLS, so an
  endpoint should configure ``basic_auth``; ``build_scheme`` then checks it before anything else.
- ``success`` is the string ``"true"`` or ``"false"`` in Adyen's JSON. A sender that sends a JSON
  boolean is verified over the text Adyen signs for it (``"true"``/``"false"``), never over
  Python's ``str(True)``, which is what Adyen's own library would sign. A signed field of a type
  Adyen never sends (a number for a reference, a fraction for ``amount.value``) is a
  MalformedRequest: there is no text Adyen would have signed for it.
- A batch keeps no per-item bytes, so each event's payload is its item re-serialised exactly as it
  was parsed and verified (``success`` and every other field as received).
- Adyen names no event id. The receiver derives ``{pspReference}:{eventCode}:{success}:
  {originalReference}`` (the last part empty when the item has none): the same item delivered
  again gets the same id, and an AUTHORISATION that failed and one that succeeded stay apart. The
  payment reference is ``originalReference`` (captures, refunds, cancellations and disputes point at
  the payment), else ``pspReference`` (the payment itself).

Endpoint settings: ``secrets`` are Adyen's hex HMAC keys; ``basic_auth`` is optional but
recommended; there are no provider options.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from ingest.errors import MalformedRequest, VerificationFailed
from ingest.schemes import ProviderEvent, RawRequest, Verified, signing
from ingest.schemes.json_body import json_object
from ingest.schemes.options import Options, parsed_key_ring
from payhooks.config import EndpointSettings

PROVIDER = "adyen"
OPTIONS: frozenset[str] = frozenset()

#: the item fields Adyen signs, in order; ``value`` and ``currency`` come from ``amount``
SIGNED_FIELDS = (
    "pspReference",
    "originalReference",
    "merchantAccountCode",
    "merchantReference",
    "value",
    "currency",
    "eventCode",
    "success",
)


class UnsignableItem(ValueError):
    """A notification item whose signed fields are not of the types Adyen sends."""


def signing_string(item: Mapping[str, Any]) -> bytes:
    """The text Adyen signs for one ``NotificationRequestItem``, as UTF-8."""
    amount = item.get("amount")
    if amount is None:
        amount = {}
    if not isinstance(amount, Mapping):
        raise UnsignableItem("amount is not an object")
    values = [
        _text(item, "pspReference"),
        _text(item, "originalReference"),
        _text(item, "merchantAccountCode"),
        _text(item, "merchantReference"),
        _amount_value(amount.get("value")),
        _text(amount, "currency"),
        _text(item, "eventCode"),
        _success(item.get("success")),
    ]  # the order of SIGNED_FIELDS
    # surrogatepass: a lone surrogate cannot come from Adyen; it then simply fails to match
    return ":".join(values).encode("utf-8", "surrogatepass")


def item_signature(item: Mapping[str, Any], hex_key: str) -> str:
    """The ``hmacSignature`` Adyen puts into ``item``'s ``additionalData``."""
    return signing.hmac_b64(binascii.a2b_hex(hex_key), signing_string(item)).decode("ascii")


def signed_item(item: Mapping[str, Any], hex_key: str) -> dict[str, Any]:
    """A copy of ``item`` with ``additionalData.hmacSignature`` set, as Adyen sends it."""
    additional = dict(item.get("additionalData") or {})
    additional["hmacSignature"] = item_signature(item, hex_key)
    return {**item, "additionalData": additional}


def notification_body(items: Sequence[Mapping[str, Any]], hex_key: str, *, live: bool = False
                      ) -> bytes:
    """The JSON body of one Adyen notification carrying ``items``, each signed with ``hex_key``."""
    return orjson.dumps({
        "live": "true" if live else "false",
        "notificationItems": [{"NotificationRequestItem": signed_item(i, hex_key)} for i in items],
    })


def event_id(item: Mapping[str, Any]) -> str:
    """``{pspReference}:{eventCode}:{success}:{originalReference}`` (see the module docstring)."""
    return ":".join([
        _text(item, "pspReference"),
        _text(item, "eventCode"),
        _success(item.get("success")),
        _text(item, "originalReference"),
    ])


def payment_ref(item: Mapping[str, Any]) -> str | None:
    """``originalReference`` when the item points at a payment, else its own ``pspReference``."""
    for name in ("originalReference", "pspReference"):
        value = item.get(name)
        if isinstance(value, str) and value:
            return value
    return None


@dataclass(frozen=True, slots=True)
class AdyenScheme:
    keys: tuple[bytes, ...] = field(repr=False)  # the ring's hex keys, decoded
    provider: str = PROVIDER
    content_types: frozenset[str] = frozenset({"application/json"})
    success_body: bytes = b"[accepted]"
    success_media_type: str = "text/plain"

    @classmethod
    def from_settings(cls, endpoint: EndpointSettings) -> AdyenScheme:
        Options(endpoint, OPTIONS)
        return cls(keys=parsed_key_ring(endpoint, _hex_key))

    async def verify(self, request: RawRequest, now: float) -> Verified:
        items = _items(request.body)
        # all or nothing: the batch is published only when every item holds
        key_index = max(self._matching_key(item, n, len(items)) for n, item in enumerate(items, 1))
        return Verified(key_index=key_index, events=tuple(_event(item) for item in items))

    def _matching_key(self, item: Mapping[str, Any], position: int, count: int) -> int:
        where = f"item {position} of {count}"
        additional = item.get("additionalData")
        candidate = additional.get("hmacSignature") if isinstance(additional, Mapping) else None
        if not isinstance(candidate, str) or not candidate:
            raise VerificationFailed("missing_signature", f"{where} has no hmacSignature")
        try:
            signed = signing_string(item)
        except UnsignableItem as exc:
            raise MalformedRequest(f"{where}: {exc}") from None
        index = signing.first_match(
            (signing.hmac_b64(key, signed) for key in self.keys),
            [signing.header_bytes(candidate)],
        )
        if index is None:
            raise VerificationFailed("signature_mismatch",
                                     f"{where}: no key of the ring produced its hmacSignature")
        return index


def _hex_key(text: str) -> bytes:
    """An Adyen HMAC key as configured (hex) decoded; ValueError, not quoting it, otherwise."""
    try:
        return binascii.a2b_hex(text)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII text
        raise ValueError("not a hex HMAC key") from None


def _items(body: bytes) -> list[Mapping[str, Any]]:
    """The ``NotificationRequestItem`` objects of a notification body, in order."""
    what = "an Adyen notification with notificationItems"
    wrappers = json_object(body, what).get("notificationItems")
    if not isinstance(wrappers, list) or not wrappers:
        raise MalformedRequest(f"body is not {what}")
    items: list[Mapping[str, Any]] = []
    for wrapper in wrappers:
        item = wrapper.get("NotificationRequestItem") if isinstance(wrapper, dict) else None
        if not isinstance(item, dict):
            raise MalformedRequest("a notification item has no NotificationRequestItem object")
        items.append(item)
    return items


def _event(item: Mapping[str, Any]) -> ProviderEvent:
    if not _text(item, "pspReference") or not _text(item, "eventCode"):
        raise MalformedRequest("a notification item lacks pspReference or eventCode")
    return ProviderEvent(
        event_id=event_id(item),
        event_type=_text(item, "eventCode"),
        payment_ref=payment_ref(item),
        # a batch keeps no per-item bytes: the item is re-serialised exactly as it was verified
        payload=orjson.dumps(item),
    )


def _text(obj: Mapping[str, Any], name: str) -> str:
    value = obj.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise UnsignableItem(f"{name} is not a string")
    return value


def _amount_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise UnsignableItem("amount.value is not an integer")


def _success(value: Any) -> str:
    if isinstance(value, bool):  # what Adyen signs for it, not Python's "True"
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise UnsignableItem("success is not a string")
