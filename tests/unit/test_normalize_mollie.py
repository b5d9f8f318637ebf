"""Mollie next-gen events to canonical payment events: the mapping table over payloads shaped like
Mollie's documented snapshots, unmapped types, malformed payloads (NormalizeError and nothing
else), the simulator's lifecycles end to end through the receiver's own scheme and envelopes, and
arbitrary payloads."""

from __future__ import annotations

import contextlib
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers import state as sm
from consumers.errors import NormalizeError
from consumers.normalize import normalize as dispatch
from consumers.normalize.mollie import normalize
from ingest.schemes import RawRequest, build_scheme
from payhooks.config import EndpointSettings, Secret
from payhooks.sim import mollie as sim
from schemas import registry
from schemas.envelope import Envelope
from schemas.event import PaymentEvent
from tests.unit import normalize_support as support

NOW = 1_790_000_000
RECEIVED = "2026-09-21T12:00:05.000Z"
PAYMENT = "tr_5B8cwPMGnU6qLbRvo7qEZo"
EVENT_ID = "event_GvJ8WHrp5isUdRub9CJyH"
CREATED = "2024-03-20T09:15:02+00:00"
API = "https://api.mollie.com/v2"
APPLIED_AT = datetime.fromtimestamp(NOW + 60, UTC)
WINDOW = timedelta(minutes=15)
VALIDATOR = jsonschema.Draft202012Validator(registry.load("payhooks.event.v1"),
                                            format_checker=jsonschema.FormatChecker())


def assert_valid(event: PaymentEvent) -> None:
    VALIDATOR.validate(orjson.loads(event.to_json()))


def money(value: str, currency: str = "EUR") -> dict[str, str]:
    return {"currency": currency, "value": value}


def payment(status: str, value: str = "10.00", currency: str = "EUR", **extra: Any
            ) -> dict[str, Any]:
    """A Payments API snapshot as in Mollie's "Webhooks for the Payments API" examples."""
    return {
        "resource": "payment", "id": PAYMENT, "mode": "live", "amount": money(value, currency),
        "description": "Order #12345", "method": "creditcard", "sequenceType": "oneoff",
        "redirectUrl": "https://webshop.example.org/order/12345/",
        "metadata": "{\"order_id\":12345}", "profileId": "pfl_QkEhN94Ba", "status": status,
        "createdAt": "2024-03-20T09:13:37+00:00", **extra,
        "_links": {"self": {"href": f"{API}/payments/{PAYMENT}", "type": "application/hal+json"}},
    }


def operation(resource: str, ident: str, value: str = "5.95", currency: str = "EUR",
              **extra: Any) -> dict[str, Any]:
    """A capture, refund or chargeback snapshot: its own id, ``amount`` and ``paymentId``."""
    return {
        "resource": resource, "id": ident, "mode": "live", "amount": money(value, currency),
        "paymentId": PAYMENT, "createdAt": "2024-03-20T09:13:37+00:00", **extra,
        "_links": {"payment": {"href": f"{API}/payments/{PAYMENT}",
                               "type": "application/hal+json"}},
    }


def event_body(kind: str, entity: dict[str, Any] | None, *, created: Any = CREATED,
               **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"resource": "event", "id": EVENT_ID, "type": kind,
                            "entityId": (entity or {}).get("id", PAYMENT), "createdAt": created,
                            **extra}
    if entity is not None:
        body["_embedded"] = {"entity": entity}
    return body


def envelope(body: Any, *, kind: str | None = None, payment_ref: str | None = PAYMENT,
             raw: bytes | None = None) -> Envelope:
    return Envelope(
        delivery_id="dlv_1", endpoint="mollie-eu", provider="mollie", event_id=EVENT_ID,
        event_type=kind if kind is not None else body["type"], payment_ref=payment_ref,
        received_at=RECEIVED, key_index=0,
        payload=raw if raw is not None else orjson.dumps(body),
    )


