"""Reading ``webhooks.dlq`` for people: dead letters with where, why and how old, redacted.

Dead letters are read outside any consumer group (:mod:`consumers.ranges`). Their id is
``PARTITION:OFFSET`` on the DLQ topic. Showing one redacts its payload the way the logs are
redacted: sensitive keys are blanked, card numbers masked to their last four digits, secrets
replaced; bytes that are not JSON are shown only by their length.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka.structs import ConsumerRecord

from consumers.ranges import RangeError, RangeReader, RangeRequest
from consumers.selection import Described, Filters, describe
from payhooks import logging as plog
from payhooks.config import Settings
from payhooks.kafka import Headers


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One ``webhooks.dlq`` record, described."""

    partition: int
    offset: int
    timestamp_ms: int
    described: Described
    headers: Headers
    value: bytes

    @property
    def id(self) -> str:
        return f"{self.partition}:{self.offset}"

    @classmethod
    def of(cls, record: ConsumerRecord) -> DeadLetter:
        headers: Headers = tuple(record.headers or ())
        return cls(record.partition, record.offset, record.timestamp,
                   describe(record.key or b"", record.value or b"", headers), headers,
                   record.value or b"")

    def age_seconds(self, now: datetime) -> float:
        return max(0.0, now.timestamp() - self.timestamp_ms / 1000)

    def summary(self, now: datetime) -> dict[str, Any]:
        """The listing row: id, age, stage, error, payment, provider, type, source."""
        d = self.described
        return {
            "id": self.id, "dead_at": datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)
            .isoformat(timespec="seconds").replace("+00:00", "Z"),
            "age_seconds": int(self.age_seconds(now)), "stage": d.stage,
            "error_class": d.error_class, "error_message": d.error_message,
            "payment_id": d.payment_id, "provider": d.provider, "event_type": d.event_type,
            "event_id": d.event_id, "source": (f"{d.source_topic}:{d.source_partition}:"
                                               f"{d.source_offset}" if d.source_topic else None),
        }

    def detail(self, now: datetime) -> dict[str, Any]:
        """The listing row plus every header and the redacted value."""
        return {**self.summary(now),
                "headers": {k: plog.mask_pans(plog.mask_secrets(v.decode("utf-8", "replace")))
                            for k, v in self.headers},
                "value": redacted_value(self.value)}


def redacted_value(value: bytes) -> Any:
    """The record value as JSON with the envelope's payload parsed, redacted like the logs."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return f"<{len(value)} bytes, not JSON>"
    if not (isinstance(doc, dict) and isinstance(doc.get("payload"), str)):
        return _redact(doc)
    # the envelope's payload is what the operator came to see: shown, with its inside redacted
    # (the logs blank a "payload" key whole)
    text = doc["payload"]
    raw = base64.b64decode(text) if doc.get("payload_encoding") == "base64" else text.encode()
    try:
        payload = _redact(orjson.loads(raw))
    except orjson.JSONDecodeError:
        payload = f"<{len(raw)} bytes, not JSON>"
    return {**_redact({k: v for k, v in doc.items() if k != "payload"}), "payload": payload}


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return plog.mask_pans(plog.mask_secrets(value))
    if isinstance(value, dict):
        return {k: plog.REDACTED if str(k).lower() in plog.SENSITIVE_KEYS else _redact(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and len(str(abs(value))) >= 13:
        return plog.mask_pans(str(value))  # a card number stored as a JSON number
    return value


async def list_dead(settings: Settings, filters: Filters, since: datetime | None = None,
                    progress: Callable[[int], None] | None = None) -> list[DeadLetter]:
    """Every dead letter ``filters`` select (from ``since``, else from the beginning)."""
    request = RangeRequest(settings.topics.dlq, from_offset=None if since else 0,
                           from_time=since)
    found = []
    async with RangeReader(settings, settings.topics.dlq) as reader:
        ranges = await reader.resolve(request)
        async for record in reader.read(ranges, on_position=progress):
            if not request.in_window(record.timestamp):
                continue
            dead = DeadLetter.of(record)
            if filters.matches(dead.partition, dead.offset, dead.described):
                found.append(dead)
    return found


async def one(settings: Settings, partition: int, offset: int) -> DeadLetter:
    """The dead letter at ``partition:offset``; RangeError when there is none."""
    request = RangeRequest(settings.topics.dlq, (partition,), offset, offset)
    async with RangeReader(settings, settings.topics.dlq) as reader:
        [wanted] = await reader.resolve(request)
        if wanted.size == 0:
            raise RangeError(f"no dead letter {partition}:{offset} on {settings.topics.dlq!r} "
                             "(see `payhooks dlq list` for the ids)")
        async for record in reader.read([wanted]):
            if record.offset == offset:
                return DeadLetter.of(record)
    raise RangeError(f"{partition}:{offset} on {settings.topics.dlq!r} is a transaction marker "
                     "or an aborted record, not a dead letter (see `payhooks dlq list`)")
