"""The pure payment state machine: moves, money, parking, inference, and properties over orders."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers import state as sm
from schemas.event import PaymentEvent

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)
PAYMENT = "adyen:PSP1"
_ids = itertools.count()


def ev(kind: str, amount: int | None = None, op: str | None = None, *, scope: str | None = None,
       currency: str | None = "EUR", event_id: str | None = None) -> PaymentEvent:
    if amount is not None and scope is None:
        scope = "operation" if op else "total"
    return PaymentEvent(
        event_id=event_id or f"adyen:e{next(_ids)}", provider="adyen", endpoint="adyen",
        provider_event_id="x", provider_event_type="X", type=kind, payment_id=PAYMENT,
        operation_id=op, amount=amount, amount_scope=scope,
        currency=currency if amount is not None else None,
        occurred_at="2026-11-24T11:59:00.000Z", received_at="2026-11-24T11:59:01.000Z",
        delivery_id="d")


def run(*events: PaymentEvent, snap: sm.Snapshot | None = None) -> sm.Decision:
    return sm.replay(snap or sm.Snapshot(PAYMENT), events, NOW)


def test_a_full_lifecycle_moves_through_every_state_with_gapless_versions() -> None:
    decision = run(ev("payment.authorized", 1000), ev("payment.captured", 600, "c1"),
                   ev("payment.captured", 400, "c2"), ev("payment.refunded", 300, "r1"),
                   ev("payment.refunded", 700, "r2"))
    moves = [(t.version, t.from_state, t.to_state) for t in decision.transitions]
    assert moves == [(1, None, "authorized"), (2, "authorized", "captured"),
                     (3, "captured", "captured"), (4, "captured", "partially_refunded"),
                     (5, "partially_refunded", "refunded")]
    assert decision.snapshot.totals == sm.Totals(authorized=1000, captured=1000, refunded=1000)
    assert decision.snapshot.terminal


def test_the_same_event_twice_is_a_duplicate_and_changes_nothing() -> None:
    capture = ev("payment.captured", 500, "c1")
    decision = run(ev("payment.authorized", 500), capture, capture)
    assert [o.name for o in decision.outcomes] == ["applied", "applied", "duplicate"]
    assert decision.snapshot.totals.captured == 500


def test_the_same_operation_under_a_new_event_id_is_stale() -> None:
    decision = run(ev("payment.authorized", 500), ev("payment.captured", 500, "c1"),
                   ev("payment.captured", 500, "c1"))
    assert decision.outcomes[-1].name == "stale"
    assert decision.snapshot.totals.captured == 500


def test_running_totals_apply_as_a_maximum_never_a_sum() -> None:
    decision = run(ev("payment.authorized", 1000), ev("payment.captured", 1000),
                   ev("payment.refunded", 300), ev("payment.refunded", 300),
                   ev("payment.refunded", 200), ev("payment.refunded", 800))
    assert [o.name for o in decision.outcomes] == [
        "applied", "applied", "applied", "stale", "stale", "applied"]
    assert decision.snapshot.totals.refunded == 800
    assert decision.snapshot.state == "partially_refunded"


def test_a_late_authorization_is_stale_and_state_never_moves_back() -> None:
    decision = run(ev("payment.authorized", 500), ev("payment.captured", 500, "c1"),
                   ev("payment.authorized", 500))
    assert decision.outcomes[-1].name == "stale"
    assert decision.snapshot.state == "captured"


@pytest.mark.parametrize("terminal", [
    (ev("payment.authorized", 100), ev("payment.canceled")),
    (ev("payment.authorization_failed"),),
    (ev("payment.authorized", 100), ev("payment.captured", 100, "c"),
     ev("payment.refunded", 100, "r")),
])
def test_terminal_states_stay_terminal(terminal: tuple[PaymentEvent, ...]) -> None:
    decision = run(*terminal)
    assert decision.snapshot.terminal
    after = run(ev("payment.authorized", 100), ev("payment.captured", 100, "c9"),
                ev("dispute.opened", 100, "d"), snap=decision.snapshot)
    assert {o.name for o in after.outcomes} <= {"stale", "parked"}
    assert after.snapshot.state == decision.snapshot.state
    assert after.transitions == ()


def test_a_refund_before_its_capture_is_parked_then_released_in_order() -> None:
    refund = ev("payment.refunded", 200, "r1")
    decision = run(ev("payment.authorized", 500), refund, ev("payment.captured", 500, "c1"))
    assert [o.name for o in decision.outcomes] == ["applied", "parked", "applied", "released"]
    assert [t.to_state for t in decision.transitions] == [
        "authorized", "captured", "partially_refunded"]
    assert decision.snapshot.parked == ()
    assert decision.transitions[-1].event_id == refund.event_id


def test_a_duplicate_of_a_parked_event_is_dropped() -> None:
    refund = ev("payment.refunded", 200, "r1")
    decision = run(ev("payment.authorized", 500), refund, refund)
    assert [o.name for o in decision.outcomes] == ["applied", "parked", "duplicate"]
    assert len(decision.snapshot.parked) == 1


def test_an_expired_refund_applies_with_the_capture_it_proves_marked_inferred() -> None:
    parked = run(ev("payment.authorized", 500), ev("payment.refunded", 200, "r1")).snapshot
    assert sm.expire(parked, NOW + WINDOW - timedelta(seconds=1), WINDOW).outcomes == ()
    decision = sm.expire(parked, NOW + WINDOW, WINDOW)
    assert [o.name for o in decision.outcomes] == ["inferred"]
    assert [(t.to_state, t.inferred) for t in decision.transitions] == [
        ("captured", True), ("partially_refunded", False)]  # 300 of the 500 may still come
    assert decision.transitions[0].totals.captured == 200  # the smallest capture the refund proves
    assert [t.version for t in decision.transitions] == [2, 3]


def test_an_expired_dispute_win_infers_capture_and_the_dispute() -> None:
    parked = run(ev("dispute.won", 300, "d1")).snapshot
    decision = sm.expire(parked, NOW + WINDOW, WINDOW)
    assert [(t.to_state, t.inferred) for t in decision.transitions] == [
        ("authorized", True), ("captured", True), ("disputed", True), ("dispute_won", False)]


def test_an_expired_event_that_still_cannot_apply_is_dead() -> None:
    # a refund of 500 on a 100 authorization proves a capture the authorization cannot hold
    snap = run(ev("payment.authorized", 100), ev("payment.refunded", 500, "r1")).snapshot
    assert len(snap.parked) == 1
    decision = sm.expire(snap, NOW + WINDOW, WINDOW)
    assert [o.name for o in decision.outcomes] == ["dead"]
    assert decision.transitions == ()
    assert decision.snapshot.parked == ()


def test_a_currency_change_is_dead() -> None:
    decision = run(ev("payment.authorized", 100, currency="EUR"),
                   ev("payment.captured", 100, "c", currency="USD"))
    assert decision.outcomes[-1].name == "dead"
    assert "currency" in (decision.outcomes[-1].reason or "")


def test_refunds_beyond_captures_wait_for_the_capture_still_on_its_way() -> None:
    decision = run(ev("payment.authorized", 200), ev("payment.captured", 100, "c1"),
                   ev("payment.refunded", 150, "r"))
    assert decision.outcomes[-1].name == "parked"
    assert decision.snapshot.totals.refunded == 0
    released = run(ev("payment.captured", 100, "c2"), snap=decision.snapshot)
    assert [o.name for o in released.outcomes] == ["applied", "released"]
    assert released.snapshot.totals == sm.Totals(authorized=200, captured=200, refunded=150)


def test_captures_beyond_the_authorization_are_dead() -> None:
    decision = run(ev("payment.authorized", 100), ev("payment.captured", 80, "c1"),
                   ev("payment.captured", 80, "c2"))
    assert decision.outcomes[-1].name == "dead"
    assert decision.snapshot.totals.captured == 80


def test_failed_captures_and_refunds_are_noted_without_a_transition() -> None:
    decision = run(ev("payment.authorized", 100), ev("payment.capture_failed"),
                   ev("payment.refund_failed"))
    assert [o.name for o in decision.outcomes] == ["applied", "noted", "noted"]
    assert len(decision.transitions) == 1


def test_a_second_chargeback_after_a_won_dispute_is_lost() -> None:
    decision = run(ev("payment.authorized", 100), ev("payment.captured", 100, "c"),
                   ev("dispute.opened", 100, "d1"), ev("dispute.won"), ev("dispute.lost"))
    assert [t.to_state for t in decision.transitions][-3:] == [
        "disputed", "dispute_won", "dispute_lost"]


def test_events_without_amounts_still_move_state() -> None:
    decision = run(ev("payment.authorized"), ev("payment.captured"), ev("payment.refunded"))
    assert [t.to_state for t in decision.transitions] == [
        "authorized", "captured", "partially_refunded"]


# --- properties over arbitrary delivery orders ------------------------------------------------

RANK = {None: 0, "authorized": 1, "captured": 2, "partially_refunded": 3, "refunded": 4,
        "canceled": 2, "failed": 1, "disputed": 5, "dispute_won": 6, "dispute_lost": 7}


@st.composite
def lifecycles(draw: st.DrawFn, disputes: bool = True) -> list[PaymentEvent]:
    """A true lifecycle, in the order the provider produced it."""
    authorized = draw(st.integers(1, 10_000))
    events = [ev("payment.authorized", authorized)]
    if draw(st.booleans()) and draw(st.booleans()):
        return [*events, ev("payment.canceled")]
    captures = draw(st.lists(st.integers(1, 5_000), min_size=1, max_size=3))
    remaining, captured = authorized, 0
    for i, amount in enumerate(captures):
        take = min(amount, remaining)
        if take == 0:
            break
        events.append(ev("payment.captured", take, f"c{i}"))
        remaining -= take
        captured += take
    refunds = draw(st.lists(st.integers(1, 5_000), max_size=3))
    left = captured
    for i, amount in enumerate(refunds):
        take = min(amount, left)
        if take == 0:
            break
        events.append(ev("payment.refunded", take, f"r{i}"))
        left -= take
    if disputes and left and draw(st.booleans()):
        events.append(ev("dispute.opened", left, "d0"))
        events.append(ev(draw(st.sampled_from(["dispute.won", "dispute.lost"]))))
    return events


def _check_invariants(decision: sm.Decision) -> None:
    versions = [t.version for t in decision.transitions]
    assert versions == list(range(1, len(versions) + 1))  # gapless
    previous = None
    for t in decision.transitions:
        assert t.totals.captured <= max(t.totals.authorized, t.totals.captured)
        assert t.totals.refunded <= t.totals.captured
        assert t.from_state == previous
        assert previous not in sm.TERMINAL
        # never backwards, except a new dispute after a won one
        assert RANK[t.to_state] >= RANK[t.from_state] or (
            t.from_state == "dispute_won" and t.to_state == "disputed")
        previous = t.to_state


@settings(max_examples=300)
@given(lifecycles(disputes=False), st.randoms(use_true_random=False), st.integers(0, 3))
def test_any_order_with_duplicates_converges_to_the_in_order_result(
        events: list[PaymentEvent], rng: object, duplicates: int) -> None:
    in_order = run(*events)
    delivered = list(events) + [events[i % len(events)] for i in range(duplicates)]
    rng.shuffle(delivered)  # type: ignore[attr-defined]
    shuffled = run(*delivered)
    _check_invariants(in_order)
    _check_invariants(shuffled)
    assert shuffled.snapshot.state == in_order.snapshot.state
    assert shuffled.snapshot.totals == in_order.snapshot.totals
    assert shuffled.snapshot.parked == ()
    assert len(shuffled.transitions) == len(in_order.transitions)
    # every event appears exactly once as applied/released/stale/noted, the rest are duplicates
    handled = [o for o in shuffled.outcomes if o.name != "duplicate"]
    assert sorted(o.event.event_id for o in handled if o.name != "parked") == sorted(
        e.event_id for e in events)


@settings(max_examples=300)
@given(lifecycles(), st.randoms(use_true_random=False), st.integers(0, 6))
def test_money_invariants_hold_when_part_of_a_lifecycle_expires_parked(
        events: list[PaymentEvent], rng: object, drop: int) -> None:
    delivered = list(events)
    rng.shuffle(delivered)  # type: ignore[attr-defined]
    delivered = delivered[drop:]  # some predecessors never arrive
    decision = run(*delivered)
    expired = sm.expire(decision.snapshot, NOW + WINDOW, WINDOW)
    combined = sm.Decision(expired.snapshot, decision.outcomes + expired.outcomes,
                           decision.transitions + expired.transitions)
    _check_invariants(combined)
    assert expired.snapshot.parked == ()
    assert sm.expire(expired.snapshot, NOW + 2 * WINDOW, WINDOW).transitions == ()


@settings(max_examples=300)
@given(lifecycles(), st.randoms(use_true_random=False), st.integers(0, 3))
def test_any_order_with_disputes_keeps_every_invariant(
        events: list[PaymentEvent], rng: object, duplicates: int) -> None:
    # a refund that arrives after a lost dispute is stale (terminal stays terminal), so with
    # disputes the final totals may depend on the order; the invariants may not
    delivered = list(events) + [events[i % len(events)] for i in range(duplicates)]
    rng.shuffle(delivered)  # type: ignore[attr-defined]
    decision = run(*delivered)
    expired = sm.expire(decision.snapshot, NOW + WINDOW, WINDOW)
    _check_invariants(sm.Decision(expired.snapshot, (), decision.transitions + expired.transitions))


def test_snapshots_forget_old_event_ids_beyond_the_limit_but_stay_idempotent() -> None:
    snap = run(ev("payment.authorized", 10**6), ev("payment.captured", 10**6)).snapshot
    first = ev("payment.refunded", 1)
    snap = run(first, snap=snap).snapshot
    for i in range(sm.SEEN_LIMIT):
        snap = run(ev("payment.refunded", 1 + i % 2), snap=snap).snapshot
    assert first.event_id not in snap.seen
    again = run(replace(first), snap=snap)
    assert again.outcomes[0].name == "stale"  # forgotten id, but its effect is already included


def test_at_expiry_a_parked_capture_goes_before_the_parked_refund_it_precedes() -> None:
    # no authorization ever comes (iDEAL, automatic capture): refund parked first, capture later
    refund = ev("payment.refunded", 500, "r1")
    capture = ev("payment.captured", 1000)
    snap = run(refund).snapshot
    snap = sm.replay(snap, [capture], NOW + timedelta(minutes=10)).snapshot
    decision = sm.expire(snap, NOW + WINDOW, WINDOW)  # only the refund is due
    assert [(t.to_state, t.inferred) for t in decision.transitions] == [
        ("authorized", True), ("captured", False), ("partially_refunded", False)]
    assert decision.snapshot.totals == sm.Totals(authorized=1000, captured=1000, refunded=500)


def test_a_higher_authorization_later_raises_the_authorized_total_in_place() -> None:
    decision = run(ev("payment.authorized", 1000), ev("payment.captured", 800, "c1"),
                   ev("payment.authorized", 1500), ev("payment.captured", 600, "c2"),
                   ev("payment.authorized", 1200))
    assert [o.name for o in decision.outcomes] == ["applied", "applied", "applied", "applied",
                                                   "stale"]
    assert [(t.from_state, t.to_state) for t in decision.transitions][2] == ("captured", "captured")
    assert decision.snapshot.totals.authorized == 1500
    assert decision.snapshot.totals.captured == 1400


def automatic(amount: int = 500) -> PaymentEvent:
    """A capture whose provider sends no authorization before it (automatic capture)."""
    return replace(ev("payment.captured", amount), authorization_expected=False)


def test_an_automatic_capture_applies_at_once_with_its_authorization_inferred() -> None:
    decision = run(automatic(500))
    assert [o.name for o in decision.outcomes] == ["inferred"]
    assert [(t.version, t.from_state, t.to_state, t.inferred) for t in decision.transitions] == [
        (1, None, "authorized", True), (2, "authorized", "captured", False)]
    assert decision.snapshot.totals == sm.Totals(authorized=500, captured=500)
    assert decision.snapshot.parked == ()


def test_a_capture_that_expects_its_authorization_still_parks() -> None:
    decision = run(ev("payment.captured", 500))
    assert [o.name for o in decision.outcomes] == ["parked"]
    assert decision.transitions == ()


def test_an_automatic_capture_releases_a_refund_parked_before_it() -> None:
    refund = ev("payment.refunded", 200, "r1")
    decision = run(refund, automatic(500))
    assert [o.name for o in decision.outcomes] == ["parked", "inferred", "released"]
    assert [t.to_state for t in decision.transitions] == [
        "authorized", "captured", "partially_refunded"]
    assert decision.snapshot.totals == sm.Totals(authorized=500, captured=500, refunded=200)


def test_an_authorization_after_an_automatic_capture_is_stale() -> None:
    decision = run(automatic(500), ev("payment.authorized", 500))
    assert [o.name for o in decision.outcomes] == ["inferred", "stale"]
    assert len(decision.transitions) == 2


def test_an_automatic_capture_twice_applies_once() -> None:
    capture = automatic(500)
    decision = run(capture, capture)
    assert [o.name for o in decision.outcomes] == ["inferred", "duplicate"]
    assert [t.version for t in decision.transitions] == [1, 2]


def test_authorization_expected_is_written_to_the_wire_only_when_false() -> None:
    assert "authorization_expected" not in ev("payment.captured", 500).as_dict()
    doc = automatic(500).as_dict()
    assert doc["authorization_expected"] is False
    assert PaymentEvent.from_dict(doc).authorization_expected is False