# --- the mapping table ----------------------------------------------------------------------------

REFUND, CAPTURE, CHARGEBACK = "re_4qqhO89gsT", "cpt_vytxeTZskVKR7C7WgdSP3d", "chb_xFzwUN4ci8HAmSG"

#: id -> (Mollie type, snapshot, (canonical type, amount, scope, currency, operation id))
TABLE: dict[str, tuple[str, dict[str, Any], tuple[str, int, str, str, str | None]]] = {
    "card authorised for a manual capture": (
        "payment.authorized",
        payment("authorized", captureMode="manual", authorizedAt=CREATED,
                captureBefore="2024-03-27T09:13:37+00:00", amountCaptured=money("0.00")),
        ("payment.authorized", 1000, "total", "EUR", None)),
    "iDEAL paid, no captures on the snapshot": (
        "payment.paid", payment("paid", "24.95", method="ideal", paidAt=CREATED),
        ("payment.captured", 2495, "total", "EUR", None)),
    "card paid after a partial capture released the rest": (
        "payment.paid",
        payment("paid", authorizedAt=CREATED, paidAt=CREATED, amountCaptured=money("6.00"),
                amountRemaining=money("0.00")),
        ("payment.captured", 600, "total", "EUR", None)),
    "paid with amountCaptured null falls back to amount": (
        "payment.paid", payment("paid", "12.00", amountCaptured=None),
        ("payment.captured", 1200, "total", "EUR", None)),
    "yen have no minor unit": (
        "payment.paid", payment("paid", "1200", "JPY"),
        ("payment.captured", 1200, "total", "JPY", None)),
    "dinar have three decimals": (
        "payment.authorized", payment("authorized", "1.250", "KWD", authorizedAt=CREATED),
        ("payment.authorized", 1250, "total", "KWD", None)),
    "card declined": (
        "payment.failed", payment("failed", failedAt=CREATED),
        ("payment.authorization_failed", 1000, "total", "EUR", None)),
    "bank transfer abandoned until it expired": (
        "payment.expired", payment("expired", method="banktransfer", expiredAt=CREATED),
        ("payment.authorization_failed", 1000, "total", "EUR", None)),
    "authorisation expired uncaptured, the hold released": (
        "payment.expired", payment("expired", authorizedAt=CREATED, expiredAt=CREATED),
        ("payment.canceled", 1000, "total", "EUR", None)),
    "customer canceled at checkout, nothing authorised": (
        "payment.canceled", payment("canceled", canceledAt=CREATED),
        ("payment.authorization_failed", 1000, "total", "EUR", None)),
    "authorisation released without a capture": (
        "payment.canceled", payment("canceled", authorizedAt=CREATED, canceledAt=CREATED),
        ("payment.canceled", 1000, "total", "EUR", None)),
    "capture succeeded, the one capture a payment has": (
        "capture.succeeded", operation("capture", CAPTURE, "35.95", status="succeeded"),
        ("payment.captured", 3595, "total", "EUR", CAPTURE)),
    "capture failed": (
        "capture.failed", operation("capture", CAPTURE, "35.95", status="failed"),
        ("payment.capture_failed", 3595, "operation", "EUR", CAPTURE)),
    "refund transferred to the customer": (
        "refund.refunded",
        operation("refund", REFUND, status="refunded", description="Order #12345",
                  settlementAmount=money("-5.95")),
        ("payment.refunded", 595, "operation", "EUR", REFUND)),
    "refund failed": (
        "refund.failed", operation("refund", REFUND, status="failed"),
        ("payment.refund_failed", 595, "operation", "EUR", REFUND)),
    "chargeback received": (
        "chargeback.received", operation("chargeback", CHARGEBACK, "10.00", reason=None,
                                         reversedAt=None),
        ("dispute.opened", 1000, "operation", "EUR", CHARGEBACK)),
    "chargeback reversed": (
        "chargeback.reversed", operation("chargeback", CHARGEBACK, "10.00",
                                         reversedAt="2024-04-02T10:00:00+00:00"),
        ("dispute.won", 1000, "operation", "EUR", CHARGEBACK)),
}


