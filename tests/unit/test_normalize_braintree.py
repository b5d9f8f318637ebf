"""Braintree notifications to canonical payment events: the mapping table over the Braintree
SDK's own sample notifications and documented transaction shapes, all delivered through the
receiver's scheme; unmapped kinds; malformed payloads, broken base64 and XML included
(NormalizeError and nothing else); the simulator's lifecycles end to end; arbitrary payloads."""

from __future__ import annotations

import base64
import contextlib
import random
import types
from collections import defaultdict
from urllib.parse import urlencode
from xml.sax.saxutils import escape

import braintree as braintree_sdk
import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.errors import NormalizeError
from consumers.normalize import normalize as dispatch
from consumers.normalize.braintree import normalize
from ingest.schemes import RawRequest
from ingest.schemes.braintree import encode_payload, form_body, read_notification
from payhooks.config import EndpointSettings, Secret
from payhooks.kafka import Record
from payhooks.sim import braintree as sim
from schemas import registry, timefmt
from schemas.envelope import Envelope
from schemas.event import PaymentEvent
from tests.unit import normalize_support as support

NOW = 1_790_000_000
RECEIVED = "2026-09-21T12:00:05.000Z"
TIMESTAMP = "2026-09-21T14:10:25Z"
PUBLIC, PRIVATE = "pk_4n6bqv2x9", "e1f0c7a1b2d3e4f5a6b7c8d9e0f1a2b3"
ENDPOINT = EndpointSettings(name="braintree-test", provider="braintree",
                            secrets=(Secret(PRIVATE),),
                            options=types.MappingProxyType({"public_key": PUBLIC}))
FORM = {"content-type": "application/x-www-form-urlencoded"}
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
VALIDATOR = jsonschema.Draft202012Validator(registry.load("payhooks.event.v1"),
                                            format_checker=jsonschema.FormatChecker())


def assert_valid(event: PaymentEvent) -> None:
    VALIDATOR.validate(orjson.loads(event.to_json()))


def sdk_form(kind: str, subject_id: str) -> bytes:
    """A notification as Braintree's own SDK samples it (``WebhookTesting``), offline."""
    gateway = braintree_sdk.BraintreeGateway(braintree_sdk.Configuration(
        environment=braintree_sdk.Environment.Sandbox, merchant_id="payhooks",
        public_key=PUBLIC, private_key=PRIVATE))
    sample = gateway.webhook_testing.sample_notification(kind, subject_id)
    return urlencode({"bt_signature": sample["bt_signature"],
                      "bt_payload": sample["bt_payload"].decode()}).encode()


def notification_xml(kind: str, subject: str, timestamp: str = TIMESTAMP) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<notification>
  <kind>{kind}</kind>
  <timestamp type="datetime">{timestamp}</timestamp>
  <subject>{subject}</subject>
</notification>
""".encode()


def form(kind: str, subject: str, timestamp: str = TIMESTAMP) -> bytes:
    """A notification signed as Braintree signs it, by the scheme's own signer."""
    payload = encode_payload(notification_xml(kind, subject, timestamp))
    return form_body(payload, [(PUBLIC, PRIVATE)])


def transaction(tid: str = "7p5xfbdm", *, kind: str = "sale", amount: str = "25.00",
                currency: str | None = "USD", refunded: str | None = None,
                status: str = "settled") -> str:
    currency_xml = "" if currency is None else f"<currency-iso-code>{currency}</currency-iso-code>"
    refunded_xml = (f"<refunded-transaction-id>{refunded}</refunded-transaction-id>" if refunded
                    else '<refunded-transaction-id nil="true"/>')
    return f"""<transaction>
      <id>{tid}</id><status>{status}</status><type>{kind}</type>{currency_xml}
      <amount>{amount}</amount><merchant-account-id>payhooks_usd</merchant-account-id>
      <payment-instrument-type>us_bank_account</payment-instrument-type>{refunded_xml}
    </transaction>"""


def dispute(status: str, *, kind: str = "chargeback", disputed: str | None = "80.00",
            amount: str = "100.00") -> str:
    disputed_xml = "" if disputed is None else f"<amount-disputed>{disputed}</amount-disputed>"
    return f"""<dispute>
      <id>dsp4nq8r</id><amount>{amount}</amount>{disputed_xml}
      <currency-iso-code>EUR</currency-iso-code><kind>{kind}</kind><status>{status}</status>
      <reason>fraud</reason><transaction><id>7p5xfbdm</id><amount>100.00</amount></transaction>
    </dispute>"""


