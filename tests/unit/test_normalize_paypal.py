"""PayPal events become canonical events: decimal major units to exact minor units, captures and
refunds keyed by their own ids, the payment by the order, and the documented capture alias for
refunds and disputes that name no order.

Payloads follow PayPal's webhook samples, one real PAYMENT.CAPTURE.REFUNDED delivery (also used
by the scheme's tests) and our simulator. The realistic ones travel the receiver's whole pure
path, signed with a throwaway PKI the scheme is told to trust (tests/unit/paypal_pki.py).
"""

from __future__ import annotations

import datetime as dt
import functools
import random
import types
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.errors import NormalizeError
from consumers.normalize import normalizer, paypal
from ingest.schemes import RawRequest, build_scheme
from payhooks.config import EndpointSettings, Secret
from payhooks.sim import paypal as sim
from payhooks.sim.base import SimEvent
from schemas.envelope import Envelope
from tests.unit import normalize_support as support
from tests.unit.paypal_pki import Issued, ca, signing_cert

NOW = 1_790_000_000
AT = dt.datetime.fromtimestamp(NOW, dt.UTC)
WEBHOOK_ID = "8PT597110X687430L"
CERT_URL = "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-0000norm"
RECEIVED_AT = "2026-09-21T12:13:20.000Z"
ORDER, AUTH, CAPTURE, REFUND = ("5O190127TN364715T", "0VF52814937998046", "3C679366HH908993F",
                                "1Y107995YT783435V")


@functools.cache
def pki() -> tuple[Issued, bytes, bytes]:
    """A PayPal-shaped signing leaf, the chain served at CERT_URL and the root to trust."""
    root = ca("payhooks Normaliser Test Root CA", at=AT)
    intermediate = ca("payhooks Normaliser Test EV CA", issuer=root, at=AT)
    leaf = signing_cert(intermediate, at=AT, key_label="paypal-normaliser-signing")
    return leaf, leaf.pem + intermediate.pem, root.pem


@pytest.fixture
def endpoint(tmp_path: Path) -> EndpointSettings:
    """A PayPal endpoint trusting the throwaway PKI, its certificate served from disk (no
    network), with the simulator's signing options."""
    leaf, chain, root = pki()
    cert_file = tmp_path / "paypal-cert.pem"
    cert_file.write_bytes(chain)
    return EndpointSettings(
        name="paypal", provider="paypal", secrets=(Secret("unused"),),
        options=types.MappingProxyType({
            "webhook_id": WEBHOOK_ID, "trust_store": root.decode(),
            "cert_files": {CERT_URL: str(cert_file)},
            "sim_signing_key": leaf.key_pem.decode(), "sim_cert_url": CERT_URL,
        }),
    )


def envelope_of(raw: dict[str, Any] | bytes, *, event_type: str | None = None,
                payment_ref: str | None = ORDER) -> Envelope:
    """An envelope built by hand, for payloads the scheme itself would refuse."""
    payload = raw if isinstance(raw, bytes) else orjson.dumps(raw)
    kind = event_type or (raw.get("event_type") if isinstance(raw, dict) else None) or "X"
    return Envelope(delivery_id="dlv-1", endpoint="paypal", provider="paypal",
                    event_id="WH-58D329510W468432D-8HN650336L201105X", event_type=str(kind),
                    payment_ref=payment_ref, received_at=RECEIVED_AT, key_index=0,
                    payload=payload)


async def received(raw: dict[str, Any] | bytes, endpoint: EndpointSettings) -> Envelope:
    """``raw`` signed as PayPal signs (by the simulator's signer), verified by the receiver's
    scheme and enveloped."""
    body = raw if isinstance(raw, bytes) else orjson.dumps(raw)
    kind = orjson.loads(body)["event_type"]
    request = sim.sign([SimEvent(payment_ref="", event_id="", kind=kind,
                                 event=orjson.loads(body))], endpoint, NOW)
    [(record, envelope)] = await support.delivered(
        endpoint, RawRequest(request.body, request.headers), NOW, received_at=RECEIVED_AT)
    assert record.key.decode() == envelope.partition_key
    return envelope