@pytest.mark.parametrize("case", TABLE)
def test_documented_events_map_to_their_canonical_fields(case: str) -> None:
    kind, entity, expected = TABLE[case]
    event = normalize(envelope(event_body(kind, entity)))
    assert event is not None
    assert (event.type, event.amount, event.amount_scope, event.currency,
            event.operation_id) == expected
    assert event.event_id == f"mollie:{EVENT_ID}"
    assert event.payment_id == f"mollie:{PAYMENT}"
    assert (event.provider, event.endpoint, event.provider_event_id, event.provider_event_type) == (
        "mollie", "mollie-eu", EVENT_ID, kind)
    assert (event.occurred_at, event.received_at, event.delivery_id) == (
        "2024-03-20T09:15:02.000Z", RECEIVED, "dlv_1")
    assert_valid(event)


@pytest.mark.parametrize("case", TABLE)
def test_the_worker_dispatch_reaches_the_mollie_normaliser(case: str) -> None:
    kind, entity, _ = TABLE[case]
    env = envelope(event_body(kind, entity))
    assert dispatch(env) == normalize(env)


def test_the_event_time_is_createdat_in_any_offset_on_the_wire() -> None:
    body = event_body("payment.paid", payment("paid"), created="2024-03-20T10:15:02.5+01:00")
    event = normalize(envelope(body))
    assert event is not None
    assert event.occurred_at == "2024-03-20T09:15:02.500Z"


def test_the_same_envelope_always_gives_the_same_event() -> None:
    env = envelope(event_body("refund.refunded", operation("refund", REFUND)))
    assert normalize(env) == normalize(env)


# --- unmapped -------------------------------------------------------------------------------------

UNMAPPED = ["payment.pending", "refund.queued", "refund.pending", "refund.processing",
            "refund.canceled", "payment-link.paid", "profile.verified", "sales-invoice.paid",
            "balance-transaction.created", "", "PAYMENT.PAID", "payment.paid.v2"]


@pytest.mark.parametrize("kind", UNMAPPED)
def test_events_of_no_canonical_type_are_none(kind: str) -> None:
    entity = operation("refund", REFUND) if kind.startswith("refund") else payment("pending")
    assert normalize(envelope(event_body(kind, entity))) is None


@pytest.mark.parametrize("kind", UNMAPPED)
def test_unmapped_events_are_none_without_reading_the_body(kind: str) -> None:
    assert normalize(envelope(None, kind=kind, raw=b"\xff not json")) is None


# --- malformed ------------------------------------------------------------------------------------


def broken(change: Any) -> Envelope:
    """A refund.refunded envelope after ``change(body)`` edits its payload in place."""
    body = event_body("refund.refunded", operation("refund", REFUND))
    change(body)
    return envelope(body)


