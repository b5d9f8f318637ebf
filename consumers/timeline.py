"""One payment's timeline built from its records and its Redis snapshot: pure, ``now`` passed in.

Order of the rows: when payhooks wrote them. A Kafka record sorts by its record timestamp (set by
the receiver or the worker that produced it); a parked event held in Redis sorts by its
``parked_at``. Ties go by pipeline stage (raw, events, transitions, state, dlq, redis), then by
offset. Each row also shows the record's own time: ``received_at`` (raw), ``occurred_at``
(events), ``applied_at`` (transitions), ``updated_at`` (state). :mod:`consumers.trace` reads the
records this module orders.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiokafka.partitioner import DefaultPartitioner

from consumers.state import Parked, Snapshot
from payhooks import logging as plog
from schemas import timefmt, wire
from schemas.envelope import Envelope, EnvelopeError

#: the topics a payment's records live on, in pipeline order (the tie-break of the ordering)
ROLES = ("raw", "events", "transitions", "state", "dlq")
_RANK = {role: rank for rank, role in enumerate((*ROLES, "redis"))}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


# --- values -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TracedRecord:
    """A record of one payment as read from one topic (key already known to match)."""

    role: str  # raw | events | transitions | state | dlq
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()

    def header(self, name: str) -> str | None:
        found = next((v for k, v in self.headers if k == name), None)
        return None if found is None else found.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class Scan:
    """The offset range of one partition that was read, and what it held for the payment."""

    role: str
    topic: str
    partition: int
    start: int  # first offset read
    end: int  # first offset not read
    matched: int = 0

    @property
    def records(self) -> int:
        return max(0, self.end - self.start)

    def as_dict(self) -> dict[str, Any]:
        return {"role": self.role, "topic": self.topic, "partition": self.partition,
                "from_offset": self.start, "to_offset": self.end, "records": self.records,
                "matched": self.matched}


@dataclass(frozen=True, slots=True)
class Live:
    """The payment's live snapshot in Redis, or why there is none to show."""

    status: str  # ok | absent (never seen) | unreachable
    snapshot: Snapshot | None = None
    trusted: bool = True  # False: Redis restarted and the workers have not rebuilt it yet
    message: str | None = None

    def as_dict(self, parking_window: timedelta) -> dict[str, Any]:
        doc: dict[str, Any] = {"status": self.status, "trusted": self.trusted,
                               "message": self.message}
        snap = self.snapshot
        if snap is not None:
            doc |= {
                "state": snap.state, "version": snap.version, "totals": snap.totals.as_dict(),
                "currency": snap.currency, "last_event_id": snap.last_event_id,
                "updated_at": snap.updated_at, "seen_event_ids": len(snap.seen),
                "parked": [{"event_id": p.event.event_id, "type": p.event.type,
                            "parked_at": p.parked_at, "due_at": _due(p, parking_window)}
                           for p in snap.parked],
            }
        return doc


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the timeline."""

    at_ms: int  # the sort time: record timestamp, or parked_at for Redis rows
    role: str  # raw | events | transitions | state | dlq | redis
    topic: str | None
    partition: int | None
    offset: int | None
    kind: str  # delivery | tick | event | transition | state | dead letter | parked
    outcome: str
    delivery_id: str | None = None
    event_id: str | None = None  # canonical: "{provider}:{provider event id}"
    provider_event_id: str | None = None
    type: str | None = None  # provider type on raw, canonical type downstream
    version: int | None = None
    own_time: str | None = None  # received_at / occurred_at / applied_at / updated_at
    detail: str = ""
    payload: Any = None  # only with payload=True, redacted

    @property
    def at(self) -> str:
        return timefmt.from_unix(self.at_ms / 1000)

    @property
    def where(self) -> str:
        if self.topic is None:
            return "redis"
        return f"{self.topic}[{self.partition}]@{self.offset}"

    def as_dict(self) -> dict[str, Any]:
        doc = {"at": self.at, "role": self.role, "topic": self.topic,
               "partition": self.partition, "offset": self.offset, "kind": self.kind,
               "outcome": self.outcome, "delivery_id": self.delivery_id,
               "event_id": self.event_id, "provider_event_id": self.provider_event_id,
               "type": self.type, "version": self.version, "own_time": self.own_time,
               "detail": self.detail}
        if self.payload is not None:
            doc["payload"] = self.payload
        return doc


@dataclass(frozen=True, slots=True)
class Window:
    """The time range asked for; None ends are open."""

    since: datetime | None = None
    until: datetime | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"since": _wire(self.since), "until": _wire(self.until)}


@dataclass(frozen=True, slots=True)
class Timeline:
    payment_id: str
    generated_at: str
    window: Window
    rows: tuple[Row, ...]
    live: Live
    scans: tuple[Scan, ...] = ()
    notes: tuple[str, ...] = ()
    parking_window: timedelta = timedelta(minutes=15)

    @property
    def found(self) -> bool:
        return bool(self.rows) or self.live.snapshot is not None

    def as_dict(self) -> dict[str, Any]:
        return {"payment_id": self.payment_id, "found": self.found,
                "generated_at": self.generated_at, "window": self.window.as_dict(),
                "rows": [r.as_dict() for r in self.rows],
                "live": self.live.as_dict(self.parking_window),
                "partitions": [s.as_dict() for s in self.scans], "notes": list(self.notes)}


# --- the pure part ------------------------------------------------------------------------------


def parse_when(text: str, now: datetime) -> datetime:
    """An ISO 8601 time (a date, or a time with zone; a naive time is taken as UTC), or a
    duration before ``now``: ``90s``, ``15m``, ``2h``, ``3d``, ``1w``. Raises ValueError."""
    duration = _DURATION.match(text)
    if duration:
        seconds = float(duration.group(1)) * _UNIT_SECONDS[duration.group(2)]
        return now - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is neither an ISO time (2026-11-23T10:00:00Z) nor a "
                         "duration (90s, 15m, 2h, 3d, 1w)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def check_payment_id(payment_id: str, providers: Iterable[str]) -> str | None:
    """Why ``payment_id`` cannot be a payment key (``{provider}:{reference}``), or None."""
    provider, sep, ref = payment_id.partition(":")
    known = sorted(providers)
    if not sep or not ref:
        return (f"{payment_id!r} is not a payment id: expected {{provider}}:{{payment reference}}, "
                f"for example stripe:pi_3PqX2a (providers: {', '.join(known)})")
    if provider not in known:
        return f"unknown provider {provider!r} in {payment_id!r}; known: {', '.join(known)}"
    return None


def partition_for(key: bytes, partitions: Sequence[int]) -> int:
    """The partition the producers' default partitioner (murmur2) sends ``key`` to."""
    numbers = sorted(partitions)
    chosen: int = DefaultPartitioner()(key, numbers, numbers)
    return chosen


