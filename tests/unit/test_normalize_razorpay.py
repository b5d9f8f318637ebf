"""Razorpay events to canonical payment events: the mapping table over payloads shaped like
Razorpay's documented sample payloads, unmapped events, malformed payloads (NormalizeError and
nothing else), the simulator's lifecycles end to end through the receiver's own scheme and
envelopes, and arbitrary payloads."""

from __future__ import annotations

import contextlib
import json
import random
from collections import defaultdict
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.errors import NormalizeError
from consumers.normalize import normalize as dispatch
from consumers.normalize.razorpay import normalize
from ingest.schemes import RawRequest, build_scheme
from ingest.schemes.razorpay import payment_ref
from payhooks.config import EndpointSettings, Secret
from payhooks.kafka import Record
from payhooks.sim import razorpay as sim
from schemas import registry
from schemas.envelope import Envelope
from schemas.event import PaymentEvent
from tests.unit import normalize_support as support

NOW = 1_790_000_000
RECEIVED = "2026-09-21T12:00:05.000Z"
CREATED = 1_597_734_071
PAYMENT = "pay_FPoJKWQQ8lK13n"
REFUND = "rfnd_FS8TWyPrCsa0OB"
DISPUTE = "disp_AHfqOvkldwsbqt"
EVENT_ID = "Ovpqyvyd6XtVBT"  # from the unsigned X-Razorpay-Event-Id header
ENDPOINT = EndpointSettings(name="razorpay-test", provider="razorpay",
                            secrets=(Secret("razorpay-webhook-secret-7c1e"),))
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
VALIDATOR = jsonschema.Draft202012Validator(registry.load("payhooks.event.v1"),
                                            format_checker=jsonschema.FormatChecker())


def assert_valid(event: PaymentEvent) -> None:
    VALIDATOR.validate(orjson.loads(event.to_json()))


def payment(status: str, *, captured: Any, amount: Any = 500000, refunded: Any = 0,
            currency: Any = "INR", **extra: Any) -> dict[str, Any]:
    """A Payment entity as in Razorpay's payments and refunds webhook sample payloads."""
    return {
        "id": PAYMENT, "entity": "payment", "amount": amount, "currency": currency,
        "base_amount": amount, "status": status, "order_id": "order_FPoIeimWki9j8A",
        "invoice_id": None, "international": False, "method": "card",
        "amount_refunded": refunded, "amount_transferred": 0,
        "refund_status": None if not refunded else "partial", "captured": captured,
        "description": "Test Transaction", "card_id": "card_FPoJKXfy4v4ZQe", "bank": None,
        "wallet": None, "vpa": None, "email": "gaurav.kumar@example.com",
        "contact": "+919876543210", "notes": [], "fee": 11800 if captured else None,
        "tax": 1800 if captured else None, "error_code": None, "error_description": None,
        "error_source": None, "error_step": None, "error_reason": None,
        "acquirer_data": {"auth_code": "659722"}, "created_at": 1597225426, **extra,
    }


def refund(amount: Any = 50000, status: str = "processed", **extra: Any) -> dict[str, Any]:
    return {"id": REFUND, "entity": "refund", "amount": amount, "currency": "INR",
            "payment_id": PAYMENT, "notes": {"comment": "Customer Notes for Webhooks."},
            "receipt": None, "acquirer_data": {"arn": None}, "created_at": CREATED,
            "batch_id": None, "status": status, "speed_processed": "normal",
            "speed_requested": "optimum", **extra}


def dispute(status: str, *, deducted: Any = 0, amount: Any = 10000, **extra: Any
            ) -> dict[str, Any]:
    """A Dispute entity as in Razorpay's disputes webhook sample payloads."""
    return {"id": DISPUTE, "entity": "dispute", "payment_id": PAYMENT, "amount": amount,
            "currency": "INR", "amount_deducted": deducted, "reason_code": "chargeback",
            "respond_by": 1590604200, "status": status, "phase": "chargeback",
            "created_at": 1590059211, **extra}


