"""The payment state machine: a pure function of (snapshot, canonical event, now) to a decision.

States and moves (``docs/state-machine.md`` has the table):

    (new) -> authorized | failed
    authorized -> captured | canceled
    captured -> captured (more captured) | partially_refunded | refunded | disputed
    partially_refunded -> partially_refunded | refunded | disputed
    disputed -> dispute_won | dispute_lost
    dispute_won -> disputed (a new dispute) | dispute_lost (a second chargeback)

Terminal: canceled, failed, refunded, dispute_lost. ``payment.capture_failed`` and
``payment.refund_failed`` are recorded (``noted``) and move nothing.

Amounts: an event's ``amount_scope`` says how to count it. "operation" amounts count once per
``operation_id``; "total" amounts are running totals applied as a maximum. Either way a repeat is
a no-op, so applying an event twice never changes the money.

Every event gets exactly one outcome:

- ``duplicate``: this event id was seen before (also while parked): nothing at all happens;
- ``applied``: state and/or totals changed; one transition with the next version;
- ``stale``: its effect is already included, or it would move the state backwards: a no-op;
- ``noted``: an event that never moves state (a failed capture or refund);
- ``parked``: its predecessor has not been seen (a refund before the capture); it waits, and
  is ``released`` (applied) when the predecessor arrives, or handled by :func:`expire` once
  the parking window passes: applied with the steps it proves marked ``inferred``, or
  ``dead`` (to the DLQ) when it cannot be applied. A capture whose provider says no
  authorization will come (``authorization_expected`` false: automatic capture) does not wait:
  it applies at once with its authorization ``inferred``;
- ``dead``: impossible (currency changes, refunds beyond captures): goes to the DLQ.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from schemas import timefmt
from schemas.event import PaymentEvent

AUTHORIZED, CAPTURED, PARTIALLY_REFUNDED, REFUNDED = (
    "authorized", "captured", "partially_refunded", "refunded")
CANCELED, FAILED = "canceled", "failed"
DISPUTED, DISPUTE_WON, DISPUTE_LOST = "disputed", "dispute_won", "dispute_lost"

STATES = (AUTHORIZED, CAPTURED, PARTIALLY_REFUNDED, REFUNDED, CANCELED, FAILED, DISPUTED,
          DISPUTE_WON, DISPUTE_LOST)
TERMINAL = frozenset({CANCELED, FAILED, REFUNDED, DISPUTE_LOST})

#: states in which money has been captured and not wholly refunded
_CAPTURED_STATES = frozenset({CAPTURED, PARTIALLY_REFUNDED})
#: how many event ids a snapshot remembers for dedupe; older repeats are caught as stale
SEEN_LIMIT = 256


@dataclass(frozen=True, slots=True)
class Totals:
    """Money of one payment so far, in minor units of its currency."""

    authorized: int = 0
    captured: int = 0
    refunded: int = 0
    disputed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"authorized": self.authorized, "captured": self.captured,
                "refunded": self.refunded, "disputed": self.disputed}


@dataclass(frozen=True, slots=True)
class Parked:
    """An early event waiting for its predecessor, with where it came from (for the DLQ)."""

    event: PaymentEvent
    parked_at: str
    source: str | None = None  # the worker's reference to the raw record; opaque here


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the machine knows of one payment. ``state`` None: nothing applied yet."""

    payment_id: str
    state: str | None = None
    version: int = 0
    totals: Totals = Totals()
    currency: str | None = None
    last_event_id: str | None = None
    updated_at: str | None = None
    operations: tuple[str, ...] = ()  # "{type}:{operation_id}" already counted
    seen: tuple[str, ...] = ()  # event ids already handled, newest last
    parked: tuple[Parked, ...] = ()

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def next_version(self) -> int:
        return self.version + 1


