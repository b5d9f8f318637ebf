"""The ``webhooks.raw`` record value: one verified provider event and where it came from."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson

from schemas import wire


class EnvelopeError(ValueError):
    """A ``webhooks.raw`` value that is not a valid envelope (poison for the workers)."""


@dataclass(frozen=True, slots=True)
class Envelope:
    delivery_id: str  # one per HTTP request; shared by the events of a batch
    endpoint: str
    provider: str
    event_id: str
    event_type: str
    payment_ref: str | None
    received_at: str  # RFC 3339 UTC, see schemas.timefmt
    key_index: int  # which key of the endpoint's ring verified the delivery (0 = newest)
    payload: bytes  # the provider's event exactly as received

    @property
    def partition_key(self) -> str:
        """``{provider}:{payment reference}``, else ``{provider}:{event id}``."""
        return f"{self.provider}:{self.payment_ref or self.event_id}"

    def to_json(self) -> bytes:
        try:
            text, encoding = self.payload.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(self.payload).decode("ascii"), "base64"
        return orjson.dumps(
            {
                "schema": wire.SCHEMA_ENVELOPE_V1,
                "delivery_id": self.delivery_id,
                "endpoint": self.endpoint,
                "provider": self.provider,
                "event_id": self.event_id,
                "event_type": self.event_type,
                "payment_ref": self.payment_ref,
                "received_at": self.received_at,
                "key_index": self.key_index,
                "payload_encoding": encoding,
                "payload": text,
            }
        )

    @classmethod
    def from_json(cls, data: bytes) -> Envelope:
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise EnvelopeError(f"value is not JSON ({exc.msg})") from None
        if not isinstance(doc, dict) or doc.get("schema") != wire.SCHEMA_ENVELOPE_V1:
            raise EnvelopeError(f"value is not a {wire.SCHEMA_ENVELOPE_V1} envelope")
        try:
            return cls(
                delivery_id=_str(doc, "delivery_id"),
                endpoint=_str(doc, "endpoint"),
                provider=_str(doc, "provider"),
                event_id=_str(doc, "event_id"),
                event_type=_str(doc, "event_type"),
                payment_ref=_optional_str(doc, "payment_ref"),
                received_at=_str(doc, "received_at"),
                key_index=_int(doc, "key_index"),
                payload=_payload(doc),
            )
        except (KeyError, TypeError, binascii.Error) as exc:
            raise EnvelopeError(f"envelope field {exc} is missing or has the wrong type") from None

    def payload_json(self) -> Any:
        """The provider's event parsed; raises EnvelopeError when it is not JSON."""
        try:
            return orjson.loads(self.payload)
        except orjson.JSONDecodeError as exc:
            raise EnvelopeError(f"payload is not JSON ({exc.msg})") from None


def _str(doc: dict[str, Any], name: str) -> str:
    value = doc[name]
    if not isinstance(value, str):
        raise TypeError(name)
    return value


def _optional_str(doc: dict[str, Any], name: str) -> str | None:
    return None if doc.get(name) is None else _str(doc, name)


def _int(doc: dict[str, Any], name: str) -> int:
    value = doc[name]
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(name)
    return value


def _payload(doc: dict[str, Any]) -> bytes:
    text = _str(doc, "payload")
    if doc.get("payload_encoding") == "base64":
        return base64.b64decode(text, validate=True)
    if doc.get("payload_encoding") == "utf-8":
        return text.encode("utf-8")
    raise TypeError("payload_encoding")
