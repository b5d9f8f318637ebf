"""Stripe events become canonical events: a PaymentIntent's running totals (applied as maxima),
refund amounts from ``charge.refunded`` only, disputes per dispute id, currencies upper-cased.

Payloads follow the objects of Stripe's API reference (PaymentIntent, Charge, Refund, Dispute)
and our simulator; the realistic ones travel the receiver's whole pure path (signed, verified by
the scheme, enveloped) before they are normalised.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.errors import NormalizeError
from consumers.normalize import normalizer, stripe
from ingest.schemes import RawRequest, build_scheme
from ingest.schemes import stripe as scheme
from payhooks.config import EndpointSettings, Secret
from payhooks.sim import stripe as sim
from schemas.envelope import Envelope
from tests.unit import normalize_support as support

SECRET = "whsec_test_3f9a1c0e5b7d4e2a9c8b6f1d0e3a5c7b"
ENDPOINT = EndpointSettings(name="stripe-eu", provider="stripe", secrets=(Secret(SECRET),))
NOW = 1_790_000_000
RECEIVED_AT = "2026-09-21T12:13:20.000Z"
PI, CH, RE, DU = ("pi_3MtwBwLkdIwHu7ix28a3tqPa", "ch_3MtwBwLkdIwHu7ix2Jd7pj2l",
                  "re_3MtwBwLkdIwHu7ix0XqRgmbW", "du_1MtJUT2eZvKYlo2CNaw2HvEv")


def stripe_event(kind: str, obj: dict[str, Any], *, created: Any = 1680651737) -> dict[str, Any]:
    return {"id": "evt_1NG8Du2eZvKYlo2CUI79vXWy", "object": "event",
            "api_version": "2024-06-20", "created": created, "livemode": False,
            "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None},
            "type": kind, "data": {"object": obj}}


def intent(**changes: Any) -> dict[str, Any]:
    return {"id": PI, "object": "payment_intent", "amount": 2000, "amount_capturable": 0,
            "amount_received": 0, "capture_method": "manual", "currency": "eur",
            "latest_charge": CH, "status": "requires_capture", **changes}


def charge(**changes: Any) -> dict[str, Any]:
    return {"id": CH, "object": "charge", "amount": 2000, "amount_captured": 2000,
            "amount_refunded": 0, "captured": True, "currency": "eur", "paid": True,
            "payment_intent": PI, "refunded": False, "status": "succeeded", **changes}


def refund(**changes: Any) -> dict[str, Any]:
    return {"id": RE, "object": "refund", "amount": 500, "charge": CH, "currency": "eur",
            "payment_intent": PI, "reason": None, "status": "succeeded", **changes}


def dispute(**changes: Any) -> dict[str, Any]:
    return {"id": DU, "object": "dispute", "amount": 2000, "charge": CH, "currency": "eur",
            "payment_intent": PI, "reason": "fraudulent", "status": "needs_response",
            "is_charge_refundable": False, **changes}


def envelope_of(raw: dict[str, Any] | bytes, *, event_type: str | None = None,
                payment_ref: str | None = PI) -> Envelope:
    """An envelope built by hand, for payloads the scheme itself would refuse."""
    payload = raw if isinstance(raw, bytes) else orjson.dumps(raw)
    kind = event_type or (raw.get("type") if isinstance(raw, dict) else None) or "charge.refunded"
    return Envelope(delivery_id="dlv-1", endpoint="stripe-eu", provider="stripe",
                    event_id="evt_1NG8Du2eZvKYlo2CUI79vXWy", event_type=str(kind),
                    payment_ref=payment_ref, received_at=RECEIVED_AT, key_index=0,
                    payload=payload)


async def received(raw: dict[str, Any]) -> Envelope:
    """``raw`` signed as Stripe signs, verified by the receiver's scheme, enveloped."""
    body = orjson.dumps(raw)
    [(record, envelope)] = await support.delivered(ENDPOINT, RawRequest(body, {
        "content-type": "application/json",
        "stripe-signature": scheme.signature_header(body, [SECRET], NOW)}), NOW,
        received_at=RECEIVED_AT)
    assert record.key.decode() == envelope.partition_key
    return envelope