def body(kind: str, **entities: dict[str, Any]) -> dict[str, Any]:
    return {"entity": "event", "account_id": "acc_E7OQJcEANmBHTC", "event": kind,
            "contains": list(entities),
            "payload": {name: {"entity": entity} for name, entity in entities.items()},
            "created_at": CREATED}


def envelope(event: Any, *, kind: str | None = None, raw: bytes | None = None,
             ref: str | None = PAYMENT, event_id: str = EVENT_ID) -> Envelope:
    """The envelope the receiver publishes; the payment reference is the scheme's own reading."""
    if isinstance(event, dict):
        kind = kind or event.get("event")
        ref = payment_ref(event)
    return Envelope(
        delivery_id="dlv-1", endpoint="razorpay-test", provider="razorpay", event_id=event_id,
        event_type=kind or "payment.captured", payment_ref=ref, received_at=RECEIVED,
        key_index=0, payload=raw if raw is not None else orjson.dumps(event))


# --- the mapping table ----------------------------------------------------------------------

#: (Razorpay event, canonical type, amount, currency, scope, operation id)
TABLE = [
    pytest.param(body("payment.authorized", payment=payment("authorized", captured=False)),
                 "payment.authorized", 500000, "INR", "total", None, id="authorized"),
    pytest.param(body("payment.captured", payment=payment("captured", captured=True)),
                 "payment.captured", 500000, "INR", "total", None, id="captured"),
    pytest.param(body("payment.captured", payment=payment("captured", captured=True,
                                                           amount=2500, currency="sgd")),
                 "payment.captured", 2500, "SGD", "total", None, id="other-currency"),
    pytest.param(body("payment.failed", payment=payment(
        "failed", captured=False, error_code="BAD_REQUEST_ERROR",
        error_reason="payment_failed")),
                 "payment.authorization_failed", None, None, None, None, id="failed"),
    pytest.param(body("refund.processed", refund=refund(),
                      payment=payment("captured", captured=True, refunded=190000)),
                 "payment.refunded", 190000, "INR", "total", None,
                 id="refund-is-the-payments-running-amount-refunded"),
    pytest.param(body("refund.processed", refund=refund(500000),
                      payment=payment("refunded", captured=True, refunded=500000)),
                 "payment.refunded", 500000, "INR", "total", None, id="full-refund"),
    pytest.param(body("refund.processed", refund=refund()),
                 "payment.refunded", 50000, "INR", "operation", REFUND,
                 id="refund-without-payment-entity-counts-itself"),
    pytest.param(body("refund.processed", refund=refund(500000),
                      payment=payment("refunded", captured=False, refunded=500000)),
                 "payment.canceled", None, None, None, None,
                 id="auto-refund-of-uncaptured-payment-is-a-cancel"),
    pytest.param(body("refund.failed", refund=refund(status="failed"),
                      payment=payment("captured", captured=True)),
                 "payment.refund_failed", None, None, None, REFUND, id="refund-failed"),
    pytest.param(body("payment.dispute.created", payment=payment("captured", captured=True),
                      dispute=dispute("open")),
                 "dispute.opened", 10000, "INR", "operation", DISPUTE, id="dispute-created"),
    pytest.param(body("payment.dispute.won", payment=payment("captured", captured=True),
                      dispute=dispute("won")),
                 "dispute.won", 10000, "INR", "operation", DISPUTE, id="dispute-won"),
    pytest.param(body("payment.dispute.lost", payment=payment("captured", captured=True),
                      dispute=dispute("lost", deducted=10000)),
                 "dispute.lost", 10000, "INR", "operation", DISPUTE, id="dispute-lost"),
    pytest.param(body("payment.dispute.closed", payment=payment("captured", captured=True),
                      dispute=dispute("closed", phase="fraud")),
                 "dispute.won", 10000, "INR", "operation", DISPUTE,
                 id="closed-with-nothing-deducted-is-won"),
    pytest.param(body("payment.dispute.closed", payment=payment("captured", captured=True),
                      dispute=dispute("closed", deducted=10000)),
                 "dispute.lost", 10000, "INR", "operation", DISPUTE,
                 id="closed-with-money-deducted-is-lost"),
]


