"""GoCardless events to canonical payment events: the mapping table over events shaped like
GoCardless's documented examples, unmapped events, malformed payloads (NormalizeError and nothing
else), the simulator's batched lifecycles end to end through the receiver's own scheme and
envelopes, and arbitrary payloads. GoCardless events carry no amounts."""

from __future__ import annotations

import contextlib
import json
import random
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.errors import NormalizeError
from consumers.normalize import normalize as dispatch
from consumers.normalize.gocardless import normalize
from ingest.schemes import RawRequest
from ingest.schemes.gocardless import payment_ref
from payhooks.config import EndpointSettings, Secret
from payhooks.kafka import Record
from payhooks.sim import gocardless as sim
from schemas import registry
from schemas.envelope import Envelope
from schemas.event import PaymentEvent
from tests.unit import normalize_support as support

NOW = 1_790_000_000
RECEIVED = "2026-09-21T12:00:05.000Z"
CREATED = "2014-04-08T17:01:06.000Z"
PAYMENT = "PM000260X9VKF4"
REFUND = "RF00003TMD5G3Y"
ENDPOINT = EndpointSettings(name="gocardless-test", provider="gocardless",
                            secrets=(Secret("gocardless-webhook-secret-4d2a"),))
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
VALIDATOR = jsonschema.Draft202012Validator(registry.load("payhooks.event.v1"),
                                            format_checker=jsonschema.FormatChecker())


def assert_valid(event: PaymentEvent) -> None:
    VALIDATOR.validate(orjson.loads(event.to_json()))


def event(resource_type: str, action: str, links: dict[str, Any] | None = None,
          **details: Any) -> dict[str, Any]:
    """An event as in GoCardless's API reference examples (``payments.failed`` and others)."""
    return {
        "id": "EV123", "created_at": CREATED, "resource_type": resource_type,
        "action": action, "details": {"origin": "gocardless", "cause": f"payment_{action}",
                                      "description": "Described.", **details},
        "metadata": {}, "resource_metadata": {"order_dispatch_date": "2014-05-22"},
        "links": {"payment": PAYMENT} if links is None else links,
    }


def envelope(doc: Any, *, kind: str | None = None, raw: bytes | None = None,
             ref: str | None = PAYMENT, event_id: str = "EV123") -> Envelope:
    """The envelope the receiver publishes for one event of a batch (re-serialised, keyed by
    the scheme's own reading of ``links.payment``)."""
    if isinstance(doc, dict):
        kind = kind or f"{doc.get('resource_type')}.{doc.get('action')}"
        ref = payment_ref(doc)
    return Envelope(
        delivery_id="dlv-1", endpoint="gocardless-test", provider="gocardless",
        event_id=event_id, event_type=kind or "payments.confirmed", payment_ref=ref,
        received_at=RECEIVED, key_index=0, payload=raw if raw is not None else orjson.dumps(doc))


# --- the mapping table ----------------------------------------------------------------------

#: (GoCardless event, canonical type, operation id)
TABLE = [
    pytest.param(event("payments", "created", origin="api"),
                 "payment.authorized", None, id="created-is-an-authorisation-without-amount"),
    pytest.param(event("payments", "confirmed"), "payment.captured", None, id="confirmed"),
    pytest.param(event("payments", "failed", origin="bank", cause="insufficient_funds",
                       scheme="sepa_core", reason_code="AM04", will_attempt_retry=False),
                 "payment.capture_failed", None, id="failed-collection"),
    pytest.param(event("payments", "failed", origin="bank", cause="insufficient_funds",
                       scheme="bacs", reason_code="ARUDD-0", will_attempt_retry=True),
                 "payment.capture_failed", None, id="failed-collection-to-be-retried"),
    pytest.param(event("payments", "cancelled", origin="api"), "payment.canceled", None,
                 id="cancelled"),
    pytest.param(event("payments", "cancelled", {"payment": PAYMENT, "parent_event": "EV789"},
                       origin="bank", cause="mandate_cancelled", scheme="bacs",
                       reason_code="ADDACS-B"),
                 "payment.canceled", None, id="cancelled-because-the-mandate-was"),
    pytest.param(event("payments", "customer_approval_denied", origin="customer"),
                 "payment.canceled", None, id="customer-denied-approval"),
    pytest.param(event("payments", "charged_back", origin="bank", scheme="bacs",
                       reason_code="DDICA-1"),
                 "dispute.lost", None, id="charged-back-is-a-lost-dispute"),
    pytest.param(event("payments", "chargeback_cancelled", origin="bank"),
                 "dispute.won", None, id="chargeback-cancelled"),
    pytest.param(event("refunds", "created", {"refund": REFUND, "payment": PAYMENT,
                                              "mandate": "MD0000TWJWRFHG"},
                       origin="api", cause="payment_refunded"),
                 "payment.refunded", REFUND, id="refund-created"),
    pytest.param(event("refunds", "failed", {"refund": REFUND, "payment": PAYMENT}),
                 "payment.refund_failed", REFUND, id="refund-failed"),
    pytest.param(event("refunds", "bounced", {"refund": REFUND, "payment": PAYMENT}),
                 "payment.refund_failed", REFUND, id="refund-bounced"),
    pytest.param(event("refunds", "funds_returned", {"refund": REFUND, "payment": PAYMENT}),
                 "payment.refund_failed", REFUND, id="refund-funds-returned"),
]