def local_payment(tag: str, *, currency: bool = True, with_transaction: bool = True) -> str:
    sale = transaction(currency="EUR" if currency else None, status="settled")
    return f"""<{tag}><payment-id>PAYID-LX3ABC</payment-id>
      {sale if with_transaction else ""}</{tag}>"""


async def delivered(body: bytes) -> tuple[Record, Envelope]:
    """The record and envelope the receiver publishes for one verified delivery."""
    [delivery] = await support.delivered(ENDPOINT, RawRequest(body, FORM), NOW,
                                         received_at=RECEIVED, traceparent=TRACEPARENT)
    return delivery


def raw_envelope(payload: bytes, kind: str = "transaction_settled", ref: str | None = "7p5xfbdm",
                 event_id: str = f"transaction_settled:{TIMESTAMP}:7p5xfbdm") -> Envelope:
    return Envelope(delivery_id="dlv-1", endpoint="braintree-test", provider="braintree",
                    event_id=event_id, event_type=kind, payment_ref=ref, received_at=RECEIVED,
                    key_index=0, payload=payload)


# --- the mapping table ----------------------------------------------------------------------

#: (form body, canonical type, amount, currency, scope, operation id, payment reference)
TABLE = [
    pytest.param(sdk_form("transaction_settled", "sdk4sale"),
                 "payment.captured", 10000, "USD", "total", None, "sdk4sale",
                 id="sdk-transaction-settled"),
    pytest.param(sdk_form("transaction_settlement_declined", "sdk4sale"),
                 "payment.capture_failed", None, None, None, None, "sdk4sale",
                 id="sdk-settlement-declined"),
    pytest.param(form("transaction_settled", transaction(amount="1500", currency="JPY")),
                 "payment.captured", 1500, "JPY", "total", None, "7p5xfbdm",
                 id="zero-decimal-currency"),
    pytest.param(form("transaction_settled", transaction(amount="12.345", currency="kwd")),
                 "payment.captured", 12345, "KWD", "total", None, "7p5xfbdm",
                 id="three-decimal-currency-upper-cased"),
    pytest.param(form("transaction_settled", transaction(
        "rf92kd0q", kind="credit", amount="12.50", currency="EUR", refunded="7p5xfbdm")),
                 "payment.refunded", 1250, "EUR", "operation", "rf92kd0q", "7p5xfbdm",
                 id="settled-refund-counts-once-on-its-sale"),
    pytest.param(form("transaction_settlement_declined", transaction(
        "rf92kd0q", kind="credit", refunded="7p5xfbdm", status="settlement_declined")),
                 "payment.refund_failed", None, None, None, "rf92kd0q", "7p5xfbdm",
                 id="declined-refund"),
    pytest.param(form("refund_failed", transaction(
        "rf92kd0q", kind="credit", refunded="7p5xfbdm", status="processor_declined")),
                 "payment.refund_failed", None, None, None, "rf92kd0q", "7p5xfbdm",
                 id="refund-failed"),
    pytest.param(sdk_form("dispute_opened", "sdkdisp1"),
                 "dispute.opened", 10000, "USD", "operation", "sdkdisp1", "sdkdisp1",
                 id="sdk-dispute-opened"),
    pytest.param(sdk_form("dispute_won", "sdkdisp1"),
                 "dispute.won", 10000, "USD", "operation", "sdkdisp1", "sdkdisp1",
                 id="sdk-dispute-won"),
    pytest.param(sdk_form("dispute_lost", "sdkdisp1"),
                 "dispute.lost", 10000, "USD", "operation", "sdkdisp1", "sdkdisp1",
                 id="sdk-dispute-lost"),
    pytest.param(sdk_form("dispute_accepted", "sdkdisp1"),
                 "dispute.lost", 10000, "USD", "operation", "sdkdisp1", "sdkdisp1",
                 id="sdk-dispute-accepted-is-lost"),
    pytest.param(sdk_form("dispute_auto_accepted", "sdkdisp1"),
                 "dispute.lost", 10000, "USD", "operation", "sdkdisp1", "sdkdisp1",
                 id="sdk-dispute-auto-accepted-is-lost"),
    pytest.param(sdk_form("dispute_expired", "sdkdisp1"),
                 "dispute.lost", 10000, "USD", "operation", "sdkdisp1", "sdkdisp1",
                 id="sdk-dispute-expired-is-lost"),
    pytest.param(sdk_form("dispute_opened", "legacy_dispute_id"),
                 "dispute.opened", 25000, "USD", "operation", "legacy_dispute_id",
                 "legacy_dispute_id", id="sdk-legacy-dispute-without-amount-disputed"),
    pytest.param(form("dispute_opened", dispute("open")),
                 "dispute.opened", 8000, "EUR", "operation", "dsp4nq8r", "7p5xfbdm",
                 id="partial-dispute-counts-the-disputed-amount"),
    pytest.param(form("dispute_lost", dispute("lost", kind="pre_arbitration")),
                 "dispute.lost", 8000, "EUR", "operation", "dsp4nq8r", "7p5xfbdm",
                 id="pre-arbitration-lost"),
    pytest.param(form("local_payment_completed", local_payment("local-payment")),
                 "payment.authorized", 2500, "EUR", "total", None, "7p5xfbdm",
                 id="local-payment-completed-authorizes"),
    pytest.param(form("local_payment_funded", local_payment("local-payment-funded")),
                 "payment.captured", 2500, "EUR", "total", None, "7p5xfbdm",
                 id="local-payment-funded-captures"),
    pytest.param(sdk_form("local_payment_funded", "ignored"),
                 "payment.captured", None, None, None, None, "1",
                 id="sdk-local-payment-without-currency-has-no-amount"),
]


