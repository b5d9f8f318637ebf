"""Checkout.com events become canonical events: per-action amounts keyed by ``action_id``,
disputes by their ``dsp_`` id, the payment by ``data.payment_id`` or ``data.id``.

Payloads follow the examples of Checkout.com's webhook documentation (both the ``created_on`` and
the current ``timestamp`` form) and our simulator; the realistic ones travel the receiver's whole
pure path (signed, verified by the scheme, enveloped) before they are normalised.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.errors import NormalizeError
from consumers.normalize import checkout, normalizer
from ingest.schemes import RawRequest, build_scheme
from ingest.schemes import checkout as scheme
from payhooks.config import EndpointSettings, Secret
from payhooks.sim import checkout as sim
from schemas.envelope import Envelope
from tests.unit import normalize_support as support

SECRET = "sk_sbox_wh_5f0c1d2e3a4b"
ENDPOINT = EndpointSettings(name="cko", provider="checkout", secrets=(Secret(SECRET),))
NOW = 1_790_000_000
RECEIVED_AT = "2026-09-21T12:13:20.000Z"
PAY, DSP = "pay_griq7wyqkggu7mnk7ecm6ysrl4", "dsp_9rjdlsd4epepfjyyf9vl"
ACT_CAPTURE, ACT_REFUND = "act_uqlj3642dyyuroivzdwfg2fysq", "act_fd3h6evhpn3uxdoqbuu3lqnqbm"


def event(kind: str, data: dict[str, Any], *, at: dict[str, str] | None = None
          ) -> dict[str, Any]:
    return {"id": "evt_caxmnvuvbe4elkbdx2imwbnjxu", "type": kind, "version": "1.0.29",
            **(at if at is not None else {"created_on": "2023-05-22T11:56:04.8821546Z"}),
            "data": data,
            "_links": {"self": {"href": "https://api.checkout.com/workflows/events/evt_x"}}}


def payment(kind: str, amount: int | None = 2000, currency: str = "USD", **extra: Any
            ) -> dict[str, Any]:
    data: dict[str, Any] = {"id": PAY, "action_id": "act_gl5cpqgccxeulozrvaassd4lta",
                            "reference": "ORD-5023-4E89", "currency": currency,
                            "processed_on": "2023-05-22T11:56:01.1299682Z",
                            "response_code": "10000", "response_summary": "Approved", **extra}
    if amount is not None:
        data["amount"] = amount
    return event(kind, data)


def dispute(kind: str, **extra: Any) -> dict[str, Any]:
    return event(kind, {"id": DSP, "date": "2018-07-06T11:19:20Z",
                        "category": "canceled_recurring", "amount": 20020, "currency": "USD",
                        "reason_code": "10.4", "payment_id": PAY,
                        "payment_action_id": "act_7B15779D173D0W45700D",
                        "payment_reference": "some-company-ref", "payment_method": "Visa",
                        **extra})


def envelope_of(raw: dict[str, Any] | bytes, *, event_type: str | None = None,
                payment_ref: str | None = PAY) -> Envelope:
    """An envelope built by hand, for payloads the scheme itself would refuse."""
    payload = raw if isinstance(raw, bytes) else orjson.dumps(raw)
    kind = event_type or (raw.get("type") if isinstance(raw, dict) else None) or "payment_captured"
    return Envelope(delivery_id="dlv-1", endpoint="cko", provider="checkout",
                    event_id="evt_caxmnvuvbe4elkbdx2imwbnjxu", event_type=str(kind),
                    payment_ref=payment_ref, received_at=RECEIVED_AT, key_index=0,
                    payload=payload)


async def received(raw: dict[str, Any]) -> Envelope:
    """``raw`` signed as Checkout.com signs, verified by the receiver's scheme, enveloped."""
    body = orjson.dumps(raw)
    [(record, envelope)] = await support.delivered(ENDPOINT, RawRequest(body, {
        "content-type": "application/json", "cko-signature": scheme.signature(body, SECRET)}),
        NOW, received_at=RECEIVED_AT)
    assert record.key.decode() == envelope.partition_key
    assert envelope.payload == body  # single-event deliveries keep the signed bytes
    return envelope