@pytest.mark.parametrize(("doc", "kind", "operation"), TABLE)
def test_gocardless_events_map_to_their_canonical_type_without_amounts(
        doc: dict[str, Any], kind: str, operation: str | None) -> None:
    canonical = normalize(envelope(doc))
    assert canonical is not None
    assert (canonical.type, canonical.operation_id) == (kind, operation)
    assert (canonical.amount, canonical.amount_scope, canonical.currency) == (None, None, None)
    assert canonical.payment_id == f"gocardless:{PAYMENT}"
    assert (canonical.event_id, canonical.provider_event_id) == ("gocardless:EV123", "EV123")
    assert canonical.provider_event_type == f"{doc['resource_type']}.{doc['action']}"
    assert canonical.occurred_at == CREATED
    assert (canonical.received_at, canonical.delivery_id, canonical.endpoint) == (
        RECEIVED, "dlv-1", "gocardless-test")
    assert_valid(canonical)


def test_the_dispatcher_picks_the_gocardless_normaliser() -> None:
    env = envelope(event("payments", "confirmed"))
    assert dispatch(env) == normalize(env)


def test_normalising_is_pure_the_same_envelope_gives_the_same_event() -> None:
    env = envelope(event("payments", "created"))
    assert normalize(env) == normalize(env)


def test_event_time_with_an_offset_is_written_in_utc() -> None:
    doc = {**event("payments", "confirmed"), "created_at": "2014-04-08T18:01:06.5+01:00"}
    canonical = normalize(envelope(doc))
    assert canonical is not None
    assert canonical.occurred_at == "2014-04-08T17:01:06.500Z"


@pytest.mark.parametrize("doc", [
    pytest.param(event("payments", "submitted"), id="submitted"),
    pytest.param(event("payments", "customer_approval_granted"), id="approval-granted"),
    pytest.param(event("payments", "paid_out", {"payment": PAYMENT, "payout": "PO123"}),
                 id="paid-out"),
    pytest.param(event("payments", "late_failure_settled", {"payment": PAYMENT,
                                                            "payout": "PO123"}),
                 id="late-failure-settled"),
    pytest.param(event("payments", "chargeback_settled", {"payment": PAYMENT,
                                                          "payout": "PO123"}),
                 id="chargeback-settled"),
    pytest.param(event("payments", "resubmission_requested"), id="resubmission-requested"),
    pytest.param(event("payments", "surcharge_fee_debited"), id="surcharge-fee"),
    pytest.param(event("refunds", "paid", {"refund": REFUND, "payment": PAYMENT}),
                 id="refund-paid"),
    pytest.param(event("refunds", "refund_settled", {"refund": REFUND, "payment": PAYMENT}),
                 id="refund-settled"),
    pytest.param(event("refunds", "created", {"refund": "RF123"}, origin="api",
                       cause="payment_refunded"),
                 id="refund-linking-no-payment-as-in-the-docs"),
    pytest.param(event("mandates", "cancelled", {"mandate": "MD123"}, origin="bank",
                       cause="bank_account_closed"), id="mandate"),
    pytest.param(event("payouts", "paid", {"payout": "PO123"}), id="payout"),
    pytest.param(event("subscriptions", "payment_created", {"subscription": "SB123",
                                                            "payment": PAYMENT}),
                 id="subscription-payment-created"),
    pytest.param(event("instalment_schedules", "payment_created",
                       {"instalment_schedule": "IS123", "payment": PAYMENT}),
                 id="instalment-payment-created"),
])
def test_gocardless_events_without_a_canonical_type_map_to_nothing(doc: dict[str, Any]) -> None:
    assert normalize(envelope(doc)) is None


def test_an_unmapped_type_is_not_even_read() -> None:
    assert normalize(envelope(None, kind="creditors.updated", raw=b"\xff not json")) is None


# --- malformed payloads ---------------------------------------------------------------------