def build(payment_id: str, records: Iterable[TracedRecord], live: Live, *, now: datetime,
          window: Window = Window(), scans: Sequence[Scan] = (),
          parking_window: timedelta = timedelta(minutes=15), payload: bool = False,
          notes: Sequence[str] = ()) -> Timeline:
    """The timeline of ``payment_id`` from its records and its live snapshot, ordered by time."""
    by_role: dict[str, list[TracedRecord]] = {role: [] for role in ROLES}
    for record in records:
        by_role[record.role].append(record)
    for listed in by_role.values():
        listed.sort(key=lambda r: (r.partition, r.offset))
    context = _Context.of(by_role, live)
    rows: list[Row] = []
    rows += _raw_rows(by_role["raw"], context, payload)
    rows += [_event_row(r, context) for r in by_role["events"]]
    rows += [_transition_row(r) for r in by_role["transitions"]]
    rows += [_state_row(r) for r in by_role["state"]]
    rows += [_dlq_row(r, payload) for r in by_role["dlq"]]
    if live.snapshot is not None:
        rows += [_parked_row(p, parking_window) for p in live.snapshot.parked]
    rows.sort(key=lambda r: (r.at_ms, _RANK[r.role], r.partition or 0, r.offset or 0))
    return Timeline(payment_id=payment_id, generated_at=timefmt.to_wire(now), window=window,
                    rows=tuple(rows), live=live, scans=tuple(scans),
                    notes=(*notes, *_consistency_notes(by_role, live, window)),
                    parking_window=parking_window)


@dataclass(frozen=True, slots=True)
class _Context:
    """Facts one row needs from the others."""

    dead: Mapping[tuple[str, int, int], str]  # source coordinates -> dlq stage
    dead_events: Mapping[str, str]  # canonical event id -> dlq stage
    transitions: Mapping[str, tuple[tuple[int, bool, str | None], ...]]  # event id -> (version,
    # inferred, delivery id of the record that applied it)
    parked: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, by_role: Mapping[str, list[TracedRecord]], live: Live) -> _Context:
        dead: dict[tuple[str, int, int], str] = {}
        dead_events: dict[str, str] = {}
        for r in by_role["dlq"]:
            stage = r.header(wire.HEADER_DLQ_STAGE) or "?"
            source = (r.header(wire.HEADER_DLQ_SOURCE_TOPIC),
                      r.header(wire.HEADER_DLQ_SOURCE_PARTITION),
                      r.header(wire.HEADER_DLQ_SOURCE_OFFSET))
            if source[0] and (source[1] or "").isdigit() and (source[2] or "").isdigit():
                dead[(source[0], int(source[1] or 0), int(source[2] or 0))] = stage
            canonical = _canonical(r.header(wire.HEADER_PROVIDER), r.header(wire.HEADER_EVENT_ID))
            if canonical:
                dead_events[canonical] = stage
        applied: dict[str, list[tuple[int, bool, str | None]]] = {}
        for r in by_role["transitions"]:
            doc = _json(r.value)
            if isinstance(doc.get("event_id"), str):
                applied.setdefault(doc["event_id"], []).append(
                    (int(doc.get("version") or 0), bool(doc.get("inferred")),
                     r.header(wire.HEADER_DELIVERY_ID)))
        parked = frozenset(p.event.event_id for p in live.snapshot.parked) if live.snapshot else (
            frozenset())
        return cls(dead, dead_events, {k: tuple(v) for k, v in applied.items()}, parked)