@pytest.mark.parametrize(("body", "kind", "amount", "currency", "scope", "operation", "ref"),
                         TABLE)
async def test_braintree_notifications_map_to_their_canonical_type_amount_and_scope(
        body: bytes, kind: str, amount: int | None, currency: str | None, scope: str | None,
        operation: str | None, ref: str) -> None:
    record, env = await delivered(body)
    canonical = normalize(env)
    assert canonical is not None
    assert (canonical.type, canonical.amount, canonical.currency, canonical.amount_scope,
            canonical.operation_id) == (kind, amount, currency, scope, operation)
    assert canonical.payment_id == f"braintree:{ref}"
    assert canonical.payment_id.encode() == record.key
    assert canonical.event_id == f"braintree:{env.event_id}"
    assert canonical.provider_event_type == env.event_type
    sent = read_notification(env.payload).timestamp
    assert canonical.occurred_at == timefmt.to_wire(timefmt.parse(sent))
    assert (canonical.received_at, canonical.delivery_id, canonical.endpoint) == (
        RECEIVED, "dlv-1", "braintree-test")
    assert_valid(canonical)


async def test_the_notification_timestamp_is_the_event_time() -> None:
    _, env = await delivered(form("transaction_settled", transaction(),
                                  timestamp="2026-09-21T16:10:25+02:00"))
    canonical = normalize(env)
    assert canonical is not None
    assert canonical.occurred_at == "2026-09-21T14:10:25.000Z"


async def test_the_dispatcher_picks_the_braintree_normaliser() -> None:
    _, env = await delivered(form("transaction_settled", transaction()))
    assert dispatch(env) == normalize(env)


async def test_normalising_is_pure_the_same_envelope_gives_the_same_event() -> None:
    _, env = await delivered(sdk_form("dispute_opened", "sdkdisp1"))
    assert normalize(env) == normalize(env)


@pytest.mark.parametrize("body", [
    pytest.param(sdk_form("dispute_disputed", "sdkdisp1"), id="sdk-dispute-disputed"),
    pytest.param(sdk_form("dispute_under_review", "sdkdisp1"), id="sdk-dispute-under-review"),
    pytest.param(form("dispute_opened", dispute("open", kind="retrieval", disputed="0.00")),
                 id="retrieval-is-not-a-dispute"),
    pytest.param(form("dispute_lost", dispute("lost", kind="retrieval")), id="retrieval-lost"),
    pytest.param(sdk_form("local_payment_expired", "ignored"), id="sdk-local-payment-expired"),
    pytest.param(sdk_form("local_payment_reversed", "ignored"), id="sdk-local-payment-reversed"),
    pytest.param(form("local_payment_completed", local_payment("local-payment",
                                                               with_transaction=False)),
                 id="local-payment-without-transaction"),
    pytest.param(sdk_form("refund_failed", "sdkrefnd"), id="sdk-refund-failed-names-no-sale"),
    pytest.param(form("transaction_settled", transaction("cr3dit01", kind="credit")),
                 id="detached-credit"),
    pytest.param(sdk_form("transaction_disbursed", "sdk4sale"), id="sdk-transaction-disbursed"),
    pytest.param(sdk_form("transaction_reviewed", "sdk4sale"), id="sdk-transaction-reviewed"),
    pytest.param(sdk_form("transaction_retried", "sdk4sale"), id="sdk-transaction-retried"),
    pytest.param(sdk_form("subscription_charged_successfully", "sub1"),
                 id="sdk-subscription-charged"),
    pytest.param(sdk_form("disbursement", "disb1"), id="sdk-disbursement"),
    pytest.param(sdk_form("check", "ignored"), id="sdk-check"),
])
async def test_braintree_notifications_without_a_canonical_type_map_to_nothing(
        body: bytes) -> None:
    _, env = await delivered(body)
    assert normalize(env) is None