conforms = support.conforms


# -- realistic events --------------------------------------------------------------------------

Expected = tuple[str, int | None, str | None, str | None, str | None]  # type amount scope op cur
TABLE: list[tuple[str, dict[str, Any], Expected]] = [
    ("authorized for manual capture", stripe_event(
        "payment_intent.amount_capturable_updated", intent(amount_capturable=2000)),
     ("payment.authorized", 2000, "total", None, "EUR")),
    ("captured (manual capture)", stripe_event(
        "payment_intent.succeeded", intent(amount_received=2000, status="succeeded")),
     ("payment.captured", 2000, "total", None, "EUR")),
    ("captured and authorized at once (automatic capture)", stripe_event(
        "payment_intent.succeeded", intent(capture_method="automatic_async", amount_received=2000,
                                           status="succeeded")),
     ("payment.captured", 2000, "total", None, "EUR")),
    ("partial capture on the charge", stripe_event(
        "charge.captured", charge(amount_captured=1500)),
     ("payment.captured", 1500, "total", None, "EUR")),
    ("partial refund: the charge's running total", stripe_event(
        "charge.refunded", charge(amount_refunded=500)),
     ("payment.refunded", 500, "total", None, "EUR")),
    ("full refund", stripe_event("charge.refunded", charge(amount_refunded=2000, refunded=True)),
     ("payment.refunded", 2000, "total", None, "EUR")),
    ("refund failed", stripe_event("refund.failed", refund(status="failed",
                                                           failure_reason="expired_or_canceled_card")),
     ("payment.refund_failed", None, None, RE, "EUR")),
    ("refund updated to failed", stripe_event("refund.updated", refund(status="failed")),
     ("payment.refund_failed", None, None, RE, "EUR")),
    ("charge refund updated to failed", stripe_event("charge.refund.updated",
                                                     refund(status="failed")),
     ("payment.refund_failed", None, None, RE, "EUR")),
    ("canceled", stripe_event("payment_intent.canceled", intent(
        status="canceled", cancellation_reason="requested_by_customer")),
     ("payment.canceled", None, None, None, "EUR")),
    ("uncaptured charge expired", stripe_event("charge.expired", charge(captured=False)),
     ("payment.canceled", None, None, None, "EUR")),
    ("payment failed", stripe_event("payment_intent.payment_failed", intent(
        status="requires_payment_method",
        last_payment_error={"code": "card_declined", "decline_code": "generic_decline"})),
     ("payment.authorization_failed", None, None, None, "EUR")),
    ("charge failed", stripe_event("charge.failed", charge(status="failed", paid=False,
                                                           captured=False, amount_captured=0)),
     ("payment.authorization_failed", None, None, None, "EUR")),
    ("dispute created", stripe_event("charge.dispute.created", dispute()),
     ("dispute.opened", 2000, "operation", DU, "EUR")),
    ("inquiry created", stripe_event("charge.dispute.created",
                                     dispute(status="warning_needs_response")),
     ("dispute.opened", 2000, "operation", DU, "EUR")),
    ("dispute won", stripe_event("charge.dispute.closed", dispute(status="won")),
     ("dispute.won", 2000, "operation", DU, "EUR")),
    ("inquiry closed without a chargeback", stripe_event("charge.dispute.closed",
                                                         dispute(status="warning_closed")),
     ("dispute.won", 2000, "operation", DU, "EUR")),
    ("dispute lost", stripe_event("charge.dispute.closed", dispute(status="lost")),
     ("dispute.lost", 2000, "operation", DU, "EUR")),
    ("zero-decimal currency", stripe_event("charge.refunded", charge(
        currency="jpy", amount=1500, amount_captured=1500, amount_refunded=1500)),
     ("payment.refunded", 1500, "total", None, "JPY")),
]


@pytest.mark.parametrize(("raw", "expected"), [(raw, exp) for _, raw, exp in TABLE],
                         ids=[name for name, _, _ in TABLE])
