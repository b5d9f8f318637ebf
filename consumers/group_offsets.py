"""The worker group's committed offsets on the raw topic: shown with lag and members, and reset.

A reset commits new offsets under the group id from a consumer that never subscribes (``assign``
and ``commit``), so it never joins the group. The broker accepts such a commit only while the
group has no members (Kafka guards a live group's generation); the refusal to reset a group
with members is ours first (exit 3), and the broker's after ``--force``.

Rewinding makes the workers read records again. Their outputs were committed with their
offsets, so the reset first forgets the decisions Redis stored for them
(:func:`forget_decisions`): read again, each is decided anew and found a duplicate by event id,
and nothing is written twice downstream. To re-feed records, ``payhooks replay`` is the tool.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from aiokafka import TopicPartition
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.structs import OffsetAndMetadata
from redis.asyncio import Redis

from consumers.store import PaymentStore
from payhooks import kafka
from payhooks.config import Settings

_EMPTY_STATES = frozenset({"Empty", "Dead"})
_FORGET_CHUNK = 1000  # decision keys unlinked per Redis call


class ResetRefused(Exception):
    """The group has members, or the broker refused the commit: nothing was changed."""


@dataclass(frozen=True, slots=True)
class Member:
    member_id: str
    client_id: str
    host: str
    partitions: tuple[int, ...]  # of the raw topic


@dataclass(frozen=True, slots=True)
class PartitionOffsets:
    partition: int
    committed: int | None  # None: the group has committed nothing here
    beginning: int
    end: int  # last stable offset

    @property
    def lag(self) -> int:
        """Records the group has still to read (all retained ones when it never committed)."""
        start = self.beginning if self.committed is None else max(self.committed, self.beginning)
        return max(0, self.end - start)

    def as_dict(self) -> dict[str, int | None]:
        return {"partition": self.partition, "committed": self.committed,
                "beginning": self.beginning, "end": self.end, "lag": self.lag}


@dataclass(frozen=True, slots=True)
class GroupView:
    group: str
    topic: str
    state: str
    members: tuple[Member, ...]
    partitions: tuple[PartitionOffsets, ...]

    @property
    def active(self) -> bool:
        return bool(self.members) or self.state not in _EMPTY_STATES

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    def as_dict(self) -> dict[str, object]:
        return {"group": self.group, "topic": self.topic, "state": self.state,
                "active": self.active, "lag": self.lag,
                "members": [{"member_id": m.member_id, "client_id": m.client_id, "host": m.host,
                             "partitions": list(m.partitions)} for m in self.members],
                "partitions": [p.as_dict() for p in self.partitions]}


@dataclass(frozen=True, slots=True)
class Move:
    """One partition's committed offset, before and after a reset."""

    partition: int
    before: int | None
    after: int

    def as_dict(self) -> dict[str, int | None]:
        return {"partition": self.partition, "before": self.before, "after": self.after}


def plan(view: GroupView, target: str, partitions: tuple[int, ...] = (),
         at_time: Mapping[int, int | None] | None = None) -> list[Move]:
    """Where each chosen partition moves: ``earliest``, ``latest``, or ``time`` (then
    ``at_time`` holds the offsets-for-times answers; None: no record that late -> the end)."""
    chosen = [p for p in view.partitions if not partitions or p.partition in partitions]
    moves = []
    for p in chosen:
        if target == "earliest":
            after = p.beginning
        elif target == "latest":
            after = p.end
        elif target == "time" and at_time is not None:
            answer = at_time.get(p.partition)
            after = p.end if answer is None else min(max(answer, p.beginning), p.end)
        else:
            raise ValueError(f"unknown reset target {target!r}")
        moves.append(Move(p.partition, p.committed, after))
    return moves


