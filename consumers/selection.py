"""Which records of ``webhooks.raw`` or ``webhooks.dlq`` an operator command selects (filters).

A record is described by what it names, read without trusting it (a dead letter may hold bytes
that are not an envelope at all):

- payment: the record key, ``{provider}:{payment reference}`` (the event id when the event named
  no payment), exactly as the receiver keyed it; ticks are keyed by payment too;
- provider: the ``provider`` header, else the envelope's ``provider``, else the key's prefix;
- type: the envelope's ``event_type``, the *provider's* event type as received (for example
  ``payment_intent.succeeded`` or ``AUTHORISATION``), the same on raw and DLQ records, because a
  dead letter holds the raw record unchanged. Ticks have the type ``payhooks.tick``; a value that
  is not an envelope has none (``--type`` never selects it).

Dead letters also have a stage (``decode``, ``normalize``, ``apply``) and an error class and
message; ``reason`` matches the error class exactly or a substring of the message.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from payhooks.kafka import Headers
from schemas import wire

TICK_TYPE = "payhooks.tick"


@dataclass(frozen=True, slots=True)
class Described:
    """What one record names: payment, provider, type, and for dead letters where and why."""

    payment_id: str
    provider: str | None
    event_type: str | None
    event_id: str | None = None
    stage: str | None = None
    error_class: str | None = None
    error_message: str | None = None
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None

    @property
    def type_label(self) -> str:
        """The type for counts: the event type, or ``(not an envelope)``."""
        return self.event_type or "(not an envelope)"


def header(headers: Headers, name: str) -> str | None:
    value = next((v for k, v in headers if k == name), None)
    return None if value is None else value.decode("utf-8", "replace")


def describe(key: bytes, value: bytes, headers: Headers) -> Described:
    """Read what ``key``, ``value`` and ``headers`` name; never raises on bad bytes."""
    payment_id = key.decode("utf-8", "replace")
    doc = _json_object(value)
    schema = doc.get("schema") if doc else None
    event_type: str | None = None
    envelope_provider: str | None = None
    event_id = header(headers, wire.HEADER_EVENT_ID)
    if doc and schema == wire.SCHEMA_ENVELOPE_V1:
        event_type = _str_or_none(doc.get("event_type"))
        envelope_provider = _str_or_none(doc.get("provider"))
        event_id = event_id or _str_or_none(doc.get("event_id"))
    elif doc and schema == wire.SCHEMA_TICK_V1:
        event_type = TICK_TYPE
    provider = header(headers, wire.HEADER_PROVIDER) or envelope_provider
    if provider is None and ":" in payment_id:
        provider = payment_id.split(":", 1)[0]
    return Described(
        payment_id=payment_id, provider=provider, event_type=event_type, event_id=event_id,
        stage=header(headers, wire.HEADER_DLQ_STAGE),
        error_class=header(headers, wire.HEADER_DLQ_ERROR_CLASS),
        error_message=header(headers, wire.HEADER_DLQ_ERROR_MESSAGE),
        source_topic=header(headers, wire.HEADER_DLQ_SOURCE_TOPIC),
        source_partition=_int_or_none(header(headers, wire.HEADER_DLQ_SOURCE_PARTITION)),
        source_offset=_int_or_none(header(headers, wire.HEADER_DLQ_SOURCE_OFFSET)),
    )


@dataclass(frozen=True, slots=True)
class Filters:
    """Conditions that must all hold; ``None`` (or empty) means "any"."""

    payment: str | None = None
    provider: str | None = None
    event_type: str | None = None
    stage: str | None = None
    reason: str | None = None
    coordinates: frozenset[tuple[int, int]] = frozenset()  # (partition, offset) chosen by id

    def matches(self, partition: int, offset: int, d: Described) -> bool:
        if self.coordinates and (partition, offset) not in self.coordinates:
            return False
        if self.payment is not None and d.payment_id != self.payment:
            return False
        if self.provider is not None and d.provider != self.provider:
            return False
        if self.event_type is not None and d.event_type != self.event_type:
            return False
        if self.stage is not None and d.stage != self.stage:
            return False
        return self.reason is None or (
            d.error_class == self.reason
            or (d.error_message is not None and self.reason.lower() in d.error_message.lower()))

    def as_dict(self) -> dict[str, object]:
        """The filters that are set, for output and the audit record."""
        out: dict[str, object] = {k: v for k, v in (
            ("payment", self.payment), ("provider", self.provider), ("type", self.event_type),
            ("stage", self.stage), ("reason", self.reason)) if v is not None}
        if self.coordinates:
            out["ids"] = [f"{p}:{o}" for p, o in sorted(self.coordinates)]
        return out


def parse_ids(ids: Iterable[str]) -> frozenset[tuple[int, int]]:
    """``["0:12", "2:7"]`` -> {(0, 12), (2, 7)}; raises ValueError naming the bad one."""
    out = set()
    for text in ids:
        partition, sep, offset = text.partition(":")
        if not sep or not partition.isdigit() or not offset.isdigit():
            raise ValueError(f"dead letter id {text!r} is not PARTITION:OFFSET (e.g. 0:12)")
        out.add((int(partition), int(offset)))
    return frozenset(out)


def _json_object(value: bytes) -> dict[str, object] | None:
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None
