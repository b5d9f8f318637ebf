"""Standard Webhooks events to canonical payment events through the canonical payload convention
(``consumers.normalize.canonical_payload``): the convention's table, times, unmapped types,
malformed payloads (NormalizeError and nothing else), the simulator's lifecycles end to end through
the receiver's own scheme and envelopes (HMAC and Ed25519 rings), and arbitrary payloads."""

from __future__ import annotations

import contextlib
import random
import types
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from consumers import state as sm
from consumers.errors import NormalizeError
from consumers.normalize import normalize as dispatch
from consumers.normalize.standard import normalize
from ingest.schemes import RawRequest, build_scheme
from ingest.schemes.standard import private_key_text, public_key_text
from payhooks.config import EndpointSettings, Secret
from payhooks.sim import standard as sim
from payhooks.sim.base import SimEvent
from schemas import registry
from schemas.envelope import Envelope
from schemas.event import EVENT_TYPES, PaymentEvent
from tests.unit import normalize_support as support

NOW = 1_790_000_000
RECEIVED = "2026-09-21T12:00:05.000Z"
APPLIED_AT = datetime.fromtimestamp(NOW + 60, UTC)
WINDOW = timedelta(minutes=15)
MSG_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
PAYMENT = "pay_9Hq2fLx0WnR4ZbT7cV1mK3sD"
TIME = "2026-09-21T11:59:00Z"
VALIDATOR = jsonschema.Draft202012Validator(registry.load("payhooks.event.v1"),
                                            format_checker=jsonschema.FormatChecker())


def assert_valid(event: PaymentEvent) -> None:
    VALIDATOR.validate(orjson.loads(event.to_json()))


def message(kind: str, time: Any = TIME, **data: Any) -> dict[str, Any]:
    """A Standard Webhooks payload: ``{"type", "timestamp", "data"}`` (the spec's convention)."""
    return {"type": kind, "timestamp": time, "data": {"payment_id": PAYMENT, **data}}


def envelope(body: Any, *, kind: str | None = None, payment_ref: str | None = PAYMENT,
             raw: bytes | None = None, provider: str = "standard") -> Envelope:
    return Envelope(
        delivery_id="dlv_1", endpoint="billing", provider=provider, event_id=MSG_ID,
        event_type=kind if kind is not None else body["type"], payment_ref=payment_ref,
        received_at=RECEIVED, key_index=0,
        payload=raw if raw is not None else orjson.dumps(body),
    )


def canonical(body: dict[str, Any], **kwargs: Any) -> PaymentEvent:
    event = normalize(envelope(body, **kwargs))
    assert event is not None
    assert_valid(event)
    return event


# --- the convention's table -----------------------------------------------------------------------

#: id -> (payload, (type, amount, scope, currency, operation id))
TABLE: dict[str, tuple[dict[str, Any], tuple[str, int | None, str | None, str | None, str | None]]]
TABLE = {
    "authorisation, a total": (
        message("payment.authorized", amount=1299, currency="EUR"),
        ("payment.authorized", 1299, "total", "EUR", None)),
    "declined, with a reason": (
        message("payment.authorization_failed", amount=1299, currency="EUR",
                reason="card_declined"),
        ("payment.authorization_failed", 1299, "total", "EUR", None)),
    "partial capture, one operation": (
        message("payment.captured", amount=600, currency="USD", operation_id="cap_1"),
        ("payment.captured", 600, "operation", "USD", "cap_1")),
    "capture sent as a running total with its id": (
        message("payment.captured", amount=1000, currency="USD", operation_id="cap_2",
                amount_scope="total"),
        ("payment.captured", 1000, "total", "USD", "cap_2")),
    "capture failed": (
        message("payment.capture_failed", amount=600, currency="USD", operation_id="cap_1"),
        ("payment.capture_failed", 600, "operation", "USD", "cap_1")),
    "canceled without an amount": (
        message("payment.canceled"),
        ("payment.canceled", None, None, None, None)),
    "canceled with a currency but no amount": (
        message("payment.canceled", currency="gbp"),
        ("payment.canceled", None, None, "GBP", None)),
    "refund of one operation": (
        message("payment.refunded", amount=250, currency="GBP", operation_id="re_1"),
        ("payment.refunded", 250, "operation", "GBP", "re_1")),
    "refunds as a running total": (
        message("payment.refunded", amount=750, currency="GBP", amount_scope="total"),
        ("payment.refunded", 750, "total", "GBP", None)),
    "refund failed": (
        message("payment.refund_failed", amount=250, currency="GBP", operation_id="re_1"),
        ("payment.refund_failed", 250, "operation", "GBP", "re_1")),
    "dispute opened": (
        message("dispute.opened", amount=123456, currency="JPY", operation_id="dp_1"),
        ("dispute.opened", 123456, "operation", "JPY", "dp_1")),
    "dispute won": (
        message("dispute.won", amount=5000, currency="EUR", operation_id="dp_1"),
        ("dispute.won", 5000, "operation", "EUR", "dp_1")),
    "dispute lost": (
        message("dispute.lost", amount=5000, currency="EUR", operation_id="dp_1"),
        ("dispute.lost", 5000, "operation", "EUR", "dp_1")),
    "lower-case currency": (
        message("payment.authorized", amount=500, currency="usd"),
        ("payment.authorized", 500, "total", "USD", None)),
    "a zero amount": (
        message("payment.authorized", amount=0, currency="EUR"),
        ("payment.authorized", 0, "total", "EUR", None)),
    "integer operation id": (
        message("payment.refunded", amount=1, currency="KWD", operation_id=77),
        ("payment.refunded", 1, "operation", "KWD", "77")),
    "null fields are absent": (
        message("payment.captured", amount=None, currency=None, operation_id=None,
                amount_scope=None),
        ("payment.captured", None, None, None, None)),
}


