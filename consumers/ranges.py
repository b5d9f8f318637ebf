"""Offset ranges of a topic, resolved from offsets or times, and reading them outside any group.

A range is half open, ``[start, end)``. ``--to-offset M`` is inclusive (the last offset wanted),
so its end is ``M + 1``. A time window ``--from-time T1 [--to-time T2]`` selects exactly the records
whose timestamp ``t`` has ``T1 <= t < T2`` (``--to-time`` is exclusive, so consecutive windows never
overlap). Kafka's offsets-for-times finds where to start (every earlier record is older than T1);
record timestamps are the producers' clocks and need not grow with the offset, so the window is
read to the partition's end and filtered by timestamp, never cut at offsets-for-times(T2). Every
range is clamped to what the partition holds *when it is resolved*: records written later (a
replay's own output, when it writes to the topic it reads) are never read.

Reading uses a consumer with no group (``assign`` and ``seek``): it never joins, and never commits
offsets of, any consumer group. It reads committed transactions only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from payhooks import kafka
from payhooks.config import Settings


class RangeError(ValueError):
    """The requested range cannot be resolved (unknown topic or partition, reversed bounds)."""


@dataclass(frozen=True, slots=True)
class PartitionRange:
    partition: int
    start: int  # first offset, inclusive
    end: int  # offset after the last, exclusive

    @property
    def size(self) -> int:
        """How many offsets the range spans (transaction markers included)."""
        return max(0, self.end - self.start)

    def as_dict(self) -> dict[str, int]:
        return {"partition": self.partition, "start": self.start, "end": self.end}


@dataclass(frozen=True, slots=True)
class RangeRequest:
    """Which part of a topic: partitions (all when empty) and offsets or times."""

    topic: str
    partitions: tuple[int, ...] = ()
    from_offset: int | None = None
    to_offset: int | None = None  # inclusive
    from_time: datetime | None = None
    to_time: datetime | None = None  # exclusive

    def __post_init__(self) -> None:
        if self.from_offset is not None and self.from_time is not None:
            raise RangeError("give offsets or times, not both")
        if self.to_offset is not None and self.from_offset is None:
            raise RangeError("--to-offset needs --from-offset")
        if self.to_time is not None and self.from_time is None:
            raise RangeError("--to-time needs --from-time")
        if (self.from_offset is not None and self.to_offset is not None
                and self.to_offset < self.from_offset):
            raise RangeError(f"--to-offset {self.to_offset} is before --from-offset "
                             f"{self.from_offset}")
        if (self.from_time is not None and self.to_time is not None
                and self.to_time <= self.from_time):
            raise RangeError("--to-time must be after --from-time")

    def in_window(self, timestamp_ms: int) -> bool:
        """Whether a record with this timestamp is inside the time window (always without one)."""
        if self.from_time is not None and timestamp_ms < _millis(self.from_time):
            return False
        return self.to_time is None or timestamp_ms < _millis(self.to_time)

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"topic": self.topic}
        if self.from_offset is not None:
            out["from_offset"] = self.from_offset
        if self.to_offset is not None:
            out["to_offset"] = self.to_offset
        if self.from_time is not None:
            out["from_time"] = self.from_time.isoformat()
        if self.to_time is not None:
            out["to_time"] = self.to_time.isoformat()
        return out


def offset_range(partition: int, beginning: int, end: int, from_offset: int | None,
                 to_offset: int | None) -> PartitionRange:
    """``[from_offset, to_offset]`` clamped to ``[beginning, end)``; everything when unset."""
    start = beginning if from_offset is None else max(from_offset, beginning)
    stop = end if to_offset is None else min(to_offset + 1, end)
    return PartitionRange(partition, min(start, end), max(min(start, end), stop))


def time_range(partition: int, end: int, first_at_or_after_from: int | None) -> PartitionRange:
    """Where a time window's records can be: from the first record at or after its start (the
    offsets-for-times answer; ``None``: there is none) to the partition's end."""
    start = end if first_at_or_after_from is None else min(first_at_or_after_from, end)
    return PartitionRange(partition, start, end)


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class RangeReader:
    """A group-less consumer over one topic: resolves ranges, then reads them once."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self._settings = settings
        self._topic = topic
        self._consumer = kafka.consumer(settings.kafka, group_id=None)

    async def __aenter__(self) -> RangeReader:
        await self._consumer.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._consumer.stop()

    async def resolve(self, request: RangeRequest) -> list[PartitionRange]:
        known = await kafka.partitions_of(self._settings.kafka, self._topic)
        if not known:
            raise RangeError(f"topic {self._topic!r} does not exist (see `payhooks topics "
                             "apply --dry-run` for the configured names)")
        chosen = list(request.partitions) or known
        unknown = sorted(set(chosen) - set(known))
        if unknown:
            raise RangeError(f"topic {self._topic!r} has partitions {known}, not {unknown}")
        tps = [TopicPartition(self._topic, p) for p in chosen]
        self._consumer.assign(tps)
        beginnings = await self._consumer.beginning_offsets(tps)
        ends = await self._consumer.end_offsets(tps)  # last stable offsets (read_committed)
        if request.from_time is None:
            return [offset_range(tp.partition, beginnings[tp], ends[tp], request.from_offset,
                                 request.to_offset) for tp in tps]
        starts = await self._consumer.offsets_for_times(
            {tp: _millis(request.from_time) for tp in tps})
        return [time_range(tp.partition, ends[tp], _offset(starts.get(tp))) for tp in tps]

    async def read(self, ranges: Iterable[PartitionRange],
                   on_position: Callable[[int], None] | None = None
                   ) -> AsyncIterator[ConsumerRecord]:
        """Every committed record inside ``ranges``, in offset order per partition.

        ``on_position`` gets the number of offsets passed so far (for a progress bar).
        """
        todo = {TopicPartition(self._topic, r.partition): r for r in ranges if r.size}
        if not todo:
            return  # (and no assign([]): aiokafka's stop() then waits on its fetcher forever)
        self._consumer.assign(list(todo))
        for tp, r in todo.items():
            self._consumer.seek(tp, r.start)
        passed = dict.fromkeys(todo, 0)
        while todo:
            batch = await self._consumer.getmany(*todo, timeout_ms=500, max_records=500)
            for tp, records in batch.items():
                wanted = todo.get(tp)
                if wanted is None:
                    continue
                for record in records:
                    if record.offset >= wanted.end:
                        break
                    yield record
            for tp in list(todo):
                position = await self._consumer.position(tp)
                passed[tp] = min(position, todo[tp].end) - todo[tp].start
                if position >= todo[tp].end:
                    self._consumer.pause(tp)
                    del todo[tp]
            if on_position is not None:
                on_position(sum(passed.values()))


def _offset(answer: object) -> int | None:
    return None if answer is None else int(answer.offset)  # type: ignore[attr-defined]
