"""Adyen notification items become canonical events: per-operation amounts keyed by their own
pspReference, the payment by originalReference, Adyen's minor units turned into ISO 4217 ones.

Items are shaped like the examples of Adyen's Webhooks OpenAPI spec and our simulator; the
realistic ones travel the receiver's whole pure path (signed, verified by the scheme, split into
envelopes) before they are normalised.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.errors import NormalizeError
from consumers.normalize import adyen, normalizer
from ingest.schemes import RawRequest
from ingest.schemes import adyen as scheme
from payhooks.config import EndpointSettings, Secret
from payhooks.sim import adyen as sim
from schemas.envelope import Envelope
from tests.unit import normalize_support as support

HEX_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
ENDPOINT = EndpointSettings(name="adyen-eu", provider="adyen", secrets=(Secret(HEX_KEY),))
NOW = 1_790_000_000
RECEIVED_AT = "2026-09-21T12:13:20.000Z"
PAYMENT, CAPTURE, REFUND, DISPUTE = ("8835511210681999", "8535296650153317", "8825408195409505",
                                     "9915555555551234")


def item(event_code: str, *, psp: str = PAYMENT, original: str | None = None, value: int = 1130,
         currency: str = "EUR", success: str = "true", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "amount": {"currency": currency, "value": value},
        "eventCode": event_code,
        "eventDate": "2026-09-21T14:10:25+02:00",
        "merchantAccountCode": "PayhooksECOM",
        "merchantReference": "order-42",
        "paymentMethod": "visa",
        "pspReference": psp,
        "reason": "",
        "success": success,
        **extra,
    }
    if original is not None:
        body["originalReference"] = original
    return body


def modification(event_code: str, psp: str, **changes: Any) -> dict[str, Any]:
    return item(event_code, psp=psp, original=PAYMENT, **changes)


def envelope_of(raw: dict[str, Any] | bytes, *, event_type: str | None = None,
                payment_ref: str | None = PAYMENT) -> Envelope:
    """An envelope built by hand, for items the scheme itself would refuse."""
    payload = raw if isinstance(raw, bytes) else orjson.dumps(raw)
    code = event_type or (raw.get("eventCode") if isinstance(raw, dict) else None) or "CAPTURE"
    return Envelope(delivery_id="dlv-1", endpoint="adyen-eu", provider="adyen",
                    event_id=f"{CAPTURE}:{code}:true:{PAYMENT}", event_type=str(code),
                    payment_ref=payment_ref, received_at=RECEIVED_AT, key_index=0,
                    payload=payload)


async def received(*items: dict[str, Any]) -> list[Envelope]:
    """``items`` in one notification, signed as Adyen signs, verified by the receiver's scheme
    and split into the envelopes it would publish (the record key checked against each)."""
    body = scheme.notification_body(items, HEX_KEY)
    out = []
    for record, envelope in await support.delivered(
            ENDPOINT, RawRequest(body, {"content-type": "application/json"}), NOW,
            received_at=RECEIVED_AT):
        assert record.key.decode() == envelope.partition_key
        out.append(envelope)
    return out


conforms = support.conforms


# -- realistic items ---------------------------------------------------------------------------

Expected = tuple[str, int | None, str | None, str | None, str | None]  # type amount scope op cur

TABLE: list[tuple[str, dict[str, Any], Expected]] = [
    ("authorisation", item("AUTHORISATION", operations=["CANCEL", "CAPTURE", "REFUND"],
                           reason="58747:1111:03/2030", additionalData={"authCode": "58747"}),
     ("payment.authorized", 1130, "total", None, "EUR")),
    ("refused authorisation", item("AUTHORISATION", success="false", reason="Refused"),
     ("payment.authorization_failed", None, None, None, "EUR")),
    ("authorisation adjusted to a new total",
     modification("AUTHORISATION_ADJUSTMENT", "8816178914079738", value=2500),
     ("payment.authorized", 2500, "total", None, "EUR")),
    ("capture", modification("CAPTURE", CAPTURE),
     ("payment.captured", 1130, "operation", CAPTURE, "EUR")),
    ("partial capture in JPY", modification("CAPTURE", CAPTURE, value=500, currency="JPY"),
     ("payment.captured", 500, "operation", CAPTURE, "JPY")),
    ("capture refused", modification("CAPTURE", CAPTURE, success="false"),
     ("payment.capture_failed", None, None, CAPTURE, "EUR")),
    ("capture rejected by the scheme", modification("CAPTURE_FAILED", CAPTURE),
     ("payment.capture_failed", None, None, CAPTURE, "EUR")),
    ("cancellation", modification("CANCELLATION", "8412534564722331"),
     ("payment.canceled", None, None, None, "EUR")),
    ("technical cancel", modification("TECHNICAL_CANCEL", "8412534564722332"),
     ("payment.canceled", None, None, None, "EUR")),
    ("authorisation expired", modification("EXPIRE", "8412534564722333"),
     ("payment.canceled", None, None, None, "EUR")),
    ("cancel-or-refund that refunded",
     modification("CANCEL_OR_REFUND", REFUND, additionalData={"modification.action": "refund"}),
     ("payment.refunded", 1130, "operation", REFUND, "EUR")),
    ("cancel-or-refund that cancelled",
     modification("CANCEL_OR_REFUND", REFUND, additionalData={"modification.action": "cancel"}),
     ("payment.canceled", None, None, None, "EUR")),
    ("cancel-or-refund whose refund failed",
     modification("CANCEL_OR_REFUND", REFUND, success="false",
                  additionalData={"modification.action": "refund"}),
     ("payment.refund_failed", None, None, REFUND, "EUR")),
    ("partial refund", modification("REFUND", REFUND, value=376),
     ("payment.refunded", 376, "operation", REFUND, "EUR")),
    ("refund refused", modification("REFUND", REFUND, success="false"),
     ("payment.refund_failed", None, None, REFUND, "EUR")),
    ("refund rejected by the scheme", modification("REFUND_FAILED", REFUND),
     ("payment.refund_failed", None, None, REFUND, "EUR")),
    ("notification of chargeback", modification(
        "NOTIFICATION_OF_CHARGEBACK", DISPUTE, reason=sim.CHARGEBACK_REASON,
        additionalData={"chargebackReasonCode": "10.4", "disputeStatus": "Undefended"}),
     ("dispute.opened", 1130, "operation", DISPUTE, "EUR")),
    ("chargeback", modification("CHARGEBACK", DISPUTE),
     ("dispute.opened", 1130, "operation", DISPUTE, "EUR")),
    ("chargeback reversed", modification("CHARGEBACK_REVERSED", DISPUTE),
     ("dispute.won", 1130, "operation", DISPUTE, "EUR")),
    ("second chargeback", modification("SECOND_CHARGEBACK", DISPUTE),
     ("dispute.lost", 1130, "operation", DISPUTE, "EUR")),
    ("pre-arbitration won", modification("PREARBITRATION_WON", DISPUTE),
     ("dispute.won", 1130, "operation", DISPUTE, "EUR")),
    ("scheme arbitration lost", modification("SCHEME_ARBITRATION_LOST", DISPUTE),
     ("dispute.lost", 1130, "operation", DISPUTE, "EUR")),
    # Adyen's minor units differ from ISO 4217 for four currencies
    ("ISK has two decimals at Adyen, none in ISO", modification("CAPTURE", CAPTURE, value=279000,
                                                               currency="ISK"),
     ("payment.captured", 2790, "operation", CAPTURE, "ISK")),
    ("CLP has two decimals at Adyen", modification("CAPTURE", CAPTURE, value=1500000,
                                                   currency="CLP"),
     ("payment.captured", 15000, "operation", CAPTURE, "CLP")),
    ("IDR has no decimals at Adyen, two in ISO", modification("CAPTURE", CAPTURE, value=150000,
                                                             currency="IDR"),
     ("payment.captured", 15000000, "operation", CAPTURE, "IDR")),
    ("CVE has no decimals at Adyen", modification("REFUND", REFUND, value=1000, currency="CVE"),
     ("payment.refunded", 100000, "operation", REFUND, "CVE")),
    ("KWD keeps three decimals", modification("REFUND", REFUND, value=1234, currency="KWD"),
     ("payment.refunded", 1234, "operation", REFUND, "KWD")),
]


@pytest.mark.parametrize(("raw", "expected"), [(raw, exp) for _, raw, exp in TABLE],
                         ids=[name for name, _, _ in TABLE])
async def test_realistic_items_map_to_canonical_events(raw: dict[str, Any], expected: Expected
                                                       ) -> None:
    [envelope] = await received(raw)
    event = normalizer("adyen")(envelope)
    assert event is not None
    conforms(event)
    assert (event.type, event.amount, event.amount_scope, event.operation_id, event.currency
            ) == expected
    assert event.payment_id == f"adyen:{PAYMENT}" == envelope.partition_key
    assert event.event_id == f"adyen:{envelope.event_id}"
    assert event.provider_event_type == raw["eventCode"]
    assert event.occurred_at == "2026-09-21T12:10:25.000Z"  # eventDate +02:00 in UTC
    assert (event.received_at, event.delivery_id, event.endpoint) == (
        RECEIVED_AT, "dlv-1", "adyen-eu")


async def test_every_item_of_a_batch_becomes_its_own_event() -> None:
    batch = [item("AUTHORISATION"), modification("CAPTURE", CAPTURE, value=500),
             modification("CAPTURE", "8535296650153318", value=630)]
    events = [adyen.normalize(e) for e in await received(*batch)]
    assert [(e.type, e.amount, e.operation_id) for e in events if e is not None] == [
        ("payment.authorized", 1130, None), ("payment.captured", 500, CAPTURE),
        ("payment.captured", 630, "8535296650153318")]


def test_success_as_a_json_boolean_reads_like_adyens_string() -> None:
    assert adyen.normalize(envelope_of(item("AUTHORISATION", success=False))) == (  # type: ignore[arg-type]
        adyen.normalize(envelope_of(item("AUTHORISATION", success="false"))))


def test_the_package_table_finds_the_adyen_normaliser() -> None:
    assert normalizer("adyen") is adyen.normalize


@pytest.mark.parametrize("event_code", [
    "REPORT_AVAILABLE", "RECURRING_CONTRACT", "REFUNDED_REVERSED", "REQUEST_FOR_INFORMATION",
    "NOTIFICATION_OF_FRAUD", "INFORMATION_SUPPLIED", "ISSUER_COMMENTS", "OFFER_CLOSED",
    "ORDER_OPENED", "ORDER_CLOSED", "PENDING", "MANUAL_REVIEW_ACCEPT", "POSTPONED_REFUND",
    "DISPUTE_DEFENSE_PERIOD_ENDED", "AUTHENTICATION", "VOID_PENDING_REFUND",
])
def test_event_codes_without_a_canonical_type_map_to_none(event_code: str) -> None:
    assert adyen.normalize(envelope_of(modification(event_code, REFUND))) is None


def test_unmapped_types_are_not_even_read() -> None:
    assert adyen.normalize(envelope_of(b"not json", event_type="REPORT_AVAILABLE")) is None

@pytest.mark.parametrize("raw", [
    modification("CANCELLATION", REFUND, success="false"),
    modification("EXPIRE", REFUND, success="false"),
    modification("AUTHORISATION_ADJUSTMENT", REFUND, success="false"),
    modification("CANCEL_OR_REFUND", REFUND, success="false",
                 additionalData={"modification.action": "cancel"}),
    modification("CANCEL_OR_REFUND", REFUND, success="false"),
], ids=["failed cancel", "failed expiry", "failed adjustment", "failed cancel-or-refund (cancel)",
        "failed cancel-or-refund (unknown)"])
def test_failed_operations_that_change_nothing_map_to_none(raw: dict[str, Any]) -> None:
    assert adyen.normalize(envelope_of(raw)) is None


def _without(raw: dict[str, Any], *path: str) -> dict[str, Any]:
    copy = orjson.loads(orjson.dumps(raw))
    node = copy
    for name in path[:-1]:
        node = node[name]
    del node[path[-1]]
    return dict(copy)


_with = support.with_value


CAPTURED = modification("CAPTURE", CAPTURE)
MALFORMED: list[tuple[str, Envelope]] = [
    ("missing amount", envelope_of(_without(CAPTURED, "amount"))),
    ("amount not an object", envelope_of(_with(CAPTURED, 1130, "amount"))),
    ("fractional amount", envelope_of(_with(CAPTURED, 11.3, "amount", "value"))),
    ("amount as text", envelope_of(_with(CAPTURED, "1130", "amount", "value"))),
    ("amount as boolean", envelope_of(_with(CAPTURED, True, "amount", "value"))),
    ("negative amount", envelope_of(_with(CAPTURED, -5, "amount", "value"))),
    ("amount beyond a signed 64-bit integer",
     envelope_of(modification("CAPTURE", CAPTURE, value=2**62, currency="IDR"))),
    ("missing value", envelope_of(_without(CAPTURED, "amount", "value"))),
    ("bad currency", envelope_of(_with(CAPTURED, "EURO", "amount", "currency"))),
    ("numeric currency", envelope_of(_with(CAPTURED, 978, "amount", "currency"))),
    ("missing currency", envelope_of(_without(CAPTURED, "amount", "currency"))),
    ("ISK amount with a fraction of a krona",
     envelope_of(modification("CAPTURE", CAPTURE, value=279050, currency="ISK"))),
    ("missing eventDate", envelope_of(_without(CAPTURED, "eventDate"))),
    ("eventDate without offset", envelope_of(_with(CAPTURED, "2026-09-21T14:10:25",
                                                   "eventDate"))),
    ("eventDate not a time", envelope_of(_with(CAPTURED, "yesterday", "eventDate"))),
    ("missing pspReference", envelope_of(_without(CAPTURED, "pspReference"))),
    ("numeric pspReference", envelope_of(_with(CAPTURED, 8535296650153317, "pspReference"))),
    ("success neither true nor false", envelope_of(_with(CAPTURED, "maybe", "success"))),
    ("missing success", envelope_of(_without(CAPTURED, "success"))),
    ("cancel-or-refund that does not say which",
     envelope_of(modification("CANCEL_OR_REFUND", REFUND))),
    ("no payment reference", envelope_of(CAPTURED, payment_ref=None)),
    ("payload is not JSON", envelope_of(b"{not json", event_type="CAPTURE")),
    ("payload is a list", envelope_of(b"[1, 2]", event_type="CAPTURE")),
    ("payload is a string", envelope_of(b'"CAPTURE"', event_type="CAPTURE")),
    ("another provider's envelope", Envelope(
        delivery_id="dlv-1", endpoint="cko", provider="checkout", event_id="evt_1",
        event_type="CAPTURE", payment_ref=PAYMENT, received_at=RECEIVED_AT, key_index=0,
        payload=orjson.dumps(CAPTURED))),
]


@pytest.mark.parametrize("envelope", [e for _, e in MALFORMED], ids=[n for n, _ in MALFORMED])
def test_malformed_items_raise_normalize_error(envelope: Envelope) -> None:
    with pytest.raises(NormalizeError):
        adyen.normalize(envelope)


def test_normalize_error_reasons_do_not_echo_the_payload() -> None:
    with pytest.raises(NormalizeError) as err:
        adyen.normalize(envelope_of(_with(CAPTURED, "4111111111111111", "amount", "value")))
    assert "4111111111111111" not in str(err.value)


# -- simulated lifecycles, end to end ----------------------------------------------------------


async def test_simulated_lifecycles_keep_money_invariants_and_partition_keys() -> None:
    rng = random.Random(20260921)
    seen: set[str] = set()
    for _ in range(250):
        lifecycle = sim.lifecycle(rng, NOW)
        request = sim.sign(lifecycle, ENDPOINT, NOW)  # Adyen batches: the whole lifecycle at once
        deliveries = await support.delivered(
            ENDPOINT, RawRequest(request.body, request.headers), NOW, received_at=RECEIVED_AT,
            delivery_id="dlv-2", traceparent="00-" + "3" * 32 + "-" + "4" * 16 + "-01")
        events = []
        for record, envelope in deliveries:
            event = adyen.normalize(envelope)
            assert event is not None, f"{envelope.event_type} is simulated but unmapped"
            conforms(event)
            assert event.payment_id == envelope.partition_key == record.key.decode()
            assert event.payment_id == f"adyen:{lifecycle[0].payment_ref}"
            events.append(event)
            seen.add(event.type)
        support.money_invariants_hold(events)
    assert seen == {"payment.authorized", "payment.authorization_failed", "payment.captured",
                    "payment.canceled", "payment.refunded", "dispute.opened", "dispute.won",
                    "dispute.lost"}


# -- anything at all ---------------------------------------------------------------------------

JSON = support.ANY_JSON
EVENT_CODES = st.sampled_from([*adyen._BY_SUCCESS, "CANCEL_OR_REFUND", "REPORT_AVAILABLE"])
REALISTIC = [e.event for e in sim.lifecycle(random.Random(5), NOW)] + [
    raw for _, raw, _ in TABLE]


def _leaf_paths(node: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix] if prefix else []
    if isinstance(node, dict):
        for name, child in node.items():
            paths += _leaf_paths(child, (*prefix, name))
    return paths


def outcome_is_an_event_none_or_normalize_error(envelope: Envelope) -> None:
    support.outcome_is_an_event_none_or_normalize_error(adyen.normalize, envelope)


@settings(max_examples=300)
@given(payload=JSON, event_code=EVENT_CODES, payment_ref=st.sampled_from([PAYMENT, None]))
def test_arbitrary_json_raises_nothing_but_normalize_error(payload: Any, event_code: str,
                                                          payment_ref: str | None) -> None:
    outcome_is_an_event_none_or_normalize_error(
        envelope_of(orjson.dumps(payload), event_type=event_code, payment_ref=payment_ref))


@settings(max_examples=300)
@given(data=st.data(), replacement=JSON)
def test_realistic_items_with_any_field_replaced_raise_nothing_but_normalize_error(
        data: st.DataObject, replacement: Any) -> None:
    raw = data.draw(st.sampled_from(REALISTIC))
    path = data.draw(st.sampled_from(_leaf_paths(raw)))
    outcome_is_an_event_none_or_normalize_error(
        envelope_of(_with(raw, replacement, *path), event_type=raw["eventCode"]))


@given(payload=st.binary(max_size=64), event_code=EVENT_CODES)
def test_arbitrary_bytes_raise_nothing_but_normalize_error(payload: bytes, event_code: str
                                                          ) -> None:
    outcome_is_an_event_none_or_normalize_error(envelope_of(payload, event_type=event_code))