def test_an_unmapped_kind_is_not_even_read() -> None:
    assert normalize(raw_envelope(b"not a form", kind="subscription_went_past_due")) is None


# --- malformed payloads ---------------------------------------------------------------------


def payload_form(payload: bytes) -> bytes:
    return urlencode({"bt_signature": f"{PUBLIC}|00", "bt_payload": payload.decode()}).encode()


def xml_form(kind: str, subject: str) -> bytes:
    return payload_form(encode_payload(notification_xml(kind, subject)))


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
<notification><kind>transaction_settled</kind><timestamp>&lol2;</timestamp></notification>"""

MALFORMED = [
    pytest.param(raw_envelope(b"bt_signature=x"), id="no-bt-payload"),
    pytest.param(raw_envelope(payload_form(b"!!!not base64!!!")), id="broken-base64"),
    pytest.param(raw_envelope(payload_form(base64.b64encode(b"<notification><kind>tra"))),
                 id="broken-xml"),
    pytest.param(raw_envelope(payload_form(base64.b64encode(BILLION_LAUGHS))),
                 id="xml-entities-refused"),
    pytest.param(raw_envelope(payload_form(base64.b64encode(b"<html>no</html>"))),
                 id="not-a-notification"),
    pytest.param(raw_envelope(xml_form("transaction_settled", "")), id="no-subject"),
    pytest.param(raw_envelope(xml_form("transaction_settled", dispute("open"))),
                 id="settled-subject-not-a-transaction"),
    pytest.param(raw_envelope(xml_form("dispute_opened", transaction()), kind="dispute_opened"),
                 id="dispute-subject-not-a-dispute"),
    pytest.param(raw_envelope(xml_form("dispute_opened", transaction())),
                 id="envelope-kind-differs-from-the-notification"),
    pytest.param(raw_envelope(xml_form("transaction_settled", transaction(currency=None))),
                 id="settled-amount-without-currency"),
    pytest.param(raw_envelope(xml_form("transaction_settled", transaction(amount=""))),
                 id="settled-without-amount"),
    pytest.param(raw_envelope(xml_form("transaction_settled", transaction(amount="25.001"))),
                 id="more-decimals-than-the-currency"),
    pytest.param(raw_envelope(xml_form("transaction_settled", transaction(amount="-25.00"))),
                 id="negative-amount"),
    pytest.param(raw_envelope(xml_form("transaction_settled", transaction(amount="2.5e1"))),
                 id="exponent-amount"),
    pytest.param(raw_envelope(xml_form("transaction_settled", transaction(amount="NaN"))),
                 id="nan-amount"),
    pytest.param(raw_envelope(xml_form("transaction_settled", transaction(currency="DOLLARS"))),
                 id="bad-currency"),
    pytest.param(raw_envelope(xml_form("transaction_settled", transaction(tid=""))),
                 id="transaction-without-id"),
    pytest.param(raw_envelope(xml_form("dispute_opened", dispute("open").replace(
        "<id>dsp4nq8r</id>", "")), kind="dispute_opened"), id="dispute-without-id"),
    pytest.param(raw_envelope(xml_form("transaction_settled", transaction()), ref=None),
                 id="no-payment-reference"),
    pytest.param(raw_envelope(xml_form("transaction_settled", transaction()), ref="7p5x\nfbdm"),
                 id="payment-reference-with-a-line-break"),
    pytest.param(raw_envelope(payload_form(encode_payload(notification_xml(
        "transaction_settled", transaction(), timestamp="2026-09-21T14:10:25")))),
                 id="timestamp-without-zone"),
    pytest.param(raw_envelope(payload_form(encode_payload(notification_xml(
        "transaction_settled", transaction(), timestamp="soon")))), id="not-a-timestamp"),
]


@pytest.mark.parametrize("env", MALFORMED)
def test_malformed_braintree_payloads_are_poison(env: Envelope) -> None:
    with pytest.raises(NormalizeError):
        normalize(env)


# --- end to end over the simulator ----------------------------------------------------------


def money_invariants(events: list[PaymentEvent]) -> None:
    """Refunds <= captures <= authorised where known; running totals never go down; one
    currency per payment; an operation counts once."""
    totals: dict[str, int] = defaultdict(int)
    running: dict[str, int] = {}
    operations: set[tuple[str, str | None]] = set()
    assert len({e.currency for e in events if e.currency is not None}) <= 1
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
        for event in sim.lifecycle(random.Random(seed), NOW):
            record, env = await delivered(sim.sign([event], ENDPOINT, NOW).body)
            canonical = normalize(env)
            assert canonical is not None, env.event_type  # the simulator sends mapped kinds
            assert canonical.payment_id.encode() == record.key == env.partition_key.encode()
            assert canonical.payment_id == f"braintree:{event.payment_ref}"
            assert_valid(canonical)
            events.append(canonical)
            seen.add(canonical.type)
        money_invariants(events)
        disputed = [e for e in events if e.type.startswith("dispute.")]
        captured = [e for e in events if e.type == "payment.captured"]
        if disputed:  # the disputed amount is the sale's, on the sale's payment
            assert {e.amount for e in disputed} == {captured[0].amount}
    assert seen == {"payment.authorized", "payment.captured", "payment.capture_failed",
                    "dispute.opened", "dispute.won", "dispute.lost"}


# --- arbitrary payloads ---------------------------------------------------------------------

KINDS = st.sampled_from(["transaction_settled", "transaction_settlement_declined",
                         "refund_failed", "dispute_opened", "dispute_won", "dispute_expired",
                         "local_payment_completed", "local_payment_funded"])
TEXT = st.text(max_size=12)


@st.composite
def subjects(draw: st.DrawFn) -> str:
    """A transaction, dispute or local payment with arbitrary (escaped or raw) field values."""
    value = draw(st.one_of(TEXT.map(escape), TEXT,
                           st.sampled_from(["25.00", "1500", "0", "-1", "1.999", "USD", "JPY",
                                            "credit", "sale", "retrieval", ""])))
    shape = draw(st.sampled_from([
        lambda v: transaction(tid=v), lambda v: transaction(amount=v),
        lambda v: transaction(currency=v), lambda v: transaction(kind=v, refunded="7p5xfbdm"),
        lambda v: transaction(kind="credit", refunded=v), lambda v: dispute("open", kind=v),
        lambda v: dispute("open", disputed=v), lambda v: local_payment(v or "x"),
        lambda v: v,
    ]))
    return str(shape(value))


@settings(max_examples=300)
@given(kind=KINDS, envelope_kind=st.none() | KINDS, subject=subjects(),
       timestamp=st.sampled_from([TIMESTAMP, "2026-09-21T14:10:25+05:30", "x", ""]),
       ref=st.none() | st.text(min_size=1, max_size=20))
def test_arbitrary_braintree_notifications_raise_nothing_but_normalize_error(
        kind: str, envelope_kind: str | None, subject: str, timestamp: str,
        ref: str | None) -> None:
    body = payload_form(base64.b64encode(notification_xml(kind, subject, timestamp)))
    env = raw_envelope(body, kind=envelope_kind or kind, ref=ref)
    try:
        canonical = normalize(env)
    except NormalizeError:
        return
    if canonical is not None:
        assert canonical.payment_id == f"braintree:{ref}" == env.partition_key
        assert_valid(canonical)


@given(raw=st.binary(max_size=300), kind=KINDS)
def test_arbitrary_form_bodies_raise_nothing_but_normalize_error(raw: bytes, kind: str) -> None:
    with contextlib.suppress(NormalizeError):
        normalize(raw_envelope(raw, kind=kind))


@given(document=st.binary(max_size=300) | st.text(max_size=300).map(str.encode), kind=KINDS)
def test_arbitrary_decoded_payloads_raise_nothing_but_normalize_error(
        document: bytes, kind: str) -> None:
    with contextlib.suppress(NormalizeError):
        normalize(raw_envelope(payload_form(base64.b64encode(document)), kind=kind))


def test_a_settlement_expects_no_authorization_but_a_refund_still_waits_for_its_capture() -> None:
    settled = normalize(raw_envelope(form("transaction_settled", transaction())))
    assert settled is not None
    assert (settled.type, settled.authorization_expected) == ("payment.captured", False)
    credit = transaction("cr1", kind="credit", refunded="7p5xfbdm", amount="5.00")
    refunded = normalize(raw_envelope(form("transaction_settled", credit), ref="7p5xfbdm"))
    assert refunded is not None
    assert (refunded.type, refunded.authorization_expected) == ("payment.refunded", True)