async def test_realistic_events_map_to_canonical_events(raw: dict[str, Any], expected: Expected
                                                        ) -> None:
    envelope = await received(raw)
    event = normalizer("stripe")(envelope)
    assert event is not None
    conforms(event)
    assert (event.type, event.amount, event.amount_scope, event.operation_id, event.currency
            ) == expected
    assert event.payment_id == f"stripe:{PI}" == envelope.partition_key
    assert event.event_id == "stripe:evt_1NG8Du2eZvKYlo2CUI79vXWy"
    assert event.provider_event_type == raw["type"]
    assert event.occurred_at == "2023-04-04T23:42:17.000Z"  # created 1680651737
    assert (event.received_at, event.delivery_id, event.endpoint) == (
        RECEIVED_AT, "dlv-1", "stripe-eu")


def test_refunds_are_counted_from_charge_refunded_only() -> None:
    """A refund arrives as refund.created, charge.refund.updated and charge.refunded: one amount."""
    deliveries = [
        stripe_event("refund.created", refund(amount=500)),
        stripe_event("charge.refund.updated", refund(amount=500)),
        stripe_event("refund.updated", refund(amount=500)),
        stripe_event("charge.refunded", charge(amount_refunded=500)),
    ]
    events = [stripe.normalize(envelope_of(d)) for d in deliveries]
    refunded = [e for e in events if e is not None]
    assert [(e.type, e.amount, e.amount_scope) for e in refunded] == [
        ("payment.refunded", 500, "total")]


@pytest.mark.parametrize(("kind", "obj"), [
    ("refund.created", refund()), ("refund.updated", refund()),
    ("charge.refund.updated", refund(status="pending")), ("charge.succeeded", charge()),
    ("charge.updated", charge()), ("charge.pending", charge(status="pending")),
    ("payment_intent.created", intent(status="requires_payment_method")),
    ("payment_intent.processing", intent(status="processing")),
    ("payment_intent.requires_action", intent(status="requires_action")),
    ("payment_intent.partially_funded", intent()),
    ("charge.dispute.updated", dispute(status="under_review")),
    ("charge.dispute.funds_withdrawn", dispute()),
    ("charge.dispute.funds_reinstated", dispute(status="won")),
    ("charge.dispute.closed", dispute(status="prevented")),
    ("charge.dispute.closed", dispute(status="under_review")),
    ("customer.created", {"id": "cus_NffrFeUfNV2Hib", "object": "customer"}),
])
def test_types_without_a_canonical_type_map_to_none(kind: str, obj: dict[str, Any]) -> None:
    assert stripe.normalize(envelope_of(stripe_event(kind, obj))) is None


def test_unmapped_types_are_not_even_read() -> None:
    assert stripe.normalize(envelope_of(b"not json", event_type="charge.dispute.updated")) is None

_with = support.with_value


def _without(raw: dict[str, Any], *path: str) -> dict[str, Any]:
    copy = orjson.loads(orjson.dumps(raw))
    node = copy
    for name in path[:-1]:
        node = node[name]
    del node[path[-1]]
    return dict(copy)