def _raw_rows(records: Sequence[TracedRecord], context: _Context, payload: bool) -> list[Row]:
    seen: set[str] = set()
    rows = []
    for r in records:  # one partition, by offset: the order the receiver wrote them
        dead = context.dead.get((r.topic, r.partition, r.offset))
        if wire.SCHEMA_TICK_V1.encode() in r.value[:80]:
            rows.append(_at(r, "tick", "tick: release due parked events"))
            continue
        try:
            envelope = Envelope.from_json(r.value)
        except EnvelopeError as exc:
            rows.append(replace(
                _at(r, "delivery", f"dead-lettered ({dead})" if dead else "unreadable"),
                delivery_id=r.header(wire.HEADER_DELIVERY_ID),
                provider_event_id=r.header(wire.HEADER_EVENT_ID), detail=str(exc)))
            continue
        canonical = f"{envelope.provider}:{envelope.event_id}"
        if dead:
            outcome = f"dead-lettered ({dead})"
        elif canonical in seen:
            outcome = "duplicate delivery"
        else:
            outcome = "delivered"
        seen.add(canonical)
        replay = r.header(wire.HEADER_REPLAY)
        detail = f"endpoint {envelope.endpoint}, key #{envelope.key_index}"
        if replay:
            detail += f", replay {replay}"
        rows.append(replace(_at(r, "delivery", outcome),
                            delivery_id=envelope.delivery_id, event_id=canonical,
                            provider_event_id=envelope.event_id, type=envelope.event_type,
                            own_time=envelope.received_at, detail=detail,
                            payload=_redacted_payload(envelope) if payload else None))
    return rows


def _event_row(r: TracedRecord, context: _Context) -> Row:
    doc = _json(r.value)
    event_id = _str(doc.get("event_id"))
    delivery = _str(doc.get("delivery_id")) or r.header(wire.HEADER_DELIVERY_ID)
    applied = context.transitions.get(event_id or "", ())
    if event_id in context.parked:
        outcome = "parked (waiting in Redis)"
    elif applied:
        versions = ", ".join(f"v{v}" + (" inferred" if inferred else "")
                             for v, inferred, _ in applied)
        later = any(d is not None and d != delivery for _, _, d in applied)
        outcome = ("parked, then released: " if later else "applied: ") + versions
    elif event_id in context.dead_events:
        outcome = f"dead-lettered ({context.dead_events[event_id or '']})"
    else:
        outcome = "no transition (stale or noted)"
    amount, currency, scope = doc.get("amount"), doc.get("currency"), doc.get("amount_scope")
    detail = "" if amount is None else f"{amount} {currency or '(no currency)'} ({scope})"
    return replace(_at(r, "event", outcome), delivery_id=delivery, event_id=event_id,
                   provider_event_id=_str(doc.get("provider_event_id")),
                   type=_str(doc.get("type")), own_time=_str(doc.get("occurred_at")),
                   detail=detail)


def _transition_row(r: TracedRecord) -> Row:
    doc = _json(r.value)
    version = doc.get("version")
    move = f"{doc.get('from_state') or '(new)'} -> {doc.get('to_state')}"
    return replace(_at(r, "transition", move + (" (inferred)" if doc.get("inferred") else "")),
                   delivery_id=r.header(wire.HEADER_DELIVERY_ID),
                   event_id=_str(doc.get("event_id")),
                   version=version if isinstance(version, int) else None,
                   own_time=_str(doc.get("applied_at")),
                   detail=_totals(doc.get("totals"), doc.get("currency")))


def _state_row(r: TracedRecord) -> Row:
    doc = _json(r.value)
    version = doc.get("version")
    return replace(_at(r, "state", f"state {doc.get('state')}"),
                   delivery_id=r.header(wire.HEADER_DELIVERY_ID),
                   event_id=_str(doc.get("last_event_id")),
                   version=version if isinstance(version, int) else None,
                   own_time=_str(doc.get("updated_at")),
                   detail=_totals(doc.get("totals"), doc.get("currency")))