def entity_of(body: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = body["_embedded"]["entity"]
    return found


MALFORMED: dict[str, Envelope] = {
    "payload is not JSON": envelope(None, kind="payment.paid", raw=b"id=tr_5B8cwPMGnU"),
    "payload is not UTF-8": envelope(None, kind="payment.paid", raw=b"\xff\xfe"),
    "payload is a JSON array": envelope(None, kind="payment.paid", raw=b"[]"),
    "simple payload without a snapshot": envelope(event_body("payment.paid", None)),
    "snapshot is not an object": broken(lambda b: b["_embedded"].update(entity=[1])),
    "_embedded is a string": broken(lambda b: b.update(_embedded="entity")),
    "envelope names no payment": envelope(event_body("payment.paid", payment("paid")),
                                          payment_ref=None),
    "payment snapshot is another payment": envelope(event_body("payment.paid", payment("paid")),
                                                    payment_ref="tr_someoneElse"),
    "refund snapshot is of another payment": broken(
        lambda b: entity_of(b).update(paymentId="tr_someoneElse")),
    "refund without an id": broken(lambda b: entity_of(b).pop("id")),
    "refund id is a number": broken(lambda b: entity_of(b).update(id=42)),
    "amount is missing": broken(lambda b: entity_of(b).pop("amount")),
    "amount value is a float": broken(lambda b: entity_of(b).update(
        amount={"currency": "EUR", "value": 5.95})),
    "amount value is an integer": broken(lambda b: entity_of(b).update(
        amount={"currency": "EUR", "value": 5})),
    "amount has more decimals than the currency": broken(
        lambda b: entity_of(b).update(amount=money("5.951"))),
    "amount is not a number": broken(lambda b: entity_of(b).update(amount=money("five"))),
    "amount is infinite": broken(lambda b: entity_of(b).update(amount=money("Infinity"))),
    "amount is negative": broken(lambda b: entity_of(b).update(amount=money("-5.95"))),
    "currency is not ISO 4217": broken(lambda b: entity_of(b).update(amount=money("5.95", "EURO"))),
    "currency is missing": broken(lambda b: entity_of(b).update(amount={"value": "5.95"})),
    "createdAt is missing": broken(lambda b: b.pop("createdAt")),
    "createdAt has no zone": broken(lambda b: b.update(createdAt="2024-03-20T09:13:37")),
    "createdAt is not a time": broken(lambda b: b.update(createdAt="yesterday")),
    "createdAt is unix seconds": broken(lambda b: b.update(createdAt=1710926017)),
    "createdAt out of range": broken(lambda b: b.update(createdAt="0001-01-01T00:00:00+01:00")),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_payloads_of_mapped_events_are_normalize_errors(case: str) -> None:
    with pytest.raises(NormalizeError):
        normalize(MALFORMED[case])


# --- the simulator, end to end --------------------------------------------------------------------

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
SIM_ENDPOINT = EndpointSettings(name="mollie-eu", provider="mollie",
                                secrets=(Secret("mollie-sim-secret-7c1e"),))
#: the canonical type each simulated Mollie type must become (None: unmapped)
SIM_EXPECTED: dict[str, str | None] = {
    "payment.pending": None, "payment.authorized": "payment.authorized",
    "payment.paid": "payment.captured", "payment.failed": "payment.authorization_failed",
    "payment.expired": "payment.authorization_failed",
    "payment.canceled": "payment.authorization_failed",  # the simulator never authorises these
    "refund.queued": None, "refund.pending": None, "refund.refunded": "payment.refunded",
}


async def normalized_lifecycle(seed: int) -> list[tuple[Envelope, PaymentEvent | None]]:
    """One simulated payment through sign, verify, records_for and the worker's dispatch."""
    scheme = build_scheme(SIM_ENDPOINT)
    out = []
    for index, sim_event in enumerate(sim.lifecycle(random.Random(seed), NOW)):
        signed = sim.sign([sim_event], SIM_ENDPOINT, NOW)
        [(record, env)] = await support.delivered(
            SIM_ENDPOINT, RawRequest(signed.body, signed.headers), NOW, received_at=RECEIVED,
            delivery_id=f"dlv_{seed}_{index}", traceparent=TRACEPARENT, scheme=scheme)
        assert record.key == env.partition_key.encode()
        assert env.payment_ref == sim_event.payment_ref
        event = dispatch(env)
        assert event is not None or SIM_EXPECTED[sim_event.kind] is None
        assert (event.type if event else None) == SIM_EXPECTED[sim_event.kind]
        out.append((env, event))
    return out


def settle(events: list[PaymentEvent]) -> tuple[sm.Snapshot, list[str]]:
    """The state machine over ``events`` in this order, then past the parking window."""
    decision = sm.replay(sm.Snapshot(events[0].payment_id), events, APPLIED_AT)
    expired = sm.expire(decision.snapshot, APPLIED_AT + WINDOW, WINDOW)
    return expired.snapshot, [o.name for o in (*decision.outcomes, *expired.outcomes)]


def expected_state(kinds: list[str], events: list[PaymentEvent]) -> str:
    if "refund.refunded" in kinds:
        [refund] = [e for e in events if e.type == "payment.refunded"]
        return "refunded" if refund.amount == max(e.amount or 0 for e in events) else \
            "partially_refunded"
    return "captured" if "payment.paid" in kinds else "failed"


async def test_simulated_lifecycles_normalise_end_to_end_and_settle_in_the_state_machine(
        ) -> None:
    seen_types: set[str] = set()
    event_ids: set[str] = set()
    for seed in range(300):
        pairs = await normalized_lifecycle(seed)
        events = [e for _, e in pairs if e is not None]
        for env, event in pairs:
            if event is None:
                continue
            assert_valid(event)
            assert event.payment_id == env.partition_key
            assert event.event_id not in event_ids
            event_ids.add(event.event_id)
            seen_types.add(event.type)
            assert event.amount is not None
        assert len({(e.payment_id, e.currency) for e in events}) == 1
        assert [e.occurred_at for e in events] == sorted(e.occurred_at for e in events)
        snap, outcomes = settle(events)
        assert "dead" not in outcomes
        assert snap.parked == ()
        kinds = [env.event_type for env, _ in pairs]
        assert snap.state == expected_state(kinds, events)
        assert snap.totals.refunded <= snap.totals.captured <= snap.totals.authorized
        assert snap.currency == events[0].currency
        shuffled = [*events, *events[:1]]
        random.Random(seed).shuffle(shuffled)
        again, outcomes = settle(shuffled)
        assert "dead" not in outcomes
        assert (again.state, again.totals) == (snap.state, snap.totals)
    assert seen_types == {"payment.authorized", "payment.captured", "payment.refunded",
                          "payment.authorization_failed"}


def test_an_ideal_half_refund_delivered_before_its_paid_event_settles_partially_refunded(
        ) -> None:
    paid = normalize(envelope(event_body("payment.paid", payment("paid", method="ideal"))))
    refund = normalize(Envelope(**{**_fields(envelope(event_body(
        "refund.refunded", operation("refund", REFUND, "5.00")))), "event_id": "event_refund"}))
    assert paid is not None
    assert refund is not None
    snap, _ = settle([refund, paid])
    assert (snap.state, snap.totals.captured, snap.totals.refunded) == (
        "partially_refunded", 1000, 500)


@pytest.mark.parametrize("order", ["capture first", "paid first"])
def test_a_capture_and_the_paid_payment_count_the_money_once_in_any_order(order: str) -> None:
    captured = operation("capture", CAPTURE, "6.00", status="succeeded")
    paid = payment("paid", authorizedAt=CREATED, amountCaptured=money("6.00"))
    events = [normalize(envelope(event_body("payment.authorized",
                                            payment("authorized", authorizedAt=CREATED)))),
              normalize(Envelope(**{**_fields(envelope(event_body("capture.succeeded", captured))),
                                    "event_id": "event_capture"})),
              normalize(Envelope(**{**_fields(envelope(event_body("payment.paid", paid))),
                                    "event_id": "event_paid"}))]
    assert all(events)
    ordered = [e for e in events if e is not None]
    if order == "paid first":
        ordered[1], ordered[2] = ordered[2], ordered[1]
    snap, outcomes = settle(ordered)
    assert outcomes == ["applied", "applied", "stale"]
    assert (snap.state, snap.totals.captured, snap.totals.authorized) == ("captured", 600, 1000)


def _fields(value: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__dataclass_fields__}


async def test_a_redelivery_normalises_to_the_same_event_id_and_facts() -> None:
    scheme = build_scheme(SIM_ENDPOINT)
    for seed in range(20):
        for sim_event in sim.lifecycle(random.Random(seed), NOW):
            signed = sim.sign([sim_event], SIM_ENDPOINT, NOW)
            deliveries = []
            for attempt, received in enumerate((RECEIVED, "2026-09-22T08:00:00.000Z")):
                [(_, env)] = await support.delivered(
                    SIM_ENDPOINT, RawRequest(signed.body, signed.headers), NOW,
                    received_at=received, delivery_id=f"dlv_{attempt}",
                    traceparent=TRACEPARENT, scheme=scheme)
                deliveries.append(dispatch(env))
            first, second = deliveries
            if first is None or second is None:
                assert first is second is None
                continue
            assert replace(second, delivery_id="dlv_0", received_at=RECEIVED) == first


# --- arbitrary payloads ---------------------------------------------------------------------------

KEYS = ["resource", "id", "type", "entityId", "createdAt", "_embedded", "entity", "amount",
        "value", "currency", "paymentId", "authorizedAt", "amountCaptured", "status"]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False)
    | st.text(max_size=12) | st.sampled_from(["EUR", "JPY", "10.00", "-1.00", "1.234", PAYMENT,
                                              CREATED, "2024-03-20T09:13:37"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner,
                                                                max_size=5),
    max_leaves=25,
)
KINDS = st.sampled_from([*SIM_EXPECTED, "capture.succeeded",
                         "capture.failed", "refund.failed", "chargeback.received",
                         "chargeback.reversed", "payment-link.paid"]) | st.text(max_size=20)


@given(doc=JSON, kind=KINDS, payment_ref=st.none() | st.just(PAYMENT))
def test_any_payload_is_an_event_none_or_a_normalize_error(doc: Any, kind: str,
                                                           payment_ref: str | None) -> None:
    env = envelope(None, kind=kind, payment_ref=payment_ref, raw=orjson.dumps(doc))
    try:
        event = normalize(env)
    except NormalizeError:
        return
    if event is not None:
        assert_valid(event)
        assert event.payment_id == env.partition_key


@given(raw=st.binary(max_size=64), kind=KINDS)
def test_any_bytes_are_an_event_none_or_a_normalize_error(raw: bytes, kind: str) -> None:
    with contextlib.suppress(NormalizeError):
        event = normalize(envelope(None, kind=kind, raw=raw))
        if event is not None:  # a few bytes can be a valid payload: b'{}' for a cancel
            assert_valid(event)


@given(minor=st.integers(0, 10**12), currency=st.sampled_from(["EUR", "JPY", "KWD", "CLF", "GBP"]),
       kind=st.sampled_from(["payment.authorized", "payment.paid", "refund.refunded",
                             "chargeback.received"]))
def test_decimal_amounts_become_exact_minor_units(minor: int, currency: str, kind: str) -> None:
    exponent = {"EUR": 2, "JPY": 0, "KWD": 3, "CLF": 4, "GBP": 2}[currency]
    value = str(Decimal(minor).scaleb(-exponent))
    entity = (payment("paid", value, currency) if kind.startswith("payment")
              else operation(kind.partition(".")[0], "x_1", value, currency))
    event = normalize(envelope(event_body(kind, entity)))
    assert event is not None
    assert (event.amount, event.currency) == (minor, currency)
    assert_valid(event)


def test_a_payment_paid_without_authorization_expects_none_and_an_authorized_one_does() -> None:
    ideal = normalize(envelope(event_body("payment.paid", payment("paid", method="ideal",
                                                                  paidAt=CREATED))))
    card = normalize(envelope(event_body("payment.paid", payment(
        "paid", authorizedAt=CREATED, paidAt=CREATED, amountCaptured=money("10.00")))))
    assert ideal is not None
    assert card is not None
    assert (ideal.type, ideal.authorization_expected) == ("payment.captured", False)
    assert (card.type, card.authorization_expected) == ("payment.captured", True)
