"""The one place where a raw record meets dedupe, the state machine and its outputs.

For each record: if Redis holds a decision for its coordinates, that decision is the answer
(a redelivery after a crash re-emits the same outputs: same event ids, same versions). Otherwise
the record is decoded, normalised, decided against the payment's snapshot, and the decision and
new snapshot are stored atomically (:mod:`consumers.store`) before the worker produces anything.
"""

from __future__ import annotations

from collections.abc import Callable
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
from consumers.store import Conflict, PaymentStore, StoredDecision
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

    async def _decide(self, source: SourceRecord, key: str) -> StoredDecision:
        try:
            doc = _tick(source.value)
            if doc is not None:
                return await self._expire(doc, source, key)
            envelope = _envelope(source.value)
            event = normalize(envelope)
        except Poison as poison:
            record = dead_letter(source, poison.stage, type(poison).__name__, str(poison),
                                 self._topics.dlq)
            return StoredDecision((record,), ("dlq",))  # depends on the bytes only: not stored
        if event is None:
            return StoredDecision((), ("unmapped",))
        snap, rev = await self._store.load(event.payment_id)
        decision = machine.apply(snap, event, self._clock(), source.to_json())
        _log_decision(decision, event.payment_id)
        return await self._store_decision(decision, snap, rev, source, key, event)

    async def _expire(self, tick: Tick, source: SourceRecord, key: str) -> StoredDecision:
        snap, rev = await self._store.load(tick.payment_id)
        decision = machine.expire(snap, self._clock(), self._window)
        _log_decision(decision, tick.payment_id)
        return await self._store_decision(decision, snap, rev, source, key, None)

    async def _store_decision(self, decision: machine.Decision, before: machine.Snapshot,
                              rev: str, source: SourceRecord, key: str,
                              event: PaymentEvent | None) -> StoredDecision:
        new_rev = int(rev or 0) + 1
        records = outputs.for_decision(decision, before, new_rev, source, self._topics, event)
        names = tuple("dlq" if o.name == "dead" else o.name for o in decision.outcomes)
        stored = StoredDecision(tuple(records), names or ("none",))
        if decision.snapshot == before and not records:
            return stored  # nothing changes and nothing is written (a duplicate): not stored
        oldest = machine.oldest_parked_at(decision.snapshot)
        committed = await self._store.commit(
            key, stored,
            snapshot=decision.snapshot if decision.snapshot != before else None,
            expected_rev=rev,
            parked_since=oldest.timestamp() if oldest else None,
        )
        if self._on_transition is not None:
            for transition in decision.transitions:
                self._on_transition(transition)
        return committed


def _log_decision(decision: machine.Decision, payment_id: str) -> None:
    for outcome in decision.outcomes:
        if outcome.name == "dead":
            log.warning("event_dead_lettered", payment_id=payment_id,
                        event_id=outcome.event.event_id, reason=outcome.reason)
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