SUCCEEDED = stripe_event("payment_intent.succeeded", intent(amount_received=2000))
DISPUTED = stripe_event("charge.dispute.created", dispute())
MALFORMED: list[tuple[str, Envelope]] = [
    ("missing amount_received", envelope_of(_without(SUCCEEDED, "data", "object",
                                                     "amount_received"))),
    ("fractional amount", envelope_of(_with(SUCCEEDED, 20.0, "data", "object",
                                            "amount_received"))),
    ("amount as text", envelope_of(_with(SUCCEEDED, "2000", "data", "object",
                                         "amount_received"))),
    ("amount as boolean", envelope_of(_with(SUCCEEDED, True, "data", "object",
                                            "amount_received"))),
    ("negative amount", envelope_of(_with(SUCCEEDED, -1, "data", "object", "amount_received"))),
    ("amount beyond a signed 64-bit integer", envelope_of(_with(SUCCEEDED, 2**64 - 1, "data",
                                                                "object", "amount_received"))),
    ("missing amount_refunded", envelope_of(_without(stripe_event("charge.refunded", charge()),
                                                     "data", "object", "amount_refunded"))),
    ("bad currency", envelope_of(_with(SUCCEEDED, "euro", "data", "object", "currency"))),
    ("missing currency", envelope_of(_without(SUCCEEDED, "data", "object", "currency"))),
    ("missing created", envelope_of(_without(SUCCEEDED, "created"))),
    ("created as text", envelope_of(_with(SUCCEEDED, "1680651737", "created"))),
    ("created as float", envelope_of(_with(SUCCEEDED, 1680651737.5, "created"))),
    ("created as boolean", envelope_of(_with(SUCCEEDED, True, "created"))),
    ("created beyond any calendar", envelope_of(_with(SUCCEEDED, 2**62, "created"))),
    ("created before any calendar", envelope_of(_with(SUCCEEDED, -(2**62), "created"))),
    ("no data.object", envelope_of(_without(SUCCEEDED, "data", "object"))),
    ("data is a list", envelope_of(_with(SUCCEEDED, [], "data"))),
    ("no PaymentIntent", envelope_of(SUCCEEDED, payment_ref=None)),
    ("dispute without id", envelope_of(_without(DISPUTED, "data", "object", "id"))),
    ("dispute without amount", envelope_of(_without(DISPUTED, "data", "object", "amount"))),
    ("failed refund without id", envelope_of(_without(
        stripe_event("refund.failed", refund(status="failed")), "data", "object", "id"))),
    ("payload is not JSON", envelope_of(b"evt_", event_type="charge.refunded")),
    ("payload is a list", envelope_of(b"[]", event_type="charge.captured")),
]


@pytest.mark.parametrize("envelope", [e for _, e in MALFORMED], ids=[n for n, _ in MALFORMED])
def test_malformed_events_raise_normalize_error(envelope: Envelope) -> None:
    with pytest.raises(NormalizeError):
        stripe.normalize(envelope)


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
            event = stripe.normalize(envelope)
            assert event is not None, f"{envelope.event_type} is simulated but unmapped"
            conforms(event)
            assert event.payment_id == envelope.partition_key == record.key.decode()
            assert event.payment_id == f"stripe:{sim_event.payment_ref}"
            assert event.currency in {"EUR", "USD", "GBP"}  # Stripe's lower case, upper-cased
            events.append(event)
            seen.add(event.type)
        support.money_invariants_hold(events)
    assert seen == {"payment.authorized", "payment.authorization_failed", "payment.captured",
                    "payment.canceled", "payment.refunded"}


# -- anything at all ---------------------------------------------------------------------------

JSON = support.ANY_JSON
TYPES = st.sampled_from([*stripe._TOTALS, *stripe._REFUND_FAILED, "charge.dispute.created",
                         "charge.dispute.closed", "charge.dispute.updated", "customer.created"])
REALISTIC = [e.event for e in sim.lifecycle(random.Random(5), NOW)] + [
    raw for _, raw, _ in TABLE]


_paths = support.field_paths


def outcome_is_an_event_none_or_normalize_error(envelope: Envelope) -> None:
    support.outcome_is_an_event_none_or_normalize_error(stripe.normalize, envelope)


@settings(max_examples=300)
@given(payload=JSON, kind=TYPES, payment_ref=st.sampled_from([PI, None]))
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


@pytest.mark.parametrize(("capture_method", "expected"), [
    ("automatic", False), ("automatic_async", False), ("manual", True)])
def test_only_an_automatically_captured_intent_expects_no_authorization(
        capture_method: str, expected: bool) -> None:
    obj = intent(capture_method=capture_method, amount_received=2000, status="succeeded")
    event = stripe.normalize(envelope_of(stripe_event("payment_intent.succeeded", obj)))
    assert event is not None
    assert (event.type, event.authorization_expected) == ("payment.captured", expected)


def test_a_manual_charge_capture_expects_its_authorization() -> None:
    event = stripe.normalize(envelope_of(stripe_event("charge.captured", charge())))
    assert event is not None
    assert (event.type, event.authorization_expected) == ("payment.captured", True)
