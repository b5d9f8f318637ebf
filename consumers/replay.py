"""Re-feeds selected records of ``webhooks.raw`` or ``webhooks.dlq`` into the pipeline.

Records of ``webhooks.raw`` are appended to ``webhooks.raw`` again; dead letters go back to their
source topic (always ``webhooks.raw``: the workers read nothing else) without their ``dlq_*``
headers. Each record keeps its key, value and other headers and gains a ``replay`` header naming
the audit record. The workers dedupe by event id, so a record they already applied is a
``duplicate`` and creates no transition; replaying is safe, and only what failed before (a
normaliser bug since fixed) has any effect.

Dead letters of the ``apply`` stage are skipped: the state machine decided them (an impossible
transition, or a parked event whose window expired), so it remembers their event ids and a
redrive would be a no-op duplicate. Dead letters from any other source topic are skipped too.

Reading never joins a consumer group (see :mod:`consumers.ranges`); a dry run only counts.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka.partitioner import murmur2

from consumers.ranges import PartitionRange, RangeError, RangeReader, RangeRequest
from consumers.ratelimit import TokenBucket
from consumers.selection import Described, Filters, describe
from payhooks import kafka
from payhooks.config import Settings, TopicSettings
from payhooks.kafka import Headers
from schemas import wire

_ACK_WINDOW = 200  # sends in flight before waiting for their acknowledgements
_ACK_DEADLINE = 30.0  # seconds for Kafka to acknowledge a window of sends

SKIP_APPLY_STAGE = "apply_stage"
SKIP_FOREIGN_SOURCE = "source_not_raw"

#: progress callback: (offsets passed, offsets in the ranges, records matched, records written)
Progress = Callable[[int, int, int, int], None]


@dataclass(slots=True)
class Tally:
    """Running counts of one replay; the caller keeps it, so a failed run still has its counts."""

    ranges: list[PartitionRange] = field(default_factory=list)
    scanned: int = 0
    selected: int = 0  # passed the filters (matched + skipped)
    matched: int = 0
    written: int = 0
    by_partition: Counter[int] = field(default_factory=Counter)
    by_type: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(r.size for r in self.ranges)

    def counts(self) -> dict[str, int]:
        """Flat counts for the audit record."""
        return {"scanned": self.scanned, "matched": self.matched, "written": self.written,
                **{f"skipped_{k}": v for k, v in self.skipped.items()}}

    def as_dict(self) -> dict[str, object]:
        return {"ranges": [r.as_dict() for r in self.ranges], "scanned": self.scanned,
                "matched": self.matched, "written": self.written,
                "by_partition": {str(p): n for p, n in sorted(self.by_partition.items())},
                "by_type": dict(sorted(self.by_type.items())), "skipped": dict(self.skipped)}


def check_topic(topics: TopicSettings, topic: str) -> None:
    """Replay reads the raw topic or the DLQ; anything else is a usage error."""
    if topic not in (topics.raw, topics.dlq):
        raise RangeError(f"replay reads {topics.raw!r} or {topics.dlq!r}, not {topic!r} (the "
                         "workers read only the raw topic; outputs are rebuilt by replaying it)")


def partition_for_key(key: str, partitions: list[int]) -> int:
    """The partition the producers' default partitioner gives ``key`` (murmur2, as Java's)."""
    ordered = sorted(partitions)
    hashed: int = murmur2(key.encode())
    return ordered[(hashed & 0x7FFFFFFF) % len(ordered)]


def skip_reason(topics: TopicSettings, read_from: str, d: Described) -> str | None:
    """Why a selected record is not re-produced (None: it goes to the raw topic)."""
    if read_from == topics.raw:
        return None
    if d.stage == "apply":
        return SKIP_APPLY_STAGE
    if d.source_topic != topics.raw:
        return SKIP_FOREIGN_SOURCE
    return None


def replay_headers(headers: Headers, audit_id: str) -> Headers:
    """``headers`` without the dead-letter headers and any earlier ``replay`` tag, plus ours."""
    kept = tuple((k, v) for k, v in headers
                 if k not in wire.DLQ_HEADERS and k != wire.HEADER_REPLAY)
    return (*kept, (wire.HEADER_REPLAY, audit_id.encode()))


async def narrow(settings: Settings, request: RangeRequest, filters: Filters) -> RangeRequest:
    """With ``--payment`` and no ``--partition``, read only the payment's partition."""
    if request.partitions or filters.payment is None:
        return request
    known = await kafka.partitions_of(settings.kafka, request.topic)
    if not known:
        return request  # resolve() reports the missing topic
    return RangeRequest(request.topic, (partition_for_key(filters.payment, known),),
                        request.from_offset, request.to_offset, request.from_time,
                        request.to_time)


async def replay(settings: Settings, request: RangeRequest, filters: Filters, tally: Tally, *,
                 execute: bool, audit_id: str, rate: float | None,
                 progress: Progress | None = None) -> Tally:
    """Count (dry run) or re-produce (``execute``) the records ``filters`` select in ``request``.

    Raises RangeError for a range that cannot be resolved and KafkaError/TimeoutError when
    Kafka fails; ``tally`` holds the counts reached either way.
    """
    check_topic(settings.topics, request.topic)
    request = await narrow(settings, request, filters)
    bucket = TokenBucket(rate) if rate else None
    producer = kafka.producer(settings.kafka) if execute else None
    pending: list[asyncio.Future[object]] = []

    async def settle() -> None:
        if pending:
            await asyncio.wait_for(asyncio.gather(*pending), _ACK_DEADLINE)
            tally.written += len(pending)
            pending.clear()

    def report(passed: int) -> None:
        if progress is not None:
            progress(passed, tally.total, tally.matched, tally.written + len(pending))

    if producer is not None:
        await producer.start()
    try:
        async with RangeReader(settings, request.topic) as reader:
            tally.ranges = await reader.resolve(request)
            report(0)
            async for record in reader.read(tally.ranges, on_position=report):
                tally.scanned += 1
                if not request.in_window(record.timestamp):
                    continue
                headers: Headers = tuple(record.headers or ())
                d = describe(record.key or b"", record.value or b"", headers)
                if not filters.matches(record.partition, record.offset, d):
                    continue
                tally.selected += 1
                reason = skip_reason(settings.topics, request.topic, d)
                if reason is not None:
                    tally.skipped[reason] += 1
                    continue
                tally.matched += 1
                tally.by_partition[record.partition] += 1
                tally.by_type[d.type_label] += 1
                if producer is None:
                    continue
                if bucket is not None:
                    await bucket.take()
                pending.append(await producer.send(
                    settings.topics.raw, record.value, key=record.key,
                    headers=list(replay_headers(headers, audit_id))))
                if len(pending) >= _ACK_WINDOW:
                    await settle()
            await settle()
            report(tally.total)
    finally:
        if producer is not None:
            await producer.stop()
    return tally