@pytest.mark.parametrize("case", TABLE)
def test_convention_payloads_map_to_their_canonical_fields(case: str) -> None:
    body, expected = TABLE[case]
    event = canonical(body)
    assert (event.type, event.amount, event.amount_scope, event.currency,
            event.operation_id) == expected
    assert (event.event_id, event.provider, event.endpoint, event.provider_event_id,
            event.provider_event_type) == (f"standard:{MSG_ID}", "standard", "billing", MSG_ID,
                                           body["type"])
    assert event.payment_id == f"standard:{PAYMENT}"
    assert (event.occurred_at, event.received_at, event.delivery_id) == (
        "2026-09-21T11:59:00.000Z", RECEIVED, "dlv_1")


@pytest.mark.parametrize("case", TABLE)
def test_the_worker_dispatch_reaches_the_standard_normaliser(case: str) -> None:
    env = envelope(TABLE[case][0])
    assert dispatch(env) == normalize(env)


def test_every_canonical_type_maps_to_itself() -> None:
    for kind in EVENT_TYPES:
        assert canonical(message(kind)).type == kind


def test_an_integer_payment_id_matches_the_reference_the_scheme_read_as_text() -> None:
    body = {"type": "payment.authorized", "data": {"payment_id": 4242, "amount": 5,
                                                   "currency": "EUR"}}
    assert canonical(body, payment_ref="4242").payment_id == "standard:4242"


def test_the_envelope_reference_stands_when_data_names_no_payment() -> None:
    body = {"type": "payment.captured", "data": {"object": {"id": "ch_1"}, "amount": 5,
                                                 "currency": "EUR"}}
    assert canonical(body, payment_ref="ch_1").payment_id == "standard:ch_1"


def test_without_data_an_event_carries_only_its_type_and_payment() -> None:
    event = canonical({"type": "payment.canceled"}, payment_ref="ch_1")
    assert (event.payment_id, event.amount, event.currency, event.occurred_at) == (
        "standard:ch_1", None, None, RECEIVED)


def test_without_a_configured_reference_the_payment_comes_from_data() -> None:
    # the partition key then falls back to the event id: payment_ref_field should be configured
    env = envelope(message("payment.authorized", amount=5, currency="EUR"), payment_ref=None)
    event = normalize(env)
    assert event is not None
    assert event.payment_id == f"standard:{PAYMENT}"
    assert env.partition_key == f"standard:{MSG_ID}"


# --- times ----------------------------------------------------------------------------------------