conforms = support.conforms


# -- realistic events --------------------------------------------------------------------------

Expected = tuple[str, int | None, str | None, str | None, str | None]  # type amount scope op cur
BALANCES = {"total_authorized": 40, "total_voided": 0, "available_to_void": 40,
            "total_captured": 0, "available_to_capture": 40, "total_refunded": 0,
            "available_to_refund": 0}

TABLE: list[tuple[str, dict[str, Any], Expected]] = [
    ("approved", payment("payment_approved", auth_code="528709", approved=True,
                         balances={**BALANCES, "total_authorized": 2000}),
     ("payment.authorized", 2000, "total", None, "USD")),
    ("authorization incremented to a new total",
     payment("payment_authorization_incremented", 20, "EUR", approved=True, balances=BALANCES),
     ("payment.authorized", 40, "total", None, "EUR")),
    ("declined", payment("payment_declined", approved=False, response_code="20051",
                         response_summary="Insufficient Funds"),
     ("payment.authorization_failed", None, None, None, "USD")),
    ("captured (current timestamp form)",
     event("payment_captured", {**payment("payment_captured", 20, "EUR",
                                           action_id=ACT_CAPTURE)["data"]},
           at={"timestamp": "2023-05-22T11:56:04.882+00:00"}),
     ("payment.captured", 20, "operation", ACT_CAPTURE, "EUR")),
    ("partial capture", payment("payment_captured", 1000, action_id=ACT_CAPTURE),
     ("payment.captured", 1000, "operation", ACT_CAPTURE, "USD")),
    ("capture declined", payment("payment_capture_declined", action_id=ACT_CAPTURE),
     ("payment.capture_failed", None, None, ACT_CAPTURE, "USD")),
    ("voided", payment("payment_voided"), ("payment.canceled", None, None, None, "USD")),
    ("canceled", payment("payment_canceled"), ("payment.canceled", None, None, None, "USD")),
    ("expired", payment("payment_expired", None), ("payment.canceled", None, None, None, "USD")),
    ("refunded", payment("payment_refunded", 666, action_id=ACT_REFUND),
     ("payment.refunded", 666, "operation", ACT_REFUND, "USD")),
    ("refund in JPY", payment("payment_refunded", 500, "JPY", action_id=ACT_REFUND),
     ("payment.refunded", 500, "operation", ACT_REFUND, "JPY")),
    ("refund declined", payment("payment_refund_declined", action_id=ACT_REFUND),
     ("payment.refund_failed", None, None, ACT_REFUND, "USD")),
    ("dispute received", dispute("dispute_received"),
     ("dispute.opened", 20020, "operation", DSP, "USD")),
    ("dispute evidence required", dispute("dispute_evidence_required", status="evidence_required"),
     ("dispute.opened", 20020, "operation", DSP, "USD")),
    ("dispute won", dispute("dispute_won"), ("dispute.won", 20020, "operation", DSP, "USD")),
    ("dispute won, old form without amount",
     event("dispute_won", {"id": DSP, "date": "2018-07-06T11:19:20Z",
                           "category": "canceled_recurring", "payment_id": PAY,
                           "reference": "some-company-ref"}),
     ("dispute.won", None, None, DSP, None)),
    ("dispute canceled by the issuer", dispute("dispute_canceled"),
     ("dispute.won", 20020, "operation", DSP, "USD")),
    ("dispute resolved as already refunded", dispute("dispute_resolved",
                                                     resolved_reason="already_refunded"),
     ("dispute.won", 20020, "operation", DSP, "USD")),
    ("dispute arbitration won", dispute("dispute_arbitration_won"),
     ("dispute.won", 20020, "operation", DSP, "USD")),
    ("dispute lost", dispute("dispute_lost"), ("dispute.lost", 20020, "operation", DSP, "USD")),
    ("dispute expired", dispute("dispute_expired"),
     ("dispute.lost", 20020, "operation", DSP, "USD")),
    ("dispute accepted", dispute("dispute_accepted"),
     ("dispute.lost", 20020, "operation", DSP, "USD")),
    ("dispute arbitration lost", dispute("dispute_arbitration_lost"),
     ("dispute.lost", 20020, "operation", DSP, "USD")),
]