async def view(settings: Settings) -> GroupView:
    """The group's state, members, and per-partition committed/end offsets and lag."""
    group, topic = settings.consumer.group_id, settings.topics.raw
    admin = kafka.admin(settings.kafka)
    await admin.start()
    try:
        # one group per call: aiokafka 0.14 decodes a v3 answer with the v2 schema, which breaks
        # on the second group of an answer
        [answer] = await admin.describe_consumer_groups([group])
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    described = answer.to_object()["groups"][0]
    members = tuple(_member(m, topic) for m in described["members"])
    known = await kafka.partitions_of(settings.kafka, topic)
    tps = [TopicPartition(topic, p) for p in known]
    consumer = kafka.consumer(settings.kafka, group_id=None)
    await consumer.start()
    try:
        beginnings = await consumer.beginning_offsets(tps) if tps else {}
        ends = await consumer.end_offsets(tps) if tps else {}
    finally:
        await consumer.stop()
    offsets = tuple(PartitionOffsets(
        tp.partition, _committed(committed.get(tp)), beginnings[tp], ends[tp]) for tp in tps)
    return GroupView(group, topic, described["state"] or "Dead", members, offsets)


async def offsets_at(settings: Settings, partitions: list[int], moment: datetime
                     ) -> dict[int, int | None]:
    """Offsets-for-times of the raw topic: the first offset at or after ``moment``."""
    consumer = kafka.consumer(settings.kafka, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topics.raw, p) for p in partitions]
        answer = await consumer.offsets_for_times({tp: int(moment.timestamp() * 1000)
                                                   for tp in tps})
    finally:
        await consumer.stop()
    return {tp.partition: (None if found is None else found.offset)
            for tp, found in answer.items()}


async def commit(settings: Settings, moves: list[Move]) -> None:
    """Commit ``moves`` under the group id without joining it; ResetRefused when the broker
    refuses (the group has members)."""
    from aiokafka.errors import (  # noqa: PLC0415
        CommitFailedError,
        IllegalGenerationError,
        RebalanceInProgressError,
        UnknownMemberIdError,
    )

    if not moves:
        return
    consumer = kafka.consumer(settings.kafka, group_id=settings.consumer.group_id)
    await consumer.start()
    try:
        tps = {TopicPartition(settings.topics.raw, m.partition): m for m in moves}
        consumer.assign(list(tps))
        try:
            await consumer.commit({tp: OffsetAndMetadata(m.after, "payhooks offsets reset")
                                   for tp, m in tps.items()})
        except (CommitFailedError, IllegalGenerationError, RebalanceInProgressError,
                UnknownMemberIdError) as exc:
            raise ResetRefused(f"the broker refused the commit ({type(exc).__name__}): the "
                               "group has live members; stop the workers first") from None
    finally:
        await consumer.stop()


async def forget_decisions(settings: Settings, redis: Redis, moves: list[Move]) -> int:
    """After a rewind, drop the stored decisions of the records the group will read again.

    A stored decision (``out:{topic}:{partition}:{offset}``) lets a worker re-emit the outputs of
    a batch whose transaction may not have committed (a crash between Redis and Kafka). Records
    below the committed offset were committed, outputs included; were their decisions kept, a
    rewind would write those outputs a second time. Without them the records are decided again,
    and every event id is already in its payment's snapshot: duplicates, no outputs. Only call
    this after the new offsets are committed and while the group has no members. Returns how
    many decisions were dropped.
    """
    store = PaymentStore(redis, settings.redis.key_prefix)
    dropped = 0
    for move in moves:
        if move.before is None or move.after >= move.before:
            continue
        for start in range(move.after, move.before, _FORGET_CHUNK):
            stop = min(start + _FORGET_CHUNK, move.before)
            keys = [store.decision_key(settings.topics.raw, move.partition, offset)
                    for offset in range(start, stop)]
            dropped += int(await redis.unlink(*keys))
    return dropped


def _committed(meta: OffsetAndMetadata | None) -> int | None:
    return None if meta is None or meta.offset < 0 else int(meta.offset)


def _member(described: Mapping[str, object], topic: str) -> Member:
    raw = described.get("member_assignment") or b""
    partitions: tuple[int, ...] = ()
    if isinstance(raw, bytes) and raw:
        try:
            assignment = ConsumerProtocolMemberAssignment.decode(raw)
            partitions = tuple(sorted(p for t, ps in assignment.assignment if t == topic
                                      for p in ps))
        except ValueError:
            partitions = ()
    return Member(str(described.get("member_id", "")), str(described.get("client_id", "")),
                  str(described.get("client_host", "")), partitions)