TIMES: dict[str, tuple[dict[str, Any], str]] = {
    "data.occurred_at wins over timestamp": (
        {"timestamp": TIME, "data": {"occurred_at": "2026-09-21T11:00:00Z"}},
        "2026-09-21T11:00:00.000Z"),
    "timestamp wins over created_at": (
        {"timestamp": TIME, "created_at": "2026-09-21T10:00:00Z"}, "2026-09-21T11:59:00.000Z"),
    "an offset is converted to UTC": (
        {"timestamp": "2026-09-21T13:59:00.123456+02:00"}, "2026-09-21T11:59:00.123Z"),
    "unix seconds as a JSON integer": ({"created_at": NOW}, "2026-09-21T14:13:20.000Z"),
    "unix seconds with a fraction": ({"timestamp": NOW + 0.25}, "2026-09-21T14:13:20.250Z"),
    "unix seconds as a string of digits": ({"timestamp": str(NOW)}, "2026-09-21T14:13:20.000Z"),
    "a null time falls through to the next": (
        {"timestamp": None, "created_at": NOW}, "2026-09-21T14:13:20.000Z"),
    "no time at all is the receipt time": ({}, RECEIVED),
}


@pytest.mark.parametrize("case", TIMES)
def test_the_event_time_follows_the_convention(case: str) -> None:
    fields, expected = TIMES[case]
    data = {"payment_id": PAYMENT, **fields.pop("data", {})}
    assert canonical({"type": "payment.canceled", **fields, "data": data}).occurred_at == expected


# --- unmapped -------------------------------------------------------------------------------------

UNMAPPED = ["", "invoice.paid", "payment.succeeded", "Payment.Captured", "payment.captured ",
            "charge.refunded", "dispute", "payment.authorized.v2"]


@pytest.mark.parametrize("kind", UNMAPPED)
def test_types_outside_the_canonical_set_are_none(kind: str) -> None:
    assert normalize(envelope(message(kind, amount=1.5), kind=kind)) is None


@pytest.mark.parametrize("kind", UNMAPPED)
def test_unmapped_events_are_none_without_reading_the_body(kind: str) -> None:
    assert normalize(envelope(None, kind=kind, raw=b"\xff<xml/>")) is None


# --- malformed ------------------------------------------------------------------------------------


def with_data(**data: Any) -> Envelope:
    return envelope({"type": "payment.captured", "timestamp": TIME,
                     "data": {"payment_id": PAYMENT, "amount": 100, "currency": "EUR",
                              "operation_id": "cap_1", **data}})


def with_time(**fields: Any) -> Envelope:
    return envelope({"type": "payment.captured", **fields, "data": {"payment_id": PAYMENT}})


