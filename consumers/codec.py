"""JSON forms of the state machine's values: snapshots (Redis and payhooks.snapshots) and the
public records (payments.transitions, payments.state)."""

from __future__ import annotations

from typing import Any

import orjson

from consumers.state import Parked, Snapshot, Totals, Transition
from schemas import wire
from schemas.event import PaymentEvent


def snapshot_to_json(snap: Snapshot, rev: int) -> bytes:
    """The full snapshot, with ``rev`` (bumped on every change, for compare-and-set)."""
    return orjson.dumps({
        "schema": wire.SCHEMA_SNAPSHOT_V1,
        "rev": rev,
        **_public(snap),
        "operations": list(snap.operations),
        "seen": list(snap.seen),
        "parked": [{"event": p.event.as_dict(), "parked_at": p.parked_at, "source": p.source}
                   for p in snap.parked],
    })


def snapshot_from_json(data: bytes) -> tuple[Snapshot, int]:
    doc: dict[str, Any] = orjson.loads(data)
    snap = Snapshot(
        payment_id=doc["payment_id"],
        state=doc["state"],
        version=doc["version"],
        totals=Totals(**doc["totals"]),
        currency=doc["currency"],
        last_event_id=doc["last_event_id"],
        updated_at=doc["updated_at"],
        operations=tuple(doc["operations"]),
        seen=tuple(doc["seen"]),
        parked=tuple(Parked(PaymentEvent.from_dict(p["event"]), p["parked_at"], p["source"])
                     for p in doc["parked"]),
    )
    return snap, int(doc["rev"])


def transition_to_json(t: Transition) -> bytes:
    """A ``payments.transitions`` value."""
    return orjson.dumps({
        "schema": wire.SCHEMA_TRANSITION_V1,
        "payment_id": t.payment_id,
        "version": t.version,
        "from_state": t.from_state,
        "to_state": t.to_state,
        "event_id": t.event_id,
        "occurred_at": t.occurred_at,
        "applied_at": t.applied_at,
        "totals": t.totals.as_dict(),
        "currency": t.currency,
        "inferred": t.inferred,
    })


def state_to_json(snap: Snapshot) -> bytes:
    """A ``payments.state`` value: the public part of the snapshot."""
    return orjson.dumps({"schema": wire.SCHEMA_STATE_V1, **_public(snap)})


def _public(snap: Snapshot) -> dict[str, Any]:
    """The snapshot fields ``payments.state`` shows (the full snapshot holds them too)."""
    return {
        "payment_id": snap.payment_id,
        "state": snap.state,
        "version": snap.version,
        "totals": snap.totals.as_dict(),
        "currency": snap.currency,
        "last_event_id": snap.last_event_id,
        "updated_at": snap.updated_at,
    }
