"""Square events to canonical payment events: the mapping table over payloads shaped like Square's
documented webhooks, unmapped events, malformed payloads (NormalizeError and nothing else), the
simulator's lifecycles end to end through the receiver's own scheme and envelopes, and arbitrary
payloads."""

from __future__ import annotations

import contextlib
import json
import random
import types
from collections import defaultdict
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.errors import NormalizeError
from consumers.normalize import normalize as dispatch
from consumers.normalize.square import normalize
from ingest.schemes import RawRequest, build_scheme
from ingest.schemes.square import payment_ref
from payhooks.config import EndpointSettings, Secret
from payhooks.kafka import Record
from payhooks.sim import square as sim
from schemas import registry
from schemas.envelope import Envelope
from schemas.event import PaymentEvent
from tests.unit import normalize_support as support

NOW = 1_790_000_000
RECEIVED = "2026-09-21T12:00:05.000Z"
CREATED = "2026-09-21T12:00:00.792Z"
PAYMENT = "KkAkhdMsgzn59SM8A89WgKwekxLZY"
REFUND = f"{PAYMENT}_Wx1EV4kfkxAqSgpTPnrmQF0SrPVZY"
DISPUTE = "XDgyFu7yo1E2S5lQGGpYn"
URL = "https://hooks.example.com/webhooks/square"
ENDPOINT = EndpointSettings(
    name="square-test", provider="square", secrets=(Secret("sq-signature-key-5f0c1d2e3a4b"),),
    options=types.MappingProxyType({"notification_url": URL}))
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
VALIDATOR = jsonschema.Draft202012Validator(registry.load("payhooks.event.v1"),
                                            format_checker=jsonschema.FormatChecker())


def assert_valid(event: PaymentEvent) -> None:
    VALIDATOR.validate(orjson.loads(event.to_json()))


def money(amount: Any, currency: Any = "USD") -> dict[str, Any]:
    return {"amount": amount, "currency": currency}


def payment(status: str, amount: int = 2500, **extra: Any) -> dict[str, Any]:
    """A Payment as in Square's ``payment.created`` / ``payment.updated`` examples."""
    return {
        "id": PAYMENT, "created_at": "2026-09-21T11:59:58.000Z",
        "updated_at": "2026-09-21T12:00:00.000Z", "amount_money": money(amount),
        "total_money": money(amount), "approved_money": money(amount), "status": status,
        "delay_duration": "PT168H", "source_type": "CARD",
        "card_details": {"status": "AUTHORIZED", "card": {
            "card_brand": "VISA", "last_4": "1111", "exp_month": 11, "exp_year": 2030,
            "fingerprint": "sq-1-abc", "card_type": "CREDIT"}, "entry_method": "KEYED",
            "cvv_status": "CVV_ACCEPTED", "avs_status": "AVS_ACCEPTED"},
        "location_id": "L88917AVBK2S5", "order_id": "03O3USaPaAaFnI6kkwB1JxGgBsUZY",
        "risk_evaluation": {"created_at": "2026-09-21T11:59:58.000Z", "risk_level": "NORMAL"},
        "receipt_number": "KkAk", "version": 1, **extra,
    }


def refund(status: str, amount: int = 1000) -> dict[str, Any]:
    """A PaymentRefund as in Square's ``refund.created`` / ``refund.updated`` examples."""
    return {"id": REFUND, "status": status, "amount_money": money(amount),
            "payment_id": PAYMENT, "order_id": "03O3USaPaAaFnI6kkwB1JxGgBsUZY",
            "location_id": "L88917AVBK2S5", "reason": "Customer request",
            "created_at": "2026-09-21T12:00:00.000Z", "updated_at": "2026-09-21T12:00:30.000Z"}


