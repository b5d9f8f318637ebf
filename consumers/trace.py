"""One payment's timeline: its records on every payhooks topic and its live Redis state, in order.

Reading is cheap because every record of a payment carries the key ``{provider}:{reference}``
(``webhooks.dlq`` keeps the failed record's key): for each topic only the partition that key maps
to under the producers' default partitioner (murmur2) is read, key bytes are compared before any
value is decoded, and a time window (``since``/``until``) becomes an offset range through
``offsets_for_times``. Nothing is written and no consumer group is joined (assign + seek,
``read_committed``).

Order of the rows: when payhooks wrote them. A Kafka record sorts by its record timestamp (set by
the receiver or the worker that produced it); a parked event held in Redis sorts by its
``parked_at``. Ties go by pipeline stage (raw, events, transitions, state, dlq, redis), then by
offset. Each row also shows the record's own time: ``received_at`` (raw), ``occurred_at``
(events), ``applied_at`` (transitions), ``updated_at`` (state).

:mod:`consumers.timeline` (pure) turns the records and the snapshot into a
:class:`~consumers.timeline.Timeline` given ``now``; this module does the reading around it.
Errors: :class:`TraceError` (and its child :class:`KafkaUnavailable`); an unreachable Redis is not
an error, it is reported in :class:`Live`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from redis.asyncio import Redis

from consumers.errors import Retryable
from consumers.store import PaymentStore
from consumers.timeline import (
    ROLES,
    Live,
    Scan,
    Timeline,
    TracedRecord,
    Window,
    build,
    partition_for,
)
from payhooks import kafka
from payhooks.config import Settings

#: per-partition fetch size: large, so a long partition is read in few round trips
_FETCH_BYTES = 16 * 1024 * 1024
#: give up on a partition that stops advancing for this long before its end
_STALL_SECONDS = 30.0

ALL_TIME = Window()  # no time window: every record of the partitions

Progress = Callable[[str, int, int], None]  # (topic[partition], records read, records to read)


class TraceError(Exception):
    """The trace could not be made; the message says what to do next."""


class KafkaUnavailable(TraceError):
    """Kafka did not answer."""


# --- reading ------------------------------------------------------------------------------------


async def trace(settings: Settings, payment_id: str, *, now: datetime, window: Window = ALL_TIME,
                payload: bool = False, progress: Progress | None = None) -> Timeline:
    """Read ``payment_id``'s records from Kafka and its snapshot from Redis, at once; build."""
    (records, scans, notes), live = await asyncio.gather(
        read_records(settings, payment_id, window, progress), read_live(settings, payment_id))
    return build(payment_id, records, live, now=now, window=window, scans=scans,
                 parking_window=timedelta(seconds=settings.consumer.parking_window_seconds),
                 payload=payload, notes=notes)


async def read_records(settings: Settings, payment_id: str, window: Window = ALL_TIME,
                       progress: Progress | None = None
                       ) -> tuple[list[TracedRecord], list[Scan], list[str]]:
    """Every record keyed ``payment_id`` in the window, from the one partition per topic its key
    maps to; the ranges read; notes (topics that do not exist)."""
    key = payment_id.encode()
    topics = settings.topics.by_role()
    try:
        numbers = await asyncio.gather(
            *(kafka.partitions_of(settings.kafka, topics[role]) for role in ROLES))
    except KafkaError as exc:
        raise _unavailable(settings, exc) from None
    notes = [f"topic {topics[role]} does not exist" for role, found in zip(ROLES, numbers,
                                                                             strict=True)
             if not found]
    targets = {TopicPartition(topics[role], partition_for(key, found)): role
               for role, found in zip(ROLES, numbers, strict=True) if found}
    if not targets:
        raise TraceError(f"none of the topics {', '.join(topics[r] for r in ROLES)} exists; "
                         "check [topics] in the configuration, or create them: "
                         "payhooks topics apply")
    consumer = kafka.consumer(settings.kafka, group_id=None,
                              max_partition_fetch_bytes=_FETCH_BYTES,
                              fetch_max_bytes=4 * _FETCH_BYTES)
    try:
        await consumer.start()
        try:
            records, scans = await _read(consumer, targets, key, window, progress)
        finally:
            await consumer.stop()
    except KafkaError as exc:
        raise _unavailable(settings, exc) from None
    return records, scans, notes