MALFORMED = [
    pytest.param(envelope(None, kind="payments.confirmed", raw=b"{not json"), id="not-json"),
    pytest.param(envelope(None, kind="payments.confirmed", raw=b"[]"), id="not-an-object"),
    pytest.param(envelope({**event("payments", "confirmed"), "links": None}), id="no-links"),
    pytest.param(envelope(event("payments", "confirmed", {"mandate": "MD123"})),
                 id="payment-event-linking-no-payment"),
    pytest.param(envelope(event("refunds", "created", {"payment": PAYMENT})),
                 id="refund-event-without-refund-id"),
    pytest.param(envelope(event("refunds", "created", {"refund": REFUND, "payment": 42})),
                 id="refund-linking-a-payment-that-is-not-an-id"),
    pytest.param(envelope({**event("payments", "confirmed"), "created_at": None}),
                 id="no-event-time"),
    pytest.param(envelope({**event("payments", "confirmed"), "created_at": 1396976466}),
                 id="time-not-a-string"),
    pytest.param(envelope({**event("payments", "confirmed"),
                           "created_at": "2014-04-08T17:01:06"}), id="time-without-zone"),
    pytest.param(envelope(event("payments", "confirmed"), event_id="EV\n123"),
                 id="event-id-with-a-line-break"),
]


@pytest.mark.parametrize("env", MALFORMED)
def test_malformed_gocardless_payloads_are_poison(env: Envelope) -> None:
    with pytest.raises(NormalizeError):
        normalize(env)


# --- end to end over the simulator ----------------------------------------------------------


async def delivered(rng: random.Random) -> list[tuple[Record, Envelope]]:
    """One simulated payment's events in one signed batch, verified by the receiver's scheme and
    split into one record per event."""
    request = sim.sign(sim.lifecycle(rng, NOW), ENDPOINT, NOW)
    return await support.delivered(ENDPOINT, RawRequest(request.body, request.headers), NOW,
                                   received_at=RECEIVED, traceparent=TRACEPARENT)


#: what may follow what in one payment's canonical sequence (GoCardless's lifecycle order)
_NEXT: dict[str | None, set[str]] = {
    None: {"payment.authorized"},
    "payment.authorized": {"payment.captured", "payment.capture_failed", "payment.canceled"},
    "payment.captured": {"dispute.lost"},
}


async def test_simulated_lifecycles_normalise_in_order_with_partition_keys() -> None:
    seen: set[str] = set()
    for seed in range(150):
        previous: str | None = None
        payments = set()
        for record, env in await delivered(random.Random(seed)):
            canonical = normalize(env)
            if canonical is None:
                assert env.event_type in ("payments.submitted", "payments.paid_out")
                continue
            assert canonical.payment_id.encode() == record.key == env.partition_key.encode()
            assert (canonical.amount, canonical.amount_scope, canonical.currency) == (
                None, None, None)
            assert canonical.type in _NEXT.get(previous, set()), (previous, canonical.type)
            assert_valid(canonical)
            previous = canonical.type
            payments.add(canonical.payment_id)
            seen.add(canonical.type)
        assert len(payments) == 1
    assert seen == {"payment.authorized", "payment.captured", "payment.capture_failed",
                    "payment.canceled", "dispute.lost"}


# --- arbitrary payloads ---------------------------------------------------------------------

JSON = support.SMALL_JSON
KINDS = st.sampled_from(["payments.created", "payments.confirmed", "payments.failed",
                         "payments.cancelled", "payments.charged_back", "refunds.created",
                         "refunds.failed"]) | st.text(max_size=20)
SAMPLES = [event("payments", "confirmed"), event("payments", "failed", will_attempt_retry=True),
           event("refunds", "created", {"refund": REFUND, "payment": PAYMENT}),
           event("refunds", "created", {"refund": REFUND})]


@settings(max_examples=300)
@given(doc=support.mutated(SAMPLES) | JSON, kind=st.none() | KINDS,
       ref=st.none() | st.text(min_size=1, max_size=30), event_id=st.text(min_size=1, max_size=30))
def test_arbitrary_gocardless_payloads_raise_nothing_but_normalize_error(
        doc: Any, kind: str | None, ref: str | None, event_id: str) -> None:
    if kind is None:  # the type the receiver would have built from the event
        kind = (f"{doc.get('resource_type')}.{doc.get('action')}" if isinstance(doc, dict)
                else "")
    env = envelope(None, kind=kind, ref=ref, raw=json.dumps(doc).encode(), event_id=event_id)
    try:
        canonical = normalize(env)
    except NormalizeError:
        return
    if canonical is not None:
        assert canonical.payment_id == f"gocardless:{ref}" == env.partition_key
        assert_valid(canonical)


@given(raw=st.binary(max_size=200), kind=KINDS)
def test_arbitrary_bytes_raise_nothing_but_normalize_error(raw: bytes, kind: str) -> None:
    with contextlib.suppress(NormalizeError):
        normalize(envelope(None, kind=kind, raw=raw))


def test_a_confirmed_direct_debit_expects_no_authorization() -> None:
    confirmed = normalize(envelope(event("payments", "confirmed")))
    assert confirmed is not None
    assert (confirmed.type, confirmed.authorization_expected) == ("payment.captured", False)