@pytest.mark.parametrize(("event", "kind", "amount", "currency", "scope", "operation"), TABLE)
def test_razorpay_events_map_to_their_canonical_type_amount_and_scope(
        event: dict[str, Any], kind: str, amount: int | None, currency: str | None,
        scope: str | None, operation: str | None) -> None:
    canonical = normalize(envelope(event))
    assert canonical is not None
    assert (canonical.type, canonical.amount, canonical.currency, canonical.amount_scope,
            canonical.operation_id) == (kind, amount, currency, scope, operation)
    assert canonical.payment_id == f"razorpay:{PAYMENT}"
    assert (canonical.event_id, canonical.provider_event_id) == (f"razorpay:{EVENT_ID}", EVENT_ID)
    assert canonical.provider_event_type == event["event"]
    assert canonical.occurred_at == "2020-08-18T07:01:11.000Z"
    assert (canonical.received_at, canonical.delivery_id, canonical.endpoint) == (
        RECEIVED, "dlv-1", "razorpay-test")
    assert_valid(canonical)


def test_the_dispatcher_picks_the_razorpay_normaliser() -> None:
    env = envelope(body("payment.captured", payment=payment("captured", captured=True)))
    assert dispatch(env) == normalize(env)


def test_normalising_is_pure_the_same_envelope_gives_the_same_event() -> None:
    env = envelope(body("refund.processed", refund=refund(),
                        payment=payment("captured", captured=True, refunded=50000)))
    assert normalize(env) == normalize(env)


def test_a_body_replayed_under_a_new_event_id_repeats_the_same_running_total() -> None:
    """The event id header is unsigned: a re-sent body is a new event with the same total."""
    event = body("refund.processed", refund=refund(),
                 payment=payment("captured", captured=True, refunded=50000))
    first = normalize(envelope(event))
    second = normalize(Envelope(**{**_fields(envelope(event)), "event_id": "Xyz1234567890A"}))
    assert first is not None
    assert second is not None
    assert (first.amount, first.amount_scope) == (second.amount, second.amount_scope)
    assert first.event_id != second.event_id


def _fields(env: Envelope) -> dict[str, Any]:
    return {name: getattr(env, name) for name in Envelope.__slots__}


@pytest.mark.parametrize("event", [
    pytest.param(body("refund.created", refund=refund(),
                      payment=payment("captured", captured=True, refunded=50000)),
                 id="refund-created-its-processed-follows"),
    pytest.param(body("refund.speed_changed", refund=refund(),
                      payment=payment("captured", captured=True)), id="refund-speed-changed"),
    pytest.param(body("payment.dispute.under_review",
                      payment=payment("captured", captured=True),
                      dispute=dispute("under_review")), id="dispute-under-review"),
    pytest.param(body("payment.dispute.action_required",
                      payment=payment("captured", captured=True),
                      dispute=dispute("open")), id="dispute-action-required"),
    pytest.param(body("order.paid", payment=payment("captured", captured=True),
                      order={"id": "order_FPoIeimWki9j8A", "entity": "order"}), id="order-paid"),
    pytest.param(body("payment.pending", payment=payment("pending", captured=False)),
                 id="payment-pending"),
])
def test_razorpay_events_without_a_canonical_type_map_to_nothing(event: dict[str, Any]) -> None:
    assert normalize(envelope(event)) is None


def test_an_unmapped_type_is_not_even_read() -> None:
    assert normalize(envelope(None, kind="settlement.processed", raw=b"\xff not json")) is None


# --- malformed payloads ---------------------------------------------------------------------


def _without(obj: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in names}