async def _read(consumer: Any, targets: Mapping[TopicPartition, str], key: bytes,
                window: Window, progress: Progress | None
                ) -> tuple[list[TracedRecord], list[Scan]]:
    """Read each target partition over its range; keep the records whose key is ``key``."""
    partitions = list(targets)
    consumer.assign(partitions)
    bounds = await _bounds(consumer, partitions, window)
    found: dict[TopicPartition, list[TracedRecord]] = {tp: [] for tp in partitions}
    positions = {tp: start for tp, (start, _) in bounds.items()}
    active = set()
    for tp, (start, stop) in bounds.items():
        if start < stop:
            consumer.seek(tp, start)
            active.add(tp)
        else:
            consumer.pause(tp)
    moved_at = time.monotonic()
    while active:
        batch = await consumer.getmany(*active, timeout_ms=500)
        for tp, records in batch.items():
            stop, role, kept = bounds[tp][1], targets[tp], found[tp]
            for r in records:  # key bytes first: values of other payments are never decoded
                if r.key == key and r.offset < stop:
                    kept.append(TracedRecord(role, tp.topic, tp.partition, r.offset,
                                             r.timestamp, r.value or b"",
                                             tuple(r.headers or ())))
        if await _advance(consumer, active, positions, bounds):
            moved_at = time.monotonic()
        if progress is not None:
            for tp, (start, stop) in bounds.items():
                progress(f"{tp.topic}[{tp.partition}]", min(positions[tp], stop) - start,
                         stop - start)
        if active and time.monotonic() - moved_at > _STALL_SECONDS:
            stuck = ", ".join(f"{tp.topic}[{tp.partition}] at {positions[tp]} of "
                              f"{bounds[tp][1]}" for tp in sorted(active))
            raise TraceError(f"reading stopped advancing ({stuck}) for {_STALL_SECONDS:.0f} s; "
                             "is the broker healthy? Retry, or narrow the time window")
    scans = [Scan(targets[tp], tp.topic, tp.partition, start, stop, len(found[tp]))
             for tp, (start, stop) in bounds.items()]
    return [r for listed in found.values() for r in listed], scans


async def _advance(consumer: Any, active: set[TopicPartition],
                   positions: dict[TopicPartition, int],
                   bounds: Mapping[TopicPartition, tuple[int, int]]) -> bool:
    """Update ``positions``; pause and drop from ``active`` the partitions read to their end.
    True when any partition moved."""
    moved = False
    for tp in list(active):
        position: int = await consumer.position(tp)
        moved |= position != positions[tp]
        positions[tp] = position
        if position >= bounds[tp][1]:
            active.discard(tp)
            consumer.pause(tp)
    return moved


async def _bounds(consumer: Any, partitions: list[TopicPartition], window: Window
                  ) -> dict[TopicPartition, tuple[int, int]]:
    """The offset range to read per partition: [first at or after since, first at or after
    until) within [beginning, committed end)."""
    begin = await consumer.beginning_offsets(partitions)
    end = await consumer.end_offsets(partitions)  # read_committed: the last stable offset
    start = dict(begin)
    stop = dict(end)
    if window.since is not None:
        since_ms = int(window.since.timestamp() * 1000)
        found = await consumer.offsets_for_times(dict.fromkeys(partitions, since_ms))
        for tp in partitions:
            start[tp] = stop[tp] if found[tp] is None else max(begin[tp], found[tp].offset)
    if window.until is not None:
        until_ms = int(window.until.timestamp() * 1000)
        found = await consumer.offsets_for_times(dict.fromkeys(partitions, until_ms))
        for tp in partitions:
            if found[tp] is not None:
                stop[tp] = min(stop[tp], found[tp].offset)
    return {tp: (start[tp], max(start[tp], stop[tp])) for tp in partitions}


async def read_live(settings: Settings, payment_id: str) -> Live:
    """The payment's snapshot in Redis; an unreachable Redis is reported, not raised."""
    client = Redis.from_url(settings.redis.url, socket_connect_timeout=3, socket_timeout=5)
    try:
        store = PaymentStore(client, settings.redis.key_prefix)
        snapshot, rev = await store.load(payment_id)
        trusted = await store.ready()
    except Retryable as exc:
        cause = exc.__cause__
        return Live("unreachable", message=f"{settings.redis.url}: "
                    f"{type(cause).__name__ if cause else exc}")
    finally:
        await client.aclose()
    if not rev:
        return Live("absent", trusted=trusted)
    return Live("ok", snapshot, trusted=trusted)


def _unavailable(settings: Settings, exc: KafkaError) -> KafkaUnavailable:
    return KafkaUnavailable(
        f"Kafka at {settings.kafka.bootstrap_servers} did not answer ({exc}); is the broker "
        "up (`make stack-up` starts a local one)? Check "
        "kafka.bootstrap_servers in the configuration (PAYHOOKS_CONFIG)")