conforms = support.conforms


# -- realistic events --------------------------------------------------------------------------

def webhook(kind: str, resource_type: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {"id": "WH-58D329510W468432D-8HN650336L201105X", "event_version": "1.0",
            "create_time": "2026-09-21T14:13:19.123Z", "resource_type": resource_type,
            "resource_version": "2.0", "event_type": kind, "summary": "a PayPal event",
            "resource": resource, "links": [{
                "href": "https://api.paypal.com/v1/notifications/webhooks-events/WH-58D",
                "rel": "self", "method": "GET"}]}


def money_(value: str, currency: str = "USD") -> dict[str, str]:
    return {"currency_code": currency, "value": value}


def authorization(status: str = "CREATED", value: str = "10.99", currency: str = "USD"
                  ) -> dict[str, Any]:
    href = f"https://api.paypal.com/v2/payments/authorizations/{AUTH}"
    return {"id": AUTH, "status": status, "amount": money_(value, currency),
            "expiration_time": "2026-10-20T14:13:19Z",
            "supplementary_data": {"related_ids": {"order_id": ORDER}},
            "links": [{"href": href, "rel": "self", "method": "GET"},
                      {"href": f"{href}/capture", "rel": "capture", "method": "POST"}]}


def capture(status: str = "COMPLETED", value: str = "10.99", currency: str = "USD",
            capture_id: str = CAPTURE) -> dict[str, Any]:
    return {"id": capture_id, "status": status, "amount": money_(value, currency),
            "final_capture": True, "seller_protection": {"status": "ELIGIBLE"},
            "supplementary_data": {"related_ids": {"order_id": ORDER, "authorization_id": AUTH}},
            "links": [{"href": f"https://api.paypal.com/v2/payments/captures/{capture_id}",
                       "rel": "self", "method": "GET"}]}


def refund(value: str = "5.00", *, order: str | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "id": REFUND, "status": "COMPLETED", "amount": money_(value),
        "seller_payable_breakdown": {"total_refunded_amount": money_(value)},
        "links": [{"href": f"https://api.paypal.com/v2/payments/refunds/{REFUND}", "rel": "self",
                   "method": "GET"},
                  {"href": f"https://api.paypal.com/v2/payments/captures/{CAPTURE}", "rel": "up",
                   "method": "GET"}]}
    if order is not None:
        resource["supplementary_data"] = {"related_ids": {"order_id": order}}
    return resource


def dispute(outcome: str | None = None, *, amount: str | None = "3.00") -> dict[str, Any]:
    resource: dict[str, Any] = {
        "dispute_id": "PP-D-4012", "create_time": "2026-09-21T14:13:19.000Z",
        "disputed_transactions": [{"seller_transaction_id": CAPTURE,
                                   "seller": {"merchant_id": "QG3ECYYLJ2A48"},
                                   "gross_amount": money_("10.99")}],
        "reason": "MERCHANDISE_OR_SERVICE_NOT_RECEIVED",
        "status": "RESOLVED" if outcome else "OPEN",
        "dispute_life_cycle_stage": "INQUIRY", "dispute_channel": "INTERNAL"}
    if amount is not None:
        resource["dispute_amount"] = money_(amount)
    if outcome is not None:
        resource["dispute_outcome"] = {"outcome_code": outcome, "amount_refunded": money_("3.00")}
    return resource


#: one real PAYMENT.CAPTURE.REFUNDED as PayPal sent it (see tests/unit/test_paypal_scheme.py)
REAL_REFUND = (
    b'{"id":"WH-1GE84257G0350133W-6RW800890C634293G","event_version":"1.0","create_time":"2018-08'
    b'-15T19:14:04.543Z","resource_type":"refund","resource_version":"2.0","event_type":"PAYMENT.C'
    b'APTURE.REFUNDED","summary":"A $ 0.99 USD capture payment was refunded","resource":{"id":"1Y1'
    b'07995YT783435V","amount":{"currency_code":"USD","value":"0.99"},"seller_payable_breakdown":{'
    b'"gross_amount":{"currency_code":"USD","value":"0.99"},"paypal_fee":{"currency_code":"USD","v'
    b'alue":"0.02"},"net_amount":{"currency_code":"USD","value":"0.97"},"total_refunded_amount":{"'
    b'currency_code":"USD","value":"1.98"}},"status":"COMPLETED","create_time":"2018-08-15T12:13:29'
    b'-07:00","update_time":"2018-08-15T12:13:29-07:00","links":[{"href":"https://api.paypal.com/v'
    b'2/payments/refunds/1Y107995YT783435V","rel":"self","method":"GET"},{"href":"https://api.payp'
    b'al.com/v2/payments/captures/0JF852973C016714D","rel":"up","method":"GET"}]},"links":[{"href"'
    b':"https://api.paypal.com/v1/notifications/webhooks-events/WH-1GE84257G0350133W-6RW800890C634'
    b'293G","rel":"self","method":"GET"},{"href":"https://api.paypal.com/v1/notifications/webhooks'
    b'-events/WH-1GE84257G0350133W-6RW800890C634293G/resend","rel":"resend","method":"POST"}]}'
)

Expected = tuple[str, int | None, str | None, str | None, str | None, str]  # ... cur, payment_id
BY_ORDER, BY_CAPTURE = f"paypal:{ORDER}", f"paypal:capture:{CAPTURE}"
TABLE: list[tuple[str, dict[str, Any], Expected]] = [
    ("authorization", webhook("PAYMENT.AUTHORIZATION.CREATED", "authorization", authorization()),
     ("payment.authorized", 1099, "total", None, "USD", BY_ORDER)),
    ("authorization in JPY", webhook("PAYMENT.AUTHORIZATION.CREATED", "authorization",
                                     authorization(value="1500", currency="JPY")),
     ("payment.authorized", 1500, "total", None, "JPY", BY_ORDER)),
    ("authorization in KWD", webhook("PAYMENT.AUTHORIZATION.CREATED", "authorization",
                                     authorization(value="12.345", currency="KWD")),
     ("payment.authorized", 12345, "total", None, "KWD", BY_ORDER)),
    ("voided authorization", webhook("PAYMENT.AUTHORIZATION.VOIDED", "authorization",
                                     authorization("VOIDED")),
     ("payment.canceled", None, None, None, "USD", BY_ORDER)),
    ("capture", webhook("PAYMENT.CAPTURE.COMPLETED", "capture", capture()),
     ("payment.captured", 1099, "operation", CAPTURE, "USD", BY_ORDER)),
    ("partial capture in EUR", webhook("PAYMENT.CAPTURE.COMPLETED", "capture",
                                       capture(value="1000.00", currency="EUR")),
     ("payment.captured", 100000, "operation", CAPTURE, "EUR", BY_ORDER)),
    ("capture denied", webhook("PAYMENT.CAPTURE.DENIED", "capture", capture("DECLINED")),
     ("payment.capture_failed", None, None, CAPTURE, "USD", BY_ORDER)),
    ("capture declined", webhook("PAYMENT.CAPTURE.DECLINED", "capture", capture("DECLINED")),
     ("payment.capture_failed", None, None, CAPTURE, "USD", BY_ORDER)),
    ("refund naming only its capture", webhook("PAYMENT.CAPTURE.REFUNDED", "refund", refund()),
     ("payment.refunded", 500, "operation", REFUND, "USD", BY_CAPTURE)),
    ("refund naming its order", webhook("PAYMENT.CAPTURE.REFUNDED", "refund",
                                        refund(order=ORDER)),
     ("payment.refunded", 500, "operation", REFUND, "USD", BY_ORDER)),
    ("dispute created", webhook("CUSTOMER.DISPUTE.CREATED", "dispute", dispute()),
     ("dispute.opened", 300, "operation", "PP-D-4012", "USD", BY_CAPTURE)),
    ("dispute created without an amount", webhook("CUSTOMER.DISPUTE.CREATED", "dispute",
                                                  dispute(amount=None)),
     ("dispute.opened", None, None, "PP-D-4012", None, BY_CAPTURE)),
    *[(f"dispute resolved {code}", webhook("CUSTOMER.DISPUTE.RESOLVED", "dispute", dispute(code)),
       (canonical, 300, "operation", "PP-D-4012", "USD", BY_CAPTURE))
      for code, canonical in [("RESOLVED_SELLER_FAVOUR", "dispute.won"),
                              ("CANCELED_BY_BUYER", "dispute.won"),
                              ("DENIED", "dispute.won"),
                              ("RESOLVED_WITH_PAYOUT", "dispute.won"),
                              ("RESOLVED_BUYER_FAVOUR", "dispute.lost"),
                              ("ACCEPTED", "dispute.lost")]],
]


@pytest.mark.parametrize(("raw", "expected"), [(raw, exp) for _, raw, exp in TABLE],
                         ids=[name for name, _, _ in TABLE])
async def test_realistic_events_map_to_canonical_events(
        raw: dict[str, Any], expected: Expected, endpoint: EndpointSettings) -> None:
    envelope = await received(raw, endpoint)
    event = normalizer("paypal")(envelope)
    assert event is not None
    conforms(event)
    assert (event.type, event.amount, event.amount_scope, event.operation_id, event.currency,
            event.payment_id) == expected
    if event.payment_id == BY_ORDER:
        assert event.payment_id == envelope.partition_key
    assert event.event_id == "paypal:WH-58D329510W468432D-8HN650336L201105X"
    assert event.provider_event_type == raw["event_type"]
    assert event.occurred_at == "2026-09-21T14:13:19.123Z"
    assert (event.received_at, event.delivery_id, event.endpoint) == (
        RECEIVED_AT, "dlv-1", "paypal")


async def test_a_real_refund_delivery_is_aliased_to_its_capture(endpoint: EndpointSettings
                                                                ) -> None:
    envelope = await received(REAL_REFUND, endpoint)
    assert envelope.partition_key == "paypal:1Y107995YT783435V"  # the refund: no order named
    event = paypal.normalize(envelope)
    assert event is not None
    assert (event.type, event.amount, event.currency, event.operation_id, event.payment_id) == (
        "payment.refunded", 99, "USD", "1Y107995YT783435V", "paypal:capture:0JF852973C016714D")
    assert event.occurred_at == "2018-08-15T19:14:04.543Z"


def test_a_dispute_resolved_without_an_outcome_maps_to_none() -> None:
    raw = webhook("CUSTOMER.DISPUTE.RESOLVED", "dispute", dispute("NONE"))
    assert paypal.normalize(envelope_of(raw, payment_ref=None)) is None


@pytest.mark.parametrize("kind", [
    "PAYMENT.CAPTURE.PENDING", "PAYMENT.CAPTURE.REVERSED", "CHECKOUT.ORDER.APPROVED",
    "CHECKOUT.ORDER.COMPLETED", "CUSTOMER.DISPUTE.UPDATED", "PAYMENT.SALE.COMPLETED",
    "PAYMENT.REFERENCED-PAYOUT-ITEM.COMPLETED", "RISK.DISPUTE.CREATED",
])
def test_types_without_a_canonical_type_map_to_none(kind: str) -> None:
    assert paypal.normalize(envelope_of(webhook(kind, "capture", capture()))) is None


def test_unmapped_types_are_not_even_read() -> None:
    assert paypal.normalize(envelope_of(b"not json", event_type="CHECKOUT.ORDER.APPROVED")) is None

_with = support.with_value


def _without(raw: dict[str, Any], *path: str) -> dict[str, Any]:
    copy = orjson.loads(orjson.dumps(raw))
    node = copy
    for name in path[:-1]:
        node = node[name]
    del node[path[-1]]
    return dict(copy)


CAPTURED = webhook("PAYMENT.CAPTURE.COMPLETED", "capture", capture())
REFUNDED = webhook("PAYMENT.CAPTURE.REFUNDED", "refund", refund())
DISPUTED = webhook("CUSTOMER.DISPUTE.RESOLVED", "dispute", dispute("RESOLVED_BUYER_FAVOUR"))
MALFORMED: list[tuple[str, Envelope]] = [
    ("missing amount", envelope_of(_without(CAPTURED, "resource", "amount"))),
    ("amount as a JSON number", envelope_of(_with(CAPTURED, 10.99, "resource", "amount",
                                                  "value"))),
    ("amount with more decimals than USD", envelope_of(_with(CAPTURED, "10.999", "resource",
                                                             "amount", "value"))),
    ("fractional JPY", envelope_of(_with(_with(CAPTURED, "JPY", "resource", "amount",
                                               "currency_code"), "15.5", "resource", "amount",
                                         "value"))),
    ("negative amount", envelope_of(_with(CAPTURED, "-1.00", "resource", "amount", "value"))),
    ("amount beyond a signed 64-bit integer",
     envelope_of(_with(CAPTURED, "92233720368547758.08", "resource", "amount", "value"))),
    ("exponent notation", envelope_of(_with(CAPTURED, "1e3", "resource", "amount", "value"))),
    ("not a number", envelope_of(_with(CAPTURED, "NaN", "resource", "amount", "value"))),
    ("bad currency", envelope_of(_with(CAPTURED, "DOLLAR", "resource", "amount",
                                       "currency_code"))),
    ("missing capture id", envelope_of(_without(CAPTURED, "resource", "id"))),
    ("missing create_time", envelope_of(_without(CAPTURED, "create_time"))),
    ("create_time without offset", envelope_of(_with(CAPTURED, "2026-09-21T14:13:19",
                                                     "create_time"))),
    ("no resource", envelope_of(_without(CAPTURED, "resource"))),
    ("no order for a capture", envelope_of(CAPTURED, payment_ref=None)),
    ("refund naming neither order nor capture",
     envelope_of(_with(REFUNDED, [], "resource", "links"), payment_ref=REFUND)),
    ("refund whose up link is no capture",
     envelope_of(_with(REFUNDED, "https://api.paypal.com/v2/checkout/orders/X", "resource",
                       "links", 1, "href"), payment_ref=REFUND)),
    ("dispute naming no capture", envelope_of(_with(DISPUTED, [], "resource",
                                                    "disputed_transactions"), payment_ref=None)),
    ("dispute without its id", envelope_of(_without(DISPUTED, "resource", "dispute_id"),
                                           payment_ref=None)),
    ("resolved dispute without outcome", envelope_of(_without(DISPUTED, "resource",
                                                              "dispute_outcome"),
                                                     payment_ref=None)),
    ("resolved dispute with an unknown outcome",
     envelope_of(_with(DISPUTED, "SPLIT_DECISION", "resource", "dispute_outcome",
                       "outcome_code"), payment_ref=None)),
    ("payload is not JSON", envelope_of(b"<xml/>", event_type="PAYMENT.CAPTURE.COMPLETED")),
    ("payload is null", envelope_of(b"null", event_type="PAYMENT.CAPTURE.REFUNDED")),
]


@pytest.mark.parametrize("envelope", [e for _, e in MALFORMED], ids=[n for n, _ in MALFORMED])
def test_malformed_events_raise_normalize_error(envelope: Envelope) -> None:
    with pytest.raises(NormalizeError):
        paypal.normalize(envelope)


# -- simulated lifecycles, end to end ----------------------------------------------------------


async def test_simulated_lifecycles_keep_money_invariants_once_aliases_resolve(
        endpoint: EndpointSettings) -> None:
    rng = random.Random(20260921)
    scheme = build_scheme(endpoint)
    seen: set[str] = set()
    aliased = 0
    for _ in range(150):
        lifecycle = sim.lifecycle(rng, NOW)
        order_id = f"paypal:{lifecycle[0].payment_ref}"
        events, captures = [], {}
        for sim_event in lifecycle:
            request = sim.sign([sim_event], endpoint, NOW)
            [(record, envelope)] = await support.delivered(
                endpoint, RawRequest(request.body, request.headers), NOW, received_at=RECEIVED_AT,
                delivery_id="dlv-2", traceparent="00-" + "3" * 32 + "-" + "4" * 16 + "-01",
                scheme=scheme)
            event = paypal.normalize(envelope)
            assert event is not None, f"{envelope.event_type} is simulated but unmapped"
            conforms(event)
            if event.payment_id.startswith(paypal.CAPTURE_ALIAS_PREFIX):
                # the documented alias: a refund or dispute naming its capture, not the order
                assert event.type in {"payment.refunded", "dispute.opened", "dispute.won",
                                      "dispute.lost"}
                aliased += 1
            else:
                assert event.payment_id == envelope.partition_key == record.key.decode()
                assert event.payment_id == order_id
            if event.type in ("payment.captured", "payment.capture_failed"):
                assert event.operation_id is not None
                captures[event.operation_id] = event.payment_id
            events.append(event)
            seen.add(event.type)
        # what the worker does: resolve each alias to the order of that capture
        for event in events:
            if event.payment_id.startswith(paypal.CAPTURE_ALIAS_PREFIX):
                assert captures[event.payment_id.removeprefix(paypal.CAPTURE_ALIAS_PREFIX)] == (
                    order_id)
        support.money_invariants_hold(events)
    assert aliased > 0
    assert seen == {"payment.authorized", "payment.canceled", "payment.captured",
                    "payment.capture_failed", "payment.refunded", "dispute.opened",
                    "dispute.won", "dispute.lost"}


# -- anything at all ---------------------------------------------------------------------------

JSON = support.ANY_JSON
TYPES = st.sampled_from([*paypal._TYPES, "PAYMENT.CAPTURE.PENDING"])
REALISTIC = [e.event for e in sim.lifecycle(random.Random(5), NOW)] + [
    raw for _, raw, _ in TABLE] + [orjson.loads(REAL_REFUND)]


def _paths(node: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    paths = [prefix] if prefix else []
    if isinstance(node, dict):
        for name, child in node.items():
            paths += _paths(child, (*prefix, name))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            paths += _paths(child, (*prefix, index))
    return paths


def outcome_is_an_event_none_or_normalize_error(envelope: Envelope) -> None:
    support.outcome_is_an_event_none_or_normalize_error(paypal.normalize, envelope)


@settings(max_examples=300)
@given(payload=JSON, kind=TYPES, payment_ref=st.sampled_from([ORDER, None]))
def test_arbitrary_json_raises_nothing_but_normalize_error(payload: Any, kind: str,
                                                          payment_ref: str | None) -> None:
    outcome_is_an_event_none_or_normalize_error(
        envelope_of(orjson.dumps(payload), event_type=kind, payment_ref=payment_ref))


@settings(max_examples=300)
@given(data=st.data(), replacement=JSON, payment_ref=st.sampled_from([ORDER, None]))
def test_realistic_events_with_any_field_replaced_raise_nothing_but_normalize_error(
        data: st.DataObject, replacement: Any, payment_ref: str | None) -> None:
    raw = data.draw(st.sampled_from(REALISTIC))
    path = data.draw(st.sampled_from(_paths(raw)))
    outcome_is_an_event_none_or_normalize_error(
        envelope_of(_with(raw, replacement, *path), event_type=raw["event_type"],
                    payment_ref=payment_ref))


def test_a_capture_naming_no_authorization_expects_none() -> None:
    authorized = capture()
    immediate = capture()
    immediate["supplementary_data"] = {"related_ids": {"order_id": ORDER}}
    for resource, expected in ((authorized, True), (immediate, False)):
        raw = webhook("PAYMENT.CAPTURE.COMPLETED", "capture", resource)
        event = paypal.normalize(envelope_of(raw))
        assert event is not None
        assert (event.type, event.authorization_expected) == ("payment.captured", expected)