def _dlq_row(r: TracedRecord, payload: bool) -> Row:
    stage = r.header(wire.HEADER_DLQ_STAGE) or "?"
    source = (f"{r.header(wire.HEADER_DLQ_SOURCE_TOPIC)}"
              f"[{r.header(wire.HEADER_DLQ_SOURCE_PARTITION)}]"
              f"@{r.header(wire.HEADER_DLQ_SOURCE_OFFSET)}")
    error = (f"{r.header(wire.HEADER_DLQ_ERROR_CLASS)}: "
             f"{r.header(wire.HEADER_DLQ_ERROR_MESSAGE)}")
    provider_event_id = r.header(wire.HEADER_EVENT_ID)
    shown: Any = None
    if payload:
        try:
            shown = _redacted_payload(Envelope.from_json(r.value))
        except EnvelopeError:
            shown = f"<{len(r.value)} bytes, not an envelope>"
    return replace(_at(r, "dead letter", f"dead letter ({stage})"),
                   delivery_id=r.header(wire.HEADER_DELIVERY_ID),
                   event_id=_canonical(r.header(wire.HEADER_PROVIDER), provider_event_id),
                   provider_event_id=provider_event_id, detail=f"{error}; from {source}",
                   payload=shown)


def _at(r: TracedRecord, kind: str, outcome: str) -> Row:
    """The row of Kafka record ``r``, before its details are filled in."""
    return Row(r.timestamp_ms, r.role, r.topic, r.partition, r.offset, kind, outcome)


def _parked_row(parked: Parked, window: timedelta) -> Row:
    event = parked.event
    amount = "" if event.amount is None else f"{event.amount} {event.currency or ''}, "
    return Row(at_ms=int(timefmt.parse(parked.parked_at).timestamp() * 1000), role="redis",
               topic=None, partition=None, offset=None, kind="parked",
               outcome="parked (waiting for its predecessor)", delivery_id=event.delivery_id,
               event_id=event.event_id, provider_event_id=event.provider_event_id,
               type=event.type, own_time=event.occurred_at,
               detail=f"{amount}due {_due(parked, window)}")


def _consistency_notes(by_role: Mapping[str, list[TracedRecord]], live: Live, window: Window
                       ) -> list[str]:
    notes = []
    if live.status == "unreachable":
        notes.append(f"Redis was unreachable ({live.message}): live state and parked events are "
                     "not shown; the Kafka timeline is complete")
    elif not live.trusted:
        notes.append("Redis is not marked ready by the workers (it restarted and is not "
                     "rebuilt from payhooks.snapshots yet, or no worker has started against it): "
                     "its snapshot may be behind Kafka")
    states = [_json(r.value).get("version") for r in by_role["state"]]
    latest = max((v for v in states if isinstance(v, int)), default=None)
    if live.snapshot is not None and latest is not None and latest != live.snapshot.version:
        notes.append(f"Redis holds version {live.snapshot.version}, payments.state shows "
                     f"version {latest}" + (" (within the time window)"
                                             if window.since or window.until else ""))
    duplicates = 0
    seen: set[tuple[str | None, str | None]] = set()
    for r in by_role["raw"]:
        key = (r.header(wire.HEADER_PROVIDER), r.header(wire.HEADER_EVENT_ID))
        duplicates += key in seen and key[1] is not None
        seen.add(key)
    if duplicates:
        notes.append(f"{duplicates} duplicate deliver{'y' if duplicates == 1 else 'ies'} on "
                     "webhooks.raw (handled once downstream)")
    return notes


def _due(parked: Parked, window: timedelta) -> str:
    return timefmt.to_wire(timefmt.parse(parked.parked_at) + window)


def _totals(totals: Any, currency: Any) -> str:
    if not isinstance(totals, dict):
        return ""
    shown = " ".join(f"{k} {v}" for k, v in totals.items() if v)
    return f"{shown or 'no money yet'}" + (f" {currency}" if currency else "")


def _redacted_payload(envelope: Envelope) -> Any:
    """The provider's event with secrets, card numbers and sensitive keys masked."""
    try:
        doc = envelope.payload_json()
    except EnvelopeError:
        return f"<{len(envelope.payload)} bytes, not JSON>"
    return plog.redact(None, "trace", {"event": doc})["event"]


def _canonical(provider: str | None, event_id: str | None) -> str | None:
    return f"{provider}:{event_id}" if provider and event_id else None


def _json(value: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _wire(moment: datetime | None) -> str | None:
    return None if moment is None else timefmt.to_wire(moment)
