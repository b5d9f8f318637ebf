"""The one place where a raw record meets dedupe, the state machine and its outputs.

For each record: if Redis holds a decision for its coordinates, that decision is the answer
(a redelivery after a crash re-emits the same outputs: same event ids, same versions). Otherwise
the record is decoded, normalised, decided against the payment's snapshot, and the decision and
new snapshot are stored atomically (:mod:`consumers.store`) before the worker produces anything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
import structlog
from aiokafka.structs import ConsumerRecord

from consumers import outputs
from consumers import state as machine
from consumers.dlq import SourceRecord, dead_letter
from consumers.errors import DecodeError, Poison, Retryable
from consumers.normalize import normalize
from consumers.store import Conflict, PaymentStore, PendingCommit, StoredDecision
from payhooks.config import TopicSettings
from payhooks.kafka import Record
from schemas import wire
from schemas.envelope import Envelope, EnvelopeError
from schemas.event import PaymentEvent

log = structlog.get_logger("payhooks.consumers")

_CONFLICT_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Tick:
    """An internal record asking to release one payment's parked events that are due."""

    payment_id: str

    def to_json(self) -> bytes:
        return orjson.dumps({"schema": wire.SCHEMA_TICK_V1, "payment_id": self.payment_id})


class Handler:
    def __init__(self, topics: TopicSettings, store: PaymentStore, parking_window: timedelta,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 on_transition: Callable[[machine.Transition], None] | None = None) -> None:
        self._topics = topics
        self._store = store
        self._window = parking_window
        self._clock = clock
        self._on_transition = on_transition

    async def handle(self, record: ConsumerRecord) -> StoredDecision:
        source = SourceRecord.of(record)
        key = self._store.decision_key(record.topic, record.partition, record.offset)
        stored = await self._store.stored(key)
        if stored is not None:
            return stored
        for _ in range(_CONFLICT_ATTEMPTS):
            try:
                return await self._decide(source, key)
            except Conflict:
                continue  # another worker moved the snapshot on: decide again on the new one
        raise Retryable(f"snapshot kept changing under record {key}")

    async def handle_batch(self, records: Sequence[ConsumerRecord],
                           bind: Callable[[ConsumerRecord], None] | None = None
                           ) -> list[StoredDecision]:
        """The decisions for one partition's batch, in order: what :meth:`handle` would answer
        for each record in turn, with two Redis round trips for the whole batch.

        One round trip reads every stored decision and the snapshots of the batch's payments;
        the records are then decided in order, each from the snapshot the records before it
        leave; one round trip stores them all (:meth:`PaymentStore.commit_many`, with the same
        checks as one by one). A record whose decision could not be stored as decided (its
        snapshot moved on meanwhile, e.g. under another worker, or a decision was stored for it
        before), and every later record of its payment, is decided again by :meth:`handle`.
        ``bind`` is called with each record before it is decided (the worker binds the record's
        ids and trace context to the log lines about it).
        """
        keys = [self._store.decision_key(r.topic, r.partition, r.offset) for r in records]
        # the record key is the payment id (the receiver keys by payment); a record whose
        # payment turns out to be another is loaded on its own
        guesses = list(dict.fromkeys(r.key.decode("utf-8", "replace") for r in records if r.key))
        stored, view = await self._store.prefetch(keys, guesses)

        async def load(payment_id: str) -> tuple[machine.Snapshot, str]:
            if payment_id not in view:
                view[payment_id] = await self._store.load(payment_id)
            return view[payment_id]

        plans: list[_Plan] = []
        for record, key in zip(records, keys, strict=True):
            if bind is not None:
                bind(record)
            if key in stored:
                plans.append(_Plan(stored[key]))
                continue
            plan = await self._plan(SourceRecord.of(record), key, load)
            if plan.pending is not None and plan.pending.snapshot is not None:
                view[plan.pending.payment_id] = (plan.pending.snapshot,
                                                 str(plan.pending.new_rev))
            plans.append(plan)
        pending = [p.pending for p in plans if p.pending is not None]
        committed = iter(await self._store.commit_many(pending))
        results = [next(committed) if p.pending is not None else p.answer for p in plans]
        answers: list[StoredDecision] = []
        broken: set[str] = set()  # payments whose batch view is not what Redis holds
        for record, plan, result in zip(records, plans, results, strict=True):
            if plan.payment_id is not None and (plan.payment_id in broken or result is None):
                broken.add(plan.payment_id)
                if bind is not None:
                    bind(record)
                answers.append(await self.handle(record))
                continue
            assert result is not None  # only decisions of a payment are ever left unstored
            if plan.pending is not None and result is not plan.pending.decision:
                broken.add(plan.payment_id or "")  # stored before: the view is not Redis'
            elif plan.pending is not None:
                self._count(plan.transitions)
            answers.append(result)
        return answers

    async def _decide(self, source: SourceRecord, key: str) -> StoredDecision:
        plan = await self._plan(source, key, self._store.load)
        item = plan.pending
        if item is None:
            return plan.answer
        committed = await self._store.commit(
            key, item.decision, snapshot=item.snapshot, expected_rev=item.expected_rev,
            parked_since=item.parked_since)
        self._count(plan.transitions)
        return committed

    async def _plan(self, source: SourceRecord, key: str,
                    load: Callable[[str], Awaitable[tuple[machine.Snapshot, str]]]) -> _Plan:
        """Decide on one record from the snapshot ``load`` gives; nothing is stored yet."""
        event: PaymentEvent | None = None
        try:
            tick = _tick(source.value)
            if tick is None:
                event = normalize(_envelope(source.value))
        except Poison as poison:
            # the message is written for the DLQ's headers: it never quotes a secret or the body
            log.warning("record_dead_lettered", stage=poison.stage,
                        error=type(poison).__name__, reason=str(poison))
            record = dead_letter(source, poison.stage, type(poison).__name__, str(poison),
                                 self._topics.dlq)
            return _Plan(StoredDecision((record,), ("dlq",)))  # depends on the bytes only
        if tick is not None:
            payment_id = tick.payment_id
            snap, rev = await load(payment_id)
            decision = machine.expire(snap, self._clock(), self._window)
        elif event is None:
            return _Plan(StoredDecision((), ("unmapped",)))
        else:
            payment_id = event.payment_id
            snap, rev = await load(payment_id)
            decision = machine.apply(snap, event, self._clock(), source.to_json())
        _log_decision(decision, payment_id)
        new_rev = int(rev or 0) + 1
        records = outputs.for_decision(decision, snap, new_rev, source, self._topics, event)
        names = tuple("dlq" if o.name == "dead" else o.name for o in decision.outcomes)
        stored = StoredDecision(tuple(records), names or ("none",))
        if decision.snapshot == snap and not records:
            # nothing changes and nothing is written (a duplicate): not stored
            return _Plan(stored, payment_id)
        oldest = machine.oldest_parked_at(decision.snapshot)
        return _Plan(stored, payment_id, PendingCommit(
            key, stored, payment_id,
            snapshot=decision.snapshot if decision.snapshot != snap else None,
            expected_rev=rev,
            parked_since=oldest.timestamp() if oldest else None,
        ), decision.transitions)

    def _count(self, transitions: Sequence[machine.Transition]) -> None:
        if self._on_transition is not None:
            for transition in transitions:
                self._on_transition(transition)