def dispute(state: str, amount: int = 2500, **extra: Any) -> dict[str, Any]:
    """A Dispute as in Square's ``dispute.created`` / ``dispute.state.updated`` examples."""
    return {"id": DISPUTE, "dispute_id": DISPUTE, "amount_money": money(amount),
            "reason": "NO_KNOWLEDGE", "state": state, "due_at": "2026-10-05T00:00:00.000Z",
            "disputed_payment": {"payment_id": PAYMENT}, "card_brand": "VISA",
            "created_at": "2026-09-21T12:00:00.000Z", "updated_at": "2026-09-21T12:00:00.000Z",
            "brand_dispute_id": "100000809947", "version": 1, "location_id": "L88917AVBK2S5",
            **extra}


def body(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    family = kind.partition(".")[0]
    return {"merchant_id": "6SSW7HV8K2ST5", "type": kind,
            "event_id": "13b867cf-db3d-4b1c-90b6-2f32a9d78124", "created_at": CREATED,
            "data": {"type": family, "id": obj.get("id"), "object": {family: obj}}}


def envelope(event: Any, *, kind: str | None = None, raw: bytes | None = None,
             ref: str | None = PAYMENT, event_id: str = "13b867cf-db3d-4b1c-90b6-2f32a9d78124"
             ) -> Envelope:
    """The envelope the receiver publishes; the payment reference is the scheme's own reading."""
    if isinstance(event, dict):
        kind = kind or event.get("type")
        ref = payment_ref(event)
    return Envelope(
        delivery_id="dlv-1", endpoint="square-test", provider="square",
        event_id=event_id, event_type=kind or "payment.updated",
        payment_ref=ref, received_at=RECEIVED, key_index=0,
        payload=raw if raw is not None else orjson.dumps(event))


# --- the mapping table ----------------------------------------------------------------------

#: (Square event, canonical type, amount, currency, scope, operation id)
TABLE = [
    pytest.param(body("payment.created", payment("APPROVED")),
                 "payment.authorized", 2500, "USD", "total", None, id="approved-authorized"),
    pytest.param(body("payment.updated", payment("APPROVED", tip_money=money(300),
                                                 total_money=money(2800))),
                 "payment.authorized", 2800, "USD", "total", None,
                 id="approved-with-tip-authorizes-the-total"),
    pytest.param(body("payment.updated", payment("COMPLETED")),
                 "payment.captured", 2500, "USD", "total", None, id="completed-captured"),
    pytest.param(body("payment.created", payment("COMPLETED", amount=100)),
                 "payment.captured", 100, "USD", "total", None, id="autocomplete-captured"),
    pytest.param(body("payment.updated", {k: v for k, v in payment("COMPLETED").items()
                                          if k != "total_money"}),
                 "payment.captured", 2500, "USD", "total", None,
                 id="amount-money-when-no-total-money"),
    pytest.param(body("payment.updated", payment("COMPLETED", refunded_money=money(0))),
                 "payment.captured", 2500, "USD", "total", None,
                 id="zero-refunded-money-is-still-the-capture"),
    pytest.param(body("payment.updated", payment("COMPLETED", refunded_money=money(1000),
                                                 refund_ids=[REFUND])),
                 "payment.refunded", 1000, "USD", "total", None,
                 id="refunded-money-is-the-running-refund-total"),
    pytest.param(body("payment.updated", payment("CANCELED")),
                 "payment.canceled", None, None, None, None, id="canceled"),
    pytest.param(body("payment.created", payment("FAILED", approved_money=money(0))),
                 "payment.authorization_failed", None, None, None, None, id="failed"),
    pytest.param(body("refund.updated", refund("FAILED")),
                 "payment.refund_failed", None, None, None, REFUND, id="refund-failed"),
    pytest.param(body("refund.updated", refund("REJECTED")),
                 "payment.refund_failed", None, None, None, REFUND, id="refund-rejected"),
    pytest.param(body("dispute.created", dispute("EVIDENCE_REQUIRED")),
                 "dispute.opened", 2500, "USD", "operation", DISPUTE, id="dispute-created"),
    pytest.param(body("dispute.state.updated", dispute("EVIDENCE_REQUIRED")),
                 "dispute.opened", 2500, "USD", "operation", DISPUTE,
                 id="inquiry-escalated-to-a-chargeback"),
    pytest.param(body("dispute.state.updated", dispute("WON")),
                 "dispute.won", 2500, "USD", "operation", DISPUTE, id="dispute-won"),
    pytest.param(body("dispute.state.updated", dispute("LOST", amount=1200)),
                 "dispute.lost", 1200, "USD", "operation", DISPUTE, id="dispute-lost"),
    pytest.param(body("dispute.state.changed", dispute("ACCEPTED")),
                 "dispute.lost", 2500, "USD", "operation", DISPUTE,
                 id="accepted-dispute-is-lost-older-event-name"),
    pytest.param(body("dispute.state.updated", {k: v for k, v in dispute("WON").items()
                                                if k != "amount_money"}),
                 "dispute.won", None, None, None, DISPUTE, id="dispute-outcome-without-amount"),
    pytest.param(body("payment.created", payment("APPROVED", amount=1500, total_money=money(
        1500, "jpy"), amount_money=money(1500, "jpy"))),
                 "payment.authorized", 1500, "JPY", "total", None,
                 id="currency-upper-cased"),
]


@pytest.mark.parametrize(("event", "kind", "amount", "currency", "scope", "operation"), TABLE)
def test_square_events_map_to_their_canonical_type_amount_and_scope(
        event: dict[str, Any], kind: str, amount: int | None, currency: str | None,
        scope: str | None, operation: str | None) -> None:
    canonical = normalize(envelope(event))
    assert canonical is not None
    assert (canonical.type, canonical.amount, canonical.currency, canonical.amount_scope,
            canonical.operation_id) == (kind, amount, currency, scope, operation)
    assert canonical.payment_id == f"square:{PAYMENT}"
    assert canonical.event_id == "square:13b867cf-db3d-4b1c-90b6-2f32a9d78124"
    assert canonical.provider_event_type == event["type"]
    assert canonical.occurred_at == CREATED
    assert (canonical.received_at, canonical.delivery_id, canonical.endpoint) == (
        RECEIVED, "dlv-1", "square-test")
    assert_valid(canonical)


def test_the_dispatcher_picks_the_square_normaliser() -> None:
    env = envelope(body("payment.updated", payment("COMPLETED")))
    assert dispatch(env) == normalize(env)


def test_normalising_is_pure_the_same_envelope_gives_the_same_event() -> None:
    env = envelope(body("payment.updated", payment("COMPLETED", refunded_money=money(700))))
    assert normalize(env) == normalize(env)


def test_event_time_with_an_offset_is_written_in_utc() -> None:
    event = body("payment.updated", payment("COMPLETED"))
    event["created_at"] = "2026-09-21T05:00:00-07:00"
    canonical = normalize(envelope(event))
    assert canonical is not None
    assert canonical.occurred_at == "2026-09-21T12:00:00.000Z"


@pytest.mark.parametrize("event", [
    pytest.param(body("payment.created", payment("PENDING")), id="pending-payment"),
    pytest.param(body("refund.created", refund("PENDING")), id="refund-created-pending"),
    pytest.param(body("refund.updated", refund("COMPLETED")),
                 id="refund-completed-counted-from-refunded-money"),
    pytest.param(body("dispute.created", dispute("INQUIRY_EVIDENCE_REQUIRED")), id="inquiry"),
    pytest.param(body("dispute.state.updated", dispute("INQUIRY_CLOSED")),
                 id="inquiry-closed"),
    pytest.param(body("dispute.state.updated", dispute("PROCESSING")), id="evidence-submitted"),
    pytest.param(body("dispute.evidence.created", dispute("EVIDENCE_REQUIRED")),
                 id="dispute-evidence"),
    pytest.param({"merchant_id": "6SSW7HV8K2ST5", "type": "order.updated",
                  "event_id": "e", "created_at": CREATED,
                  "data": {"type": "order_updated", "id": "o", "object": {}}}, id="order"),
])
def test_square_events_without_a_canonical_type_map_to_nothing(event: dict[str, Any]) -> None:
    assert normalize(envelope(event)) is None


def test_a_refund_is_counted_once_from_the_payment_not_from_its_refund_events() -> None:
    """refund.created, payment.updated (refunded_money) and refund.updated of one refund."""
    events = [body("refund.created", refund("PENDING", 1000)),
              body("payment.updated", payment("COMPLETED", refunded_money=money(1000))),
              body("refund.updated", refund("COMPLETED", 1000))]
    canonical = [e for e in (normalize(envelope(x)) for x in events) if e is not None]
    assert [(e.type, e.amount, e.amount_scope) for e in canonical] == [
        ("payment.refunded", 1000, "total")]


def test_an_unmapped_type_is_not_even_read() -> None:
    assert normalize(envelope(None, kind="customer.created", raw=b"\xff not json")) is None


# --- malformed payloads ---------------------------------------------------------------------


def _without(obj: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in names}


MALFORMED = [
    pytest.param(envelope(None, kind="payment.updated", raw=b"not json"), id="not-json"),
    pytest.param(envelope(None, kind="payment.updated", raw=b"[1, 2]"), id="not-an-object"),
    pytest.param(envelope({"type": "payment.updated", "created_at": CREATED, "data": {}}),
                 id="no-data-object"),
    pytest.param(envelope(body("payment.updated", _without(payment("COMPLETED"), "status"))),
                 id="no-status"),
    pytest.param(envelope(body("payment.updated", _without(payment("COMPLETED"), "total_money",
                                                           "amount_money"))), id="no-amount"),
    pytest.param(envelope(body("payment.updated", payment("COMPLETED", total_money=money(25.0)))),
                 id="float-amount"),
    pytest.param(envelope(body("payment.updated", payment("COMPLETED", total_money=money("2500")))),
                 id="string-amount"),
    pytest.param(envelope(body("payment.updated", payment("COMPLETED", total_money=money(True)))),
                 id="boolean-amount"),
    pytest.param(envelope(body("payment.updated", payment("COMPLETED", total_money=money(-5)))),
                 id="negative-amount"),
    pytest.param(envelope(body("payment.updated", payment("COMPLETED", total_money=money(
        2500, "US DOLLARS")))), id="bad-currency"),
    pytest.param(envelope(body("payment.updated", payment("COMPLETED", total_money=money(
        2500, None)))), id="no-currency"),
    pytest.param(envelope(body("payment.updated", payment("COMPLETED", total_money=2500))),
                 id="money-not-an-object"),
    pytest.param(envelope(body("payment.updated", payment("COMPLETED", refunded_money=money(
        1.5)))), id="float-refunded-money"),
    pytest.param(envelope(body("refund.updated", _without(refund("FAILED"), "id"))),
                 id="failed-refund-without-id"),
    pytest.param(envelope(body("dispute.created", _without(dispute("EVIDENCE_REQUIRED"),
                                                           "amount_money"))),
                 id="opened-dispute-without-amount"),
    pytest.param(envelope(body("dispute.created", _without(dispute("EVIDENCE_REQUIRED"), "id",
                                                           "dispute_id"))),
                 id="dispute-without-id"),
    pytest.param(envelope(body("dispute.state.updated", _without(dispute("WON"), "state"))),
                 id="dispute-without-state"),
    pytest.param(envelope({**body("payment.updated", payment("COMPLETED")), "created_at": None}),
                 id="no-event-time"),
    pytest.param(envelope({**body("payment.updated", payment("COMPLETED")),
                           "created_at": "2026-09-21T12:00:00"}), id="time-without-zone"),
    pytest.param(envelope({**body("payment.updated", payment("COMPLETED")),
                           "created_at": "yesterday"}), id="not-a-time"),
    pytest.param(envelope(None, kind="payment.updated", ref=None,
                          raw=orjson.dumps(body("payment.updated", {**payment("COMPLETED"),
                                                                    "id": None}))),
                 id="no-payment-reference"),
    pytest.param(envelope(None, kind="payment.updated", ref="KkAk\nhdMsg",
                          raw=orjson.dumps(body("payment.updated", payment("COMPLETED")))),
                 id="payment-reference-with-a-line-break"),
    pytest.param(envelope(body("payment.updated", payment("COMPLETED")), event_id="13b8\r\n"),
                 id="event-id-with-a-line-break"),
]


@pytest.mark.parametrize("env", MALFORMED)
def test_malformed_square_payloads_are_poison(env: Envelope) -> None:
    with pytest.raises(NormalizeError):
        normalize(env)


def test_poison_messages_never_echo_the_payload() -> None:
    secretish = "4111111111111111"
    event = body("payment.updated", payment("COMPLETED", total_money=money(2500, secretish)))
    with pytest.raises(NormalizeError) as err:
        normalize(envelope(event))
    assert secretish not in str(err.value)


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
        if event.amount is None or event.type in ("dispute.opened", "dispute.won",
                                                   "dispute.lost"):
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
    seen: set[tuple[str, str | None]] = set()
    for seed in range(150):
        events = []
        for record, env in await delivered(random.Random(seed)):
            canonical = normalize(env)
            if canonical is None:
                continue
            assert canonical.payment_id.encode() == record.key == env.partition_key.encode()
            assert_valid(canonical)
            events.append(canonical)
            seen.add((canonical.type, canonical.amount_scope))
        assert len({e.payment_id for e in events}) == 1
        money_invariants(events)
    assert seen == {("payment.authorized", "total"), ("payment.captured", "total"),
                    ("payment.refunded", "total"), ("payment.canceled", None),
                    ("payment.authorization_failed", None)}


async def test_simulated_refunds_add_up_to_the_refunded_money_of_the_last_update() -> None:
    for seed in range(60):
        pairs = await delivered(random.Random(seed))
        refunds = [e for e in (normalize(env) for _, env in pairs)
                   if e is not None and e.type == "payment.refunded"]
        if refunds:
            last = orjson.loads(pairs[-2][1].payload)["data"]["object"]["payment"]
            assert refunds[-1].amount == last["refunded_money"]["amount"]


# --- arbitrary payloads ---------------------------------------------------------------------

JSON = support.SMALL_JSON
KINDS = st.sampled_from(["payment.created", "payment.updated", "refund.created",
                         "refund.updated", "dispute.created", "dispute.state.updated",
                         "dispute.state.changed"]) | st.text(max_size=20)
SAMPLES = [body("payment.updated", payment("COMPLETED", refunded_money=money(10))),
           body("payment.created", payment("APPROVED")), body("refund.updated", refund("FAILED")),
           body("dispute.created", dispute("EVIDENCE_REQUIRED")),
           body("dispute.state.updated", dispute("LOST"))]


@settings(max_examples=300)
@given(doc=support.mutated(SAMPLES) | JSON, kind=st.none() | KINDS,
       ref=st.none() | st.text(min_size=1, max_size=30), event_id=st.text(min_size=1, max_size=40))
def test_arbitrary_square_payloads_raise_nothing_but_normalize_error(
        doc: Any, kind: str | None, ref: str | None, event_id: str) -> None:
    if kind is None:  # the type the receiver would have read from the body
        kind = doc.get("type") if isinstance(doc, dict) and isinstance(doc.get("type"), str) else ""
    env = envelope(None, kind=kind, ref=ref, raw=json.dumps(doc).encode(), event_id=event_id)
    try:
        canonical = normalize(env)
    except NormalizeError:
        return
    if canonical is not None:
        assert canonical.payment_id == f"square:{ref}" == env.partition_key
        assert_valid(canonical)


@given(raw=st.binary(max_size=200), kind=KINDS)
def test_arbitrary_bytes_raise_nothing_but_normalize_error(raw: bytes, kind: str) -> None:
    with contextlib.suppress(NormalizeError):
        normalize(envelope(None, kind=kind, raw=raw))


def test_a_payment_created_completed_expects_no_authorization_an_updated_one_does() -> None:
    created = normalize(envelope(body("payment.created", payment("COMPLETED"))))
    updated = normalize(envelope(body("payment.updated", payment("COMPLETED"))))
    assert created is not None
    assert updated is not None
    assert (created.type, created.authorization_expected) == ("payment.captured", False)
    assert (updated.type, updated.authorization_expected) == ("payment.captured", True)