@pytest.mark.parametrize(("raw", "expected"), [(raw, exp) for _, raw, exp in TABLE],
                         ids=[name for name, _, _ in TABLE])
async def test_realistic_events_map_to_canonical_events(raw: dict[str, Any], expected: Expected
                                                        ) -> None:
    envelope = await received(raw)
    event_ = normalizer("checkout")(envelope)
    assert event_ is not None
    conforms(event_)
    assert (event_.type, event_.amount, event_.amount_scope, event_.operation_id, event_.currency
            ) == expected
    assert event_.payment_id == f"checkout:{PAY}" == envelope.partition_key
    assert event_.event_id == "checkout:evt_caxmnvuvbe4elkbdx2imwbnjxu"
    assert event_.provider_event_type == raw["type"]
    assert event_.occurred_at == "2023-05-22T11:56:04.882Z"
    assert (event_.received_at, event_.delivery_id, event_.endpoint) == (
        RECEIVED_AT, "dlv-1", "cko")


def test_a_declined_authorization_increment_changes_nothing() -> None:
    raw = payment("payment_authorization_incremented", 1000, "EUR", approved=False,
                  response_code="20005", response_summary="Declined")
    assert checkout.normalize(envelope_of(raw)) is None


@pytest.mark.parametrize("kind", [
    "payment_pending", "payment_capture_pending", "payment_refund_pending", "payment_void_declined",
    "payment_authorization_increment_declined", "card_verified", "card_verification_declined",
    "dispute_evidence_submitted", "dispute_evidence_acknowledged_by_scheme", "payment_paid",
    "source_updated",
])
def test_types_without_a_canonical_type_map_to_none(kind: str) -> None:
    assert checkout.normalize(envelope_of(payment(kind))) is None


def test_unmapped_types_are_not_even_read() -> None:
    assert checkout.normalize(envelope_of(b"not json", event_type="card_verified")) is None

_with = support.with_value


def _without(raw: dict[str, Any], *path: str) -> dict[str, Any]:
    copy = orjson.loads(orjson.dumps(raw))
    node = copy
    for name in path[:-1]:
        node = node[name]
    del node[path[-1]]
    return dict(copy)


CAPTURED = payment("payment_captured", 1000, action_id=ACT_CAPTURE)
MALFORMED: list[tuple[str, Envelope]] = [
    ("missing amount", envelope_of(_without(CAPTURED, "data", "amount"))),
    ("fractional amount", envelope_of(_with(CAPTURED, 10.5, "data", "amount"))),
    ("amount as text", envelope_of(_with(CAPTURED, "1000", "data", "amount"))),
    ("amount as boolean", envelope_of(_with(CAPTURED, False, "data", "amount"))),
    ("negative amount", envelope_of(_with(CAPTURED, -1, "data", "amount"))),
    ("amount beyond a signed 64-bit integer", envelope_of(_with(CAPTURED, 2**63, "data",
                                                                "amount"))),
    ("bad currency", envelope_of(_with(CAPTURED, "US", "data", "currency"))),
    ("missing currency", envelope_of(_without(CAPTURED, "data", "currency"))),
    ("missing action_id", envelope_of(_without(CAPTURED, "data", "action_id"))),
    ("approval without amount", envelope_of(payment("payment_approved", None))),
    ("increment without balances", envelope_of(payment("payment_authorization_incremented", 20))),
    ("dispute without its id", envelope_of(_without(dispute("dispute_lost"), "data", "id"))),
    ("dispute amount as text", envelope_of(_with(dispute("dispute_lost"), "20020", "data",
                                                 "amount"))),
    ("no time", envelope_of(_without(CAPTURED, "created_on"))),
    ("time without offset", envelope_of(_with(CAPTURED, "2023-05-22T11:56:04", "created_on"))),
    ("time not a time", envelope_of(_with(CAPTURED, "last tuesday", "created_on"))),
    ("no data", envelope_of(_without(CAPTURED, "data"))),
    ("data is a list", envelope_of(_with(CAPTURED, [], "data"))),
    ("no payment reference", envelope_of(CAPTURED, payment_ref=None)),
    ("payload is not JSON", envelope_of(b"\xff\xfe", event_type="payment_captured")),
    ("payload is a number", envelope_of(b"42", event_type="payment_refunded")),
]