@dataclass(frozen=True, slots=True)
class _Plan:
    """One record's decision before anything is stored."""

    answer: StoredDecision
    payment_id: str | None = None  # the payment whose snapshot it was decided from
    pending: PendingCommit | None = None  # what to store; None: nothing
    transitions: tuple[machine.Transition, ...] = ()


def _log_decision(decision: machine.Decision, payment_id: str) -> None:
    for outcome in decision.outcomes:
        if outcome.name == "dead":
            log.warning("event_dead_lettered", payment_id=payment_id,
                        event_id=outcome.event.event_id, reason=outcome.reason)
        elif outcome.name == "stale":
            # SPEC: a stale event is a no-op recorded in metrics and logs (a repeated capture or
            # refund under a new event id shows up here)
            log.info("event_stale", payment_id=payment_id, event_id=outcome.event.event_id,
                     reason=outcome.reason)
        else:
            log.debug("event_decided", payment_id=payment_id, event_id=outcome.event.event_id,
                      outcome=outcome.name, reason=outcome.reason)


def _tick(value: bytes) -> Tick | None:
    if wire.SCHEMA_TICK_V1.encode() not in value[:80]:
        return None
    try:
        doc = orjson.loads(value)
        return Tick(payment_id=str(doc["payment_id"]))
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise DecodeError(f"malformed tick ({exc})") from None


def _envelope(value: bytes) -> Envelope:
    try:
        return Envelope.from_json(value)
    except EnvelopeError as exc:
        raise DecodeError(str(exc)) from None


def tick_record(topic: str, payment_id: str) -> Record:
    """The tick for ``payment_id``, keyed like the payment's raw records (same partition)."""
    return Record(topic, payment_id.encode(), Tick(payment_id).to_json(),
                  ((wire.HEADER_SCHEMA, wire.SCHEMA_TICK_V1.encode()),))

