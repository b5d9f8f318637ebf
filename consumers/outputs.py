"""The records a decision writes: canonical event, transitions, public and internal snapshots,
and dead letters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from consumers.codec import snapshot_to_json, state_to_json, transition_to_json
from consumers.dlq import SourceRecord, dead_letter
from consumers.state import Decision, Snapshot
from payhooks.config import TopicSettings
from payhooks.kafka import Headers, Record
from schemas import wire
from schemas.event import PaymentEvent

#: headers of the input record carried over to every output (trace and replay context)
CARRIED = frozenset({wire.HEADER_DELIVERY_ID, wire.HEADER_TRACEPARENT, wire.HEADER_REPLAY})

#: the outcomes after which the event itself is published on payments.events
_PUBLISHED = frozenset({"applied", "stale", "noted", "parked", "released", "inferred"})


def carried(source: SourceRecord) -> Headers:
    return tuple((k, v) for k, v in source.headers if k in CARRIED)


def for_decision(
    decision: Decision,
    before: Snapshot,
    new_rev: int,
    source: SourceRecord,
    topics: TopicSettings,
    event: PaymentEvent | None = None,
) -> list[Record]:
    """Every record ``decision`` writes, in order: event, transitions, state, snapshot, DLQ."""
    context = carried(source)
    records: list[Record] = []
    key = before.payment_id.encode()
    first = decision.outcomes[0].name if decision.outcomes else None
    if event is not None and first in _PUBLISHED:
        records.append(Record(topics.events, key, event.to_json(), (
            *context, (wire.HEADER_EVENT_ID, event.event_id.encode()),
            (wire.HEADER_SCHEMA, wire.SCHEMA_EVENT_V1.encode()))))
    for transition in decision.transitions:
        records.append(Record(topics.transitions, key, transition_to_json(transition), (
            *context, (wire.HEADER_EVENT_ID, transition.event_id.encode()),
            (wire.HEADER_SCHEMA, wire.SCHEMA_TRANSITION_V1.encode()))))
    snap = decision.snapshot
    if snap.version != before.version:
        records.append(Record(topics.state, key, state_to_json(snap), (
            *context, (wire.HEADER_SCHEMA, wire.SCHEMA_STATE_V1.encode()))))
    if snap != before:
        records.append(Record(topics.snapshots, key, snapshot_to_json(snap, new_rev), (
            (wire.HEADER_SCHEMA, wire.SCHEMA_SNAPSHOT_V1.encode()),)))
    for outcome in decision.outcomes:
        if outcome.name == "dead":
            origin = SourceRecord.from_json(outcome.source) if outcome.source else source
            records.append(dead_letter(origin, "apply", "ImpossibleTransition",
                                       outcome.reason or "cannot apply", topics.dlq))
    return records


def with_traceparent(records: Sequence[Record], incoming: str | None, traceparent: str
                     ) -> list[Record]:
    """``records`` with the input's trace context (``incoming``) replaced by ``traceparent``.

    Only headers carried over from the input change: a dead letter of an earlier parked event
    keeps that event's own context, and records without one (snapshots, a tick's outputs) stay
    without.
    """
    if incoming is None:
        return list(records)
    old, new = incoming.encode(), traceparent.encode()
    return [
        replace(r, headers=tuple((k, new if k == wire.HEADER_TRACEPARENT and v == old else v)
                                 for k, v in r.headers))
        for r in records
    ]