@dataclass(frozen=True, slots=True)
class Transition:
    """One record of ``payments.transitions``."""

    payment_id: str
    version: int
    from_state: str | None
    to_state: str
    event_id: str
    occurred_at: str
    applied_at: str
    totals: Totals
    currency: str | None
    inferred: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one event (the event at hand, or a parked one it released)."""

    event: PaymentEvent
    name: str  # duplicate | applied | stale | noted | parked | released | inferred | dead
    reason: str | None = None  # for stale, dead: why
    source: str | None = None  # a parked event's source, for the DLQ


@dataclass(frozen=True, slots=True)
class Decision:
    snapshot: Snapshot
    outcomes: tuple[Outcome, ...]
    transitions: tuple[Transition, ...] = ()

    @property
    def outcome(self) -> str:
        """The outcome of the event the decision was asked about."""
        return self.outcomes[0].name if self.outcomes else "none"


# --- one step ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Step:
    kind: str  # applied | stale | noted | early | dead
    state: str | None = None
    totals: Totals | None = None
    operation: str | None = None
    reason: str | None = None


def _amount(current: int, event: PaymentEvent, operation_seen: bool) -> int:
    """The new total for the amount this event carries (scope decides sum or maximum)."""
    if event.amount is None:
        return current
    if event.amount_scope == "operation":
        return current if operation_seen else current + event.amount
    return max(current, event.amount)


def _step(snap: Snapshot, event: PaymentEvent) -> _Step:  # noqa: PLR0911, PLR0912
    """The effect of ``event`` on ``snap`` alone, without parking or versions."""
    if snap.currency and event.currency and event.currency != snap.currency:
        return _Step("dead", reason=f"currency {event.currency} on a {snap.currency} payment")
    kind, state, totals = event.type, snap.state, snap.totals
    operation = f"{kind}:{event.operation_id}" if event.operation_id else None
    seen_op = operation is not None and operation in snap.operations

    if kind in ("payment.capture_failed", "payment.refund_failed"):
        return _Step("noted")
    if kind == "payment.authorized":
        if state is None:
            return _Step("applied", AUTHORIZED, replace(totals, authorized=event.amount or 0))
        # a later authorization with a higher amount is an increase (Adyen adjustment, Checkout
        # increment): the authorized total rises as a maximum, the state stays
        raised = _amount(totals.authorized, event, seen_op)
        if state in TERMINAL or raised <= totals.authorized:
            return _Step("stale", reason=f"already {state}")
        return _Step("applied", state, replace(totals, authorized=raised), operation)
    if kind == "payment.authorization_failed":
        return _Step("applied", FAILED) if state is None else _Step("stale", reason=state)
    if kind == "payment.canceled":
        if state is None:
            return _Step("early", reason="cancel before authorization")
        return _Step("applied", CANCELED) if state == AUTHORIZED else _Step("stale", reason=state)
    if snap.terminal:
        return _Step("stale", reason=f"{state} is terminal")

    if kind == "payment.captured":
        if state is None:
            return _Step("early", reason="capture before authorization")
        if state not in (AUTHORIZED, *_CAPTURED_STATES):
            return _Step("stale", reason=f"capture while {state}")
        captured = _amount(totals.captured, event, seen_op)
        if captured == totals.captured and state != AUTHORIZED:
            return _Step("stale", reason="capture already counted")
        if totals.authorized and captured > totals.authorized:
            return _Step("dead", reason=f"captured {captured} exceeds authorized "
                                        f"{totals.authorized}")
        new_state = CAPTURED if state == AUTHORIZED else state
        return _Step("applied", new_state, replace(totals, captured=captured), operation)

    if kind == "payment.refunded":
        if state in (None, AUTHORIZED):
            return _Step("early", reason="refund before capture")
        if state not in _CAPTURED_STATES:
            return _Step("stale", reason=f"refund while {state}")
        refunded = _amount(totals.refunded, event, seen_op)
        if event.amount is not None and refunded == totals.refunded:
            return _Step("stale", reason="refund already counted")
        if totals.captured and refunded > totals.captured:
            # more refunded than captured so far: a capture is still on its way
            return _Step("early", reason=f"refunds {refunded} beyond captures {totals.captured}")
        # fully refunded (terminal) only once nothing more can be captured either; without
        # amounts (GoCardless) a refund cannot be told full, so it stays non-terminal
        nothing_left = not totals.authorized or totals.captured >= totals.authorized
        full = event.amount is not None and refunded >= totals.captured > 0 and nothing_left
        new_state = REFUNDED if full else PARTIALLY_REFUNDED
        if new_state == state and refunded == totals.refunded:
            return _Step("stale", reason="refund already counted")
        return _Step("applied", new_state, replace(totals, refunded=refunded), operation)

    if kind == "dispute.opened":
        if state in (None, AUTHORIZED):
            return _Step("early", reason="dispute before capture")
        if state == DISPUTED:
            return _Step("stale", reason="dispute already open")
        disputed = _amount(totals.disputed, event, seen_op)
        return _Step("applied", DISPUTED, replace(totals, disputed=disputed), operation)

    # dispute.won / dispute.lost
    if state in (None, AUTHORIZED, *_CAPTURED_STATES):
        return _Step("early", reason=f"{kind} before the dispute opened")
    if kind == "dispute.won":
        return _Step("applied", DISPUTE_WON) if state == DISPUTED else _Step("stale", reason=state)
    return _Step("applied", DISPUTE_LOST)  # from disputed, or a second chargeback after a win


# --- deciding ---------------------------------------------------------------------------------


def apply(snap: Snapshot, event: PaymentEvent, now: datetime, source: str | None = None
          ) -> Decision:
    """Decide what ``event`` does to the payment ``snap`` describes, at time ``now``."""
    if event.event_id in snap.seen or any(p.event.event_id == event.event_id for p in snap.parked):
        return Decision(snap, (Outcome(event, "duplicate"),))
    at = timefmt.to_wire(now)
    snap = _remember(snap, event.event_id)
    step = _step(snap, event)
    if step.kind == "early" and snap.state is None and not event.authorization_expected:
        # an automatic capture: no authorization will come to wait for; apply it now with
        # the authorization it proves, inferred, exactly as if its parking window had passed
        snap, outcome, transitions = _infer_and_apply(snap, Parked(event, at, source), at)
        if outcome.name in ("inferred", "released"):
            snap, released, more = _release(snap, at)
            return Decision(snap, (replace(outcome, name="inferred"), *released),
                            (*transitions, *more))
        return Decision(snap, (outcome,), tuple(transitions))
    if step.kind == "early":
        parked = replace(snap, parked=(*snap.parked, Parked(event, at, source)))
        return Decision(parked, (Outcome(event, "parked", step.reason),))
    if step.kind != "applied":
        name = step.kind
        return Decision(snap, (Outcome(event, name, step.reason, source),))
    snap, transition = _commit(snap, event, step, at)
    snap, released, more = _release(snap, at)
    return Decision(snap, (Outcome(event, "applied"), *released), (transition, *more))


def expire(snap: Snapshot, now: datetime, window: timedelta) -> Decision:
    """Handle parked events older than ``window``: apply them with inferred steps, or kill them.

    While any parked event is due, the parked event that comes first in a payment's life goes
    first (a capture before a refund, due or not), so a due refund never infers a capture that a
    real capture, parked beside it, would have told exactly. Each one that applies may release
    the others.
    """
    at = timefmt.to_wire(now)
    outcomes: list[Outcome] = []
    transitions: list[Transition] = []
    while any(timefmt.parse(p.parked_at) + window <= now for p in snap.parked):
        first = min(snap.parked, key=lambda p: _LIFE_ORDER.get(p.event.type, len(_LIFE_ORDER)))
        snap = replace(snap, parked=tuple(p for p in snap.parked if p is not first))
        snap, outcome, steps = _infer_and_apply(snap, first, at)
        outcomes.append(outcome)
        transitions.extend(steps)
        snap, released, more = _release(snap, at)
        outcomes.extend(released)
        transitions.extend(more)
    return Decision(snap, tuple(outcomes), tuple(transitions))


def oldest_parked_at(snap: Snapshot) -> datetime | None:
    return min((timefmt.parse(p.parked_at) for p in snap.parked), default=None)


def _commit(snap: Snapshot, event: PaymentEvent, step: _Step, at: str, *, inferred: bool = False
            ) -> tuple[Snapshot, Transition]:
    assert step.state is not None
    totals = step.totals or snap.totals
    operations = snap.operations
    if step.operation and step.operation not in operations:
        operations = tuple(sorted((*operations, step.operation)))
    new = replace(
        snap,
        state=step.state,
        version=snap.next_version,
        totals=totals,
        currency=snap.currency or event.currency,
        last_event_id=event.event_id,
        updated_at=at,
        operations=operations,
    )
    transition = Transition(
        payment_id=snap.payment_id,
        version=new.version,
        from_state=snap.state,
        to_state=step.state,
        event_id=event.event_id,
        occurred_at=event.occurred_at,
        applied_at=at,
        totals=totals,
        currency=new.currency,
        inferred=inferred,
    )
    return new, transition


def _release(snap: Snapshot, at: str) -> tuple[Snapshot, list[Outcome], list[Transition]]:
    """Apply parked events whose predecessor is now there, in parking order, until none can."""
    outcomes: list[Outcome] = []
    transitions: list[Transition] = []
    progressed = True
    while progressed and snap.parked:
        progressed = False
        for parked in snap.parked:
            step = _step(snap, parked.event)
            if step.kind == "early":
                continue
            snap = replace(snap, parked=tuple(p for p in snap.parked if p is not parked))
            if step.kind == "applied":
                snap, transition = _commit(snap, parked.event, step, at)
                transitions.append(transition)
                outcomes.append(Outcome(parked.event, "released"))
            else:
                outcomes.append(Outcome(parked.event, step.kind, step.reason, parked.source))
            progressed = True
            break
    return snap, outcomes, transitions


#: where each event type comes in a payment's life (for expiring parked events in that order)
_LIFE_ORDER = {
    "payment.authorized": 0, "payment.captured": 1, "payment.canceled": 1,
    "payment.refunded": 2, "dispute.opened": 3, "dispute.won": 4, "dispute.lost": 4,
}

#: the predecessor each early event proves, as the event that would have reported it
_PROVES: dict[str, tuple[str, ...]] = {
    "payment.captured": ("payment.authorized",),
    "payment.canceled": ("payment.authorized",),
    "payment.refunded": ("payment.authorized", "payment.captured"),
    "dispute.opened": ("payment.authorized", "payment.captured"),
    "dispute.won": ("payment.authorized", "payment.captured", "dispute.opened"),
    "dispute.lost": ("payment.authorized", "payment.captured", "dispute.opened"),
}


def _infer_and_apply(snap: Snapshot, parked: Parked, at: str
                     ) -> tuple[Snapshot, Outcome, list[Transition]]:
    """Apply an expired parked event after the steps it proves, each marked inferred.

    An inferred step carries the smallest amount the event proves (a refund of 500 proves a
    capture of at least 500) and the event's own id, so it is traceable to its evidence.
    """
    event = parked.event
    transitions: list[Transition] = []
    candidate = snap
    proved = event.amount
    if event.type == "payment.refunded" and event.amount is not None:
        # a refund proves captures of at least everything refunded, this refund included
        proved = _amount(snap.totals.refunded, event, f"{event.type}:{event.operation_id}"
                         in snap.operations)
    for implied_type in _PROVES.get(event.type, ()):
        if implied_type == "payment.authorized" and candidate.state is not None:
            continue  # an authorization is there; inference never raises its amount
        implied = replace(event, type=implied_type, operation_id=None, amount=proved,
                          amount_scope=None if proved is None else "total")
        step = _step(candidate, implied)
        if step.kind == "applied":
            candidate, transition = _commit(candidate, event, step, at, inferred=True)
            transitions.append(transition)
        elif step.kind == "dead":
            return snap, Outcome(event, "dead", step.reason, parked.source), []
    step = _step(candidate, event)
    if step.kind != "applied":
        reason = (f"parking window passed and it still cannot apply ({step.reason})"
                  if step.kind in ("early", "dead") else step.reason)
        name = "dead" if step.kind in ("early", "dead") else step.kind
        return snap, Outcome(event, name, reason, parked.source), []
    candidate, transition = _commit(candidate, event, step, at)
    return candidate, Outcome(event, "inferred" if transitions else "released"), [
        *transitions, transition]


def _remember(snap: Snapshot, event_id: str) -> Snapshot:
    return replace(snap, seen=(*snap.seen, event_id)[-SEEN_LIMIT:])


def replay(snap: Snapshot, events: Iterable[PaymentEvent], now: datetime) -> Decision:
    """Apply ``events`` in order (for tests and tools): the last snapshot and every outcome."""
    outcomes: list[Outcome] = []
    transitions: list[Transition] = []
    for event in events:
        decision = apply(snap, event, now)
        snap = decision.snapshot
        outcomes.extend(decision.outcomes)
        transitions.extend(decision.transitions)
    return Decision(snap, tuple(outcomes), tuple(transitions))


__all__ = [
    "STATES", "TERMINAL", "Decision", "Outcome", "Parked", "Snapshot", "Totals", "Transition",
    "apply", "expire", "oldest_parked_at", "replay",
]