@pytest.mark.parametrize("envelope", [e for _, e in MALFORMED], ids=[n for n, _ in MALFORMED])
def test_malformed_events_raise_normalize_error(envelope: Envelope) -> None:
    with pytest.raises(NormalizeError):
        checkout.normalize(envelope)


# -- simulated lifecycles, end to end ----------------------------------------------------------


async def test_simulated_lifecycles_keep_money_invariants_and_partition_keys() -> None:
    rng = random.Random(20260921)
    scheme_ = build_scheme(ENDPOINT)
    seen: set[str] = set()
    for _ in range(250):
        lifecycle = sim.lifecycle(rng, NOW)
        events = []
        for sim_event in lifecycle:
            request = sim.sign([sim_event], ENDPOINT, NOW)
            [(record, envelope)] = await support.delivered(
                ENDPOINT, RawRequest(request.body, request.headers), NOW, received_at=RECEIVED_AT,
                delivery_id="dlv-2", traceparent="00-" + "3" * 32 + "-" + "4" * 16 + "-01",
                scheme=scheme_)
            event_ = checkout.normalize(envelope)
            assert event_ is not None, f"{envelope.event_type} is simulated but unmapped"
            conforms(event_)
            assert event_.payment_id == envelope.partition_key == record.key.decode()
            assert event_.payment_id == f"checkout:{sim_event.payment_ref}"
            events.append(event_)
            seen.add(event_.type)
        support.money_invariants_hold(events)
    assert seen == {"payment.authorized", "payment.authorization_failed", "payment.captured",
                    "payment.canceled", "payment.refunded", "dispute.opened", "dispute.won",
                    "dispute.lost"}


# -- anything at all ---------------------------------------------------------------------------

JSON = support.ANY_JSON
TYPES = st.sampled_from([*checkout._TYPES, "payment_pending"])
REALISTIC = [e.event for e in sim.lifecycle(random.Random(5), NOW)] + [
    raw for _, raw, _ in TABLE]


_paths = support.field_paths


def outcome_is_an_event_none_or_normalize_error(envelope: Envelope) -> None:
    support.outcome_is_an_event_none_or_normalize_error(checkout.normalize, envelope)


@settings(max_examples=300)
@given(payload=JSON, kind=TYPES, payment_ref=st.sampled_from([PAY, None]))
def test_arbitrary_json_raises_nothing_but_normalize_error(payload: Any, kind: str,
                                                          payment_ref: str | None) -> None:
    outcome_is_an_event_none_or_normalize_error(
        envelope_of(orjson.dumps(payload), event_type=kind, payment_ref=payment_ref))


@settings(max_examples=300)
@given(data=st.data(), replacement=JSON)
def test_realistic_events_with_any_field_replaced_raise_nothing_but_normalize_error(
        data: st.DataObject, replacement: Any) -> None:
    raw = data.draw(st.sampled_from(REALISTIC))
    path = data.draw(st.sampled_from(_paths(raw)))
    outcome_is_an_event_none_or_normalize_error(
        envelope_of(_with(raw, replacement, *path), event_type=raw["type"]))