MALFORMED: dict[str, Envelope] = {
    "payload is not JSON": envelope(None, kind="payment.captured", raw=b"amount=100"),
    "payload is a JSON array": envelope(None, kind="payment.captured", raw=b"[1]"),
    "payload is a JSON string": envelope(None, kind="payment.captured", raw=b'"x"'),
    "data is a list": envelope({"type": "payment.captured", "data": [PAYMENT]}),
    "data is a string": envelope({"type": "payment.captured", "data": PAYMENT}),
    "payment differs from the envelope's": with_data(payment_id="pay_other"),
    "no payment anywhere": envelope(message("payment.captured") | {"data": {}},
                                    payment_ref=None),
    "payment id is empty": envelope(message("payment.captured") | {"data": {"payment_id": ""}},
                                    payment_ref=None),
    "payment id is a boolean": with_data(payment_id=True),
    "payment id is a float": with_data(payment_id=1.0),
    "payment id is an object": with_data(payment_id={"id": PAYMENT}),
    "amount is a float": with_data(amount=12.5),
    "amount is a whole float": with_data(amount=12.0),
    "amount is a string": with_data(amount="1299"),
    "amount is a boolean": with_data(amount=True),
    "amount is negative": with_data(amount=-1),
    "amount without a currency": with_data(currency=None),
    "currency is a number": with_data(currency=978),
    "currency is not ISO 4217": with_data(currency="EURO"),
    "currency is empty": with_data(currency=""),
    "operation id is empty": with_data(operation_id=""),
    "operation id is a float": with_data(operation_id=1.5),
    "operation id is a list": with_data(operation_id=["cap_1"]),
    "scope is unknown": with_data(amount_scope="sum"),
    "scope is a number": with_data(amount_scope=1),
    "operation scope without an operation": with_data(operation_id=None,
                                                      amount_scope="operation"),
    "time is prose": with_time(timestamp="yesterday"),
    "time has no zone": with_time(timestamp="2026-09-21T11:59:00"),
    "time is a boolean": with_time(timestamp=True),
    "time is an object": with_time(created_at={"seconds": NOW}),
    "time is unix milliseconds": with_time(timestamp=NOW * 1000),
    "time is far beyond any calendar": with_time(timestamp=2**62),
    "time is beyond 64 bits": envelope(None, kind="payment.captured", raw=(
        b'{"timestamp": 1000000000000000000000000000000, "data": {"payment_id": "%s"}}'
        % PAYMENT.encode())),
    "amount is beyond 64 bits (orjson reads a float)": envelope(None, kind="payment.captured", raw=(
        b'{"data": {"payment_id": "%s", "amount": 100000000000000000000000, "currency": "EUR"}}'
        % PAYMENT.encode())),
    "time digits beyond any calendar": with_time(timestamp="9" * 30),
    "occurred_at is unreadable": envelope({"type": "payment.captured", "timestamp": TIME,
                                           "data": {"occurred_at": "soon"}}),
    "an envelope of another provider": envelope(message("payment.captured"), provider="hmac"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_payloads_of_canonical_types_are_normalize_errors(case: str) -> None:
    with pytest.raises(NormalizeError):
        normalize(MALFORMED[case])


# --- the simulator, end to end --------------------------------------------------------------------

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ED_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
RINGS: dict[str, EndpointSettings] = {
    "hmac": EndpointSettings(
        name="billing", provider="standard", secrets=(Secret(SECRET),),
        options=types.MappingProxyType({"payment_ref_field": "data.payment_id"})),
    "ed25519": EndpointSettings(
        name="billing", provider="standard", secrets=(Secret(public_key_text(ED_KEY)),),
        options=types.MappingProxyType({"payment_ref_field": "data.payment_id",
                                        "sim_signing_key": private_key_text(ED_KEY)})),
}


async def normalized_lifecycle(endpoint: EndpointSettings, seed: int
                               ) -> list[tuple[SimEvent, Envelope, PaymentEvent]]:
    """One simulated payment through sign, verify, records_for and the worker's dispatch."""
    scheme = build_scheme(endpoint)
    out = []
    for index, sim_event in enumerate(sim.lifecycle(random.Random(seed), NOW)):
        signed = sim.sign([sim_event], endpoint, NOW)
        [(record, env)] = await support.delivered(
            endpoint, RawRequest(signed.body, signed.headers), NOW + 3, received_at=RECEIVED,
            delivery_id=f"dlv_{seed}_{index}",
            traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", scheme=scheme)
        assert record.key == env.partition_key.encode()
        event = dispatch(env)
        assert event is not None, "every simulated event follows the convention"
        out.append((sim_event, env, event))
    return out


@pytest.mark.parametrize("ring", RINGS)
async def test_simulated_lifecycles_normalise_end_to_end_with_money_invariants(ring: str) -> None:
    seen: set[str] = set()
    event_ids: set[str] = set()
    for seed in range(300):
        triples = await normalized_lifecycle(RINGS[ring], seed)
        totals: dict[str, int] = defaultdict(int)
        for sim_event, env, event in triples:
            assert_valid(event)
            step = sim_event.event
            assert event.payment_id == env.partition_key == f"standard:{sim_event.payment_ref}"
            assert event.event_id == f"standard:{sim_event.event_id}"
            assert event.event_id not in event_ids
            event_ids.add(event.event_id)
            assert (event.type, event.amount, event.currency, event.operation_id) == (
                sim_event.kind, step["data"]["amount"], step["data"]["currency"],
                step["data"].get("operation_id"))
            assert event.occurred_at == step["timestamp"]
            assert event.amount is not None
            if event.amount_scope == "operation":
                totals[event.type] += event.amount
            else:
                assert event.operation_id is None
                totals[event.type] = max(totals[event.type], event.amount)
            seen.add(event.type)
        events = [e for _, _, e in triples]
        assert len({(e.payment_id, e.currency) for e in events}) == 1
        assert [e.occurred_at for e in events] == sorted(e.occurred_at for e in events)
        assert totals["payment.captured"] <= totals["payment.authorized"]
        assert totals["payment.refunded"] <= totals["payment.captured"]
        assert max(totals["dispute.opened"], totals["dispute.lost"]) <= totals["payment.captured"]
        if any(e.type in {"payment.canceled", "payment.authorization_failed"} for e in events):
            assert totals["payment.captured"] == 0
        assert_settles(events, totals, seed)
    assert seen == EVENT_TYPES - {"payment.capture_failed", "payment.refund_failed"}


def settle(events: list[PaymentEvent]) -> tuple[sm.Snapshot, list[str]]:
    """The state machine over ``events`` in this order, then past the parking window."""
    decision = sm.replay(sm.Snapshot(events[0].payment_id), events, APPLIED_AT)
    expired = sm.expire(decision.snapshot, APPLIED_AT + WINDOW, WINDOW)
    return expired.snapshot, [o.name for o in (*decision.outcomes, *expired.outcomes)]


#: the state a simulated lifecycle ends in, by its last event (refunds: see expected_state)
FINAL_STATES = {"payment.authorization_failed": "failed", "payment.canceled": "canceled",
                "payment.captured": "captured", "dispute.won": "dispute_won",
                "dispute.lost": "dispute_lost"}


def expected_state(events: list[PaymentEvent], totals: dict[str, int]) -> str:
    last = events[-1].type
    if last == "payment.refunded":
        full = totals["payment.refunded"] == totals["payment.captured"]
        return "refunded" if full else "partially_refunded"
    return FINAL_STATES[last]


def assert_settles(events: list[PaymentEvent], totals: dict[str, int], seed: int) -> None:
    """In order, and shuffled with a duplicate, the state machine ends where the sender did."""
    snap, outcomes = settle(events)
    assert "dead" not in outcomes
    assert snap.parked == ()
    assert snap.state == expected_state(events, totals)
    assert (snap.totals.authorized, snap.totals.captured, snap.totals.refunded) == (
        totals["payment.authorized"], totals["payment.captured"], totals["payment.refunded"])
    shuffled = [*events, events[-1]]
    random.Random(seed).shuffle(shuffled)
    again, outcomes = settle(shuffled)
    assert "dead" not in outcomes
    assert (again.state, again.totals) == (snap.state, snap.totals)


# --- arbitrary payloads ---------------------------------------------------------------------------

KEYS = ["type", "timestamp", "created_at", "data", "payment_id", "amount", "currency",
        "operation_id", "amount_scope", "occurred_at"]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False,
                                                                             allow_infinity=False)
    | st.text(max_size=12) | st.sampled_from(["EUR", "usd", "operation", "total", PAYMENT, TIME,
                                              "2026-09-21T11:59:00", str(NOW)]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner,
                                                                max_size=6),
    max_leaves=25,
)
KINDS = st.sampled_from(sorted(EVENT_TYPES)) | st.text(max_size=20)


@given(doc=JSON, kind=KINDS, payment_ref=st.none() | st.just(PAYMENT))
def test_any_payload_is_an_event_none_or_a_normalize_error(doc: Any, kind: str,
                                                           payment_ref: str | None) -> None:
    env = envelope(None, kind=kind, payment_ref=payment_ref, raw=orjson.dumps(doc))
    try:
        event = normalize(env)
    except NormalizeError:
        return
    if kind not in EVENT_TYPES:
        assert event is None
        return
    assert event is not None
    assert_valid(event)
    if payment_ref is not None:
        assert event.payment_id == env.partition_key


@given(raw=st.binary(max_size=64), kind=KINDS)
def test_any_bytes_are_an_event_none_or_a_normalize_error(raw: bytes, kind: str) -> None:
    with contextlib.suppress(NormalizeError):
        event = normalize(envelope(None, kind=kind, raw=raw))
        if event is not None:  # a few bytes can be a valid payload: b'{}' for a cancel
            assert_valid(event)


@given(kind=st.sampled_from(sorted(EVENT_TYPES)), amount=st.none() | st.integers(0, 2**63 - 1),
       currency=st.sampled_from(["EUR", "jpy", "Kwd"]),
       operation_id=st.none() | st.text(min_size=1, max_size=16),
       scope=st.none() | st.sampled_from(["operation", "total"]),
       seconds=st.integers(0, 4_102_444_800))
def test_well_formed_payloads_keep_every_value_exactly(
        kind: str, amount: int | None, currency: str, operation_id: str | None,
        scope: str | None, seconds: int) -> None:
    if scope == "operation" and operation_id is None:
        scope = None
    data = {"payment_id": PAYMENT, "amount": amount, "currency": currency,
            "operation_id": operation_id, "amount_scope": scope}
    event = canonical({"type": kind, "created_at": seconds, "data": data})
    assert (event.type, event.amount, event.currency, event.operation_id) == (
        kind, amount, currency.upper(), operation_id)
    default = "operation" if operation_id else "total"
    assert event.amount_scope == (None if amount is None else scope or default)