CAPTURED = payment("captured", captured=True)
MALFORMED = [
    pytest.param(envelope(None, kind="payment.captured", raw=b"not json"), id="not-json"),
    pytest.param(envelope(None, kind="payment.captured", raw=b'"a string"'), id="not-an-object"),
    pytest.param(envelope({"event": "payment.captured", "created_at": CREATED}),
                 id="no-payload"),
    pytest.param(envelope(body("payment.captured")), id="no-payment-entity"),
    pytest.param(envelope({**body("payment.captured"), "payload": {"payment": {"entity": 3}}},
                          ref=PAYMENT), id="payment-entity-not-an-object"),
    pytest.param(envelope(body("payment.captured", payment=_without(CAPTURED, "amount"))),
                 id="no-amount"),
    pytest.param(envelope(body("payment.captured", payment=payment(
        "captured", captured=True, amount=5000.0))), id="float-amount"),
    pytest.param(envelope(body("payment.captured", payment=payment(
        "captured", captured=True, amount="5000"))), id="string-amount"),
    pytest.param(envelope(body("payment.captured", payment=payment(
        "captured", captured=True, amount=-1))), id="negative-amount"),
    pytest.param(envelope(body("payment.authorized", payment=payment(
        "authorized", captured=False, currency="RUPEES"))), id="bad-currency"),
    pytest.param(envelope(body("payment.authorized", payment=payment(
        "authorized", captured=False, currency=None))), id="no-currency"),
    pytest.param(envelope(body("refund.processed", refund=refund(), payment=payment(
        "captured", captured=True, refunded=None))), id="no-amount-refunded"),
    pytest.param(envelope(body("refund.processed", refund=refund(), payment=payment(
        "captured", captured="yes", refunded=50000))), id="captured-not-a-boolean"),
    pytest.param(envelope(body("refund.processed", refund=refund(12.5))),
                 id="float-refund-amount"),
    pytest.param(envelope(body("refund.failed", refund=_without(refund(), "id"))),
                 id="refund-without-id"),
    pytest.param(envelope(body("refund.processed", payment=CAPTURED)), id="no-refund-entity"),
    pytest.param(envelope(body("payment.dispute.created", payment=CAPTURED,
                               dispute=_without(dispute("open"), "id"))),
                 id="dispute-without-id"),
    pytest.param(envelope(body("payment.dispute.created", payment=CAPTURED,
                               dispute=dispute("open", amount=None))),
                 id="dispute-without-amount"),
    pytest.param(envelope(body("payment.dispute.closed", payment=CAPTURED,
                               dispute=dispute("closed", deducted="0"))),
                 id="closed-dispute-without-integer-deduction"),
    pytest.param(envelope({**body("payment.captured", payment=CAPTURED), "created_at": None}),
                 id="no-event-time"),
    pytest.param(envelope({**body("payment.captured", payment=CAPTURED),
                           "created_at": "2020-08-18"}), id="time-not-unix-seconds"),
    pytest.param(envelope({**body("payment.captured", payment=CAPTURED),
                           "created_at": 10**15}), id="time-out-of-range"),
    pytest.param(envelope(None, kind="payment.captured", ref=None, raw=orjson.dumps(body(
        "payment.captured", payment=_without(CAPTURED, "id")))), id="no-payment-reference"),
    pytest.param(envelope(None, kind="payment.captured", ref="pay_\u2028x",
                          raw=orjson.dumps(body("payment.captured", payment=CAPTURED))),
                 id="payment-reference-with-a-line-separator"),
]


@pytest.mark.parametrize("env", MALFORMED)
def test_malformed_razorpay_payloads_are_poison(env: Envelope) -> None:
    with pytest.raises(NormalizeError):
        normalize(env)


# --- end to end over the simulator ----------------------------------------------------------


async def delivered(rng: random.Random) -> list[tuple[Record, Envelope]]:
    """One simulated payment, signed, verified by the receiver's scheme, made into records."""
    scheme = build_scheme(ENDPOINT)
    out = []
    for number, event in enumerate(sim.lifecycle(rng, NOW)):
        request = sim.sign([event], ENDPOINT, NOW)
        out += await support.delivered(
            ENDPOINT, RawRequest(request.body, request.headers), NOW, received_at=RECEIVED,
            delivery_id=f"dlv-{number}", traceparent=TRACEPARENT, scheme=scheme)
    return out


def money_invariants(events: list[PaymentEvent]) -> None:
    """Refunds <= captures <= authorised where known; running totals never go down; one
    currency per payment; an operation counts once."""
    totals: dict[str, int] = defaultdict(int)
    running: dict[str, int] = {}
    operations: set[tuple[str, str | None]] = set()
    currencies = {e.currency for e in events if e.currency is not None}
    assert len(currencies) <= 1
    for event in events:
        if event.amount is None or event.type.startswith("dispute."):
            continue
        kind = event.type.removeprefix("payment.")
        if event.amount_scope == "total":
            assert event.amount >= running.get(kind, 0), f"{kind} total went down"
            running[kind] = event.amount
            totals[kind] = max(totals[kind], event.amount)
        elif (kind, event.operation_id) not in operations:
            operations.add((kind, event.operation_id))
            totals[kind] += event.amount
        if totals["authorized"]:
            assert totals["captured"] <= totals["authorized"]
        if totals["captured"]:
            assert totals["refunded"] <= totals["captured"]
        else:
            assert totals["refunded"] == 0


async def test_simulated_lifecycles_normalise_with_money_invariants_and_partition_keys() -> None:
    seen: set[str] = set()
    for seed in range(150):
        events = []
        for record, env in await delivered(random.Random(seed)):
            canonical = normalize(env)
            assert canonical is not None, env.event_type  # the simulator sends mapped events only
            assert canonical.payment_id.encode() == record.key == env.partition_key.encode()
            assert canonical.provider_event_id == env.event_id  # the header's id
            assert_valid(canonical)
            events.append(canonical)
            seen.add(canonical.type)
        assert len({e.payment_id for e in events}) == 1
        money_invariants(events)
        if any(e.type == "payment.canceled" for e in events):  # an auto-refund
            assert not any(e.type in ("payment.captured", "payment.refunded") for e in events)
    assert seen == {"payment.authorized", "payment.captured", "payment.refunded",
                    "payment.canceled", "payment.authorization_failed", "dispute.opened",
                    "dispute.won", "dispute.lost"}


# --- arbitrary payloads ---------------------------------------------------------------------

JSON = support.SMALL_JSON
KINDS = st.sampled_from(["payment.authorized", "payment.captured", "payment.failed",
                         "refund.processed", "refund.failed", "payment.dispute.created",
                         "payment.dispute.won", "payment.dispute.lost",
                         "payment.dispute.closed"]) | st.text(max_size=20)
SAMPLES = [body("payment.captured", payment=CAPTURED),
           body("refund.processed", refund=refund(),
                payment=payment("captured", captured=True, refunded=50000)),
           body("refund.processed", refund=refund()),
           body("refund.failed", refund=refund(status="failed"), payment=CAPTURED),
           body("payment.dispute.closed", payment=CAPTURED, dispute=dispute("closed"))]


@settings(max_examples=300)
@given(doc=support.mutated(SAMPLES) | JSON, kind=st.none() | KINDS,
       ref=st.none() | st.text(min_size=1, max_size=30))
def test_arbitrary_razorpay_payloads_raise_nothing_but_normalize_error(
        doc: Any, kind: str | None, ref: str | None) -> None:
    if kind is None:  # the type the receiver would have read from the body
        kind = doc.get("event") if isinstance(doc, dict) and isinstance(doc.get("event"),
                                                                         str) else ""
    env = envelope(None, kind=kind, ref=ref, raw=json.dumps(doc).encode())
    try:
        canonical = normalize(env)
    except NormalizeError:
        return
    if canonical is not None:
        assert canonical.payment_id == f"razorpay:{ref}" == env.partition_key
        assert_valid(canonical)


@given(raw=st.binary(max_size=200), kind=KINDS)
def test_arbitrary_bytes_raise_nothing_but_normalize_error(raw: bytes, kind: str) -> None:
    with contextlib.suppress(NormalizeError):
        normalize(envelope(None, kind=kind, raw=raw))
