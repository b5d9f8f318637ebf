"""Generic HMAC senders' events to canonical payment events through the canonical payload
convention: the module named ``hmac`` shadows nothing, event types and ids from headers or fields,
the convention's table over the simulator's shape, malformed payloads (NormalizeError and nothing
else), the simulator's lifecycles end to end under several endpoint configurations, and arbitrary
payloads. The convention's every rule is tested in ``test_normalize_standard.py``."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib
import random
import subprocess
import sys
import types
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers import state as sm
from consumers.errors import NormalizeError
from consumers.normalize import PROVIDERS, normalizer
from consumers.normalize import normalize as dispatch
from consumers.normalize.hmac import normalize
from ingest.schemes import RawRequest, build_scheme
from payhooks.config import EndpointSettings, Secret
from payhooks.sim import hmac as sim
from payhooks.sim.base import SimEvent
from schemas import registry
from schemas.envelope import Envelope
from schemas.event import EVENT_TYPES, PaymentEvent
from tests.unit import normalize_support as support

NOW = 1_790_000_000
RECEIVED = "2026-09-21T12:00:05.000Z"
APPLIED_AT = datetime.fromtimestamp(NOW + 60, UTC)
WINDOW = timedelta(minutes=15)
EVENT_ID = "evt_b0Y2kQz7Rj9LmWc4Xp1sTn8V"
PAYMENT = "pay_Qm3Zx8Lk2Wn7Rb4Tc9Vf1Hd6"
VALIDATOR = jsonschema.Draft202012Validator(registry.load("payhooks.event.v1"),
                                            format_checker=jsonschema.FormatChecker())
REPO = Path(__file__).resolve().parents[2]


def assert_valid(event: PaymentEvent) -> None:
    VALIDATOR.validate(orjson.loads(event.to_json()))


def envelope(body: Any, kind: str, *, payment_ref: str | None = PAYMENT,
             event_id: str = EVENT_ID, raw: bytes | None = None) -> Envelope:
    return Envelope(
        delivery_id="dlv_1", endpoint="shop", provider="hmac", event_id=event_id,
        event_type=kind, payment_ref=payment_ref, received_at=RECEIVED, key_index=0,
        payload=raw if raw is not None else orjson.dumps(body),
    )


def sender_event(kind: str, **data: Any) -> dict[str, Any]:
    """What :mod:`payhooks.sim.hmac` sends: ``{"id", "type", "created_at", "data"}``."""
    return {"id": EVENT_ID, "type": kind, "created_at": "2026-09-21T11:59:00Z",
            "data": {"payment_id": PAYMENT, **data}}


# --- the module's name ----------------------------------------------------------------------------


def test_import_hmac_is_the_standard_library_beside_the_hmac_normaliser() -> None:
    provider_module = importlib.import_module("consumers.normalize.hmac")
    for provider in PROVIDERS:  # every normaliser the worker may load, then the scheme
        with contextlib.suppress(NormalizeError):
            normalizer(provider)
    generic_hmac = importlib.import_module("ingest.schemes.generic_hmac")
    assert sys.modules["hmac"] is hmac
    assert provider_module is not hmac
    assert Path(str(hmac.__file__)).parent != Path(str(provider_module.__file__)).parent
    assert generic_hmac.signature(b"body", "key") == hmac.new(b"key", b"body",
                                                              hashlib.sha256).hexdigest()


def test_a_fresh_interpreter_importing_the_normaliser_first_still_gets_the_stdlib() -> None:
    code = ("import consumers.normalize.hmac as provider, consumers.normalize as n;"
            "n.normalizer('hmac');"
            "import hmac, hashlib, sysconfig, pathlib;"
            "assert provider is not hmac;"
            "assert pathlib.Path(hmac.__file__).parent == pathlib.Path("
            "sysconfig.get_paths()['stdlib']);"
            "assert hmac.new(b'k', b'b', hashlib.sha256).digest() == "
            "hmac.digest(b'k', b'b', 'sha256')")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


# --- event types and ids as the scheme extracted them ---------------------------------------------


def test_the_type_of_the_envelope_decides_not_the_body() -> None:
    # an endpoint reading the type from a header: the body's own ``type`` (if any) is not consulted
    body = sender_event("order.updated", amount=1299, currency="EUR")
    event = normalize(envelope(body, "payment.authorized"))
    assert event is not None
    assert (event.type, event.provider_event_type) == ("payment.authorized", "payment.authorized")
    assert normalize(envelope(sender_event("payment.authorized"), "orders/create")) is None


def test_a_derived_event_id_becomes_the_canonical_id() -> None:
    body = orjson.dumps(sender_event("payment.captured", amount=5, currency="EUR",
                                     operation_id="cap_1"))
    derived = f"sha256:{hashlib.sha256(body).hexdigest()}"
    event = normalize(envelope(None, "payment.captured", event_id=derived, raw=body))
    assert event is not None
    assert (event.event_id, event.provider_event_id) == (f"hmac:{derived}", derived)
    assert_valid(event)


def test_a_shopify_style_form_body_of_an_unmapped_topic_is_none() -> None:
    assert normalize(envelope(None, "orders/create", raw=b"id=820982911946154508")) is None
    assert normalize(envelope(None, "", raw=b"\x00\xff")) is None


def test_an_unconfigured_event_type_maps_nothing() -> None:
    assert normalize(envelope(sender_event("payment.captured", amount=5, currency="EUR"), "")) \
        is None


# --- the convention over the sender's shape -------------------------------------------------------

TABLE: dict[str, tuple[dict[str, Any], tuple[str, int | None, str | None, str | None, str | None]]]
TABLE = {
    "authorised": (sender_event("payment.authorized", amount=4999, currency="USD"),
                   ("payment.authorized", 4999, "total", "USD", None)),
    "captured in part": (sender_event("payment.captured", amount=2499, currency="USD",
                                      operation_id="cap_7"),
                         ("payment.captured", 2499, "operation", "USD", "cap_7")),
    "refunded": (sender_event("payment.refunded", amount=100, currency="JPY",
                              operation_id="re_3"),
                 ("payment.refunded", 100, "operation", "JPY", "re_3")),
    "canceled": (sender_event("payment.canceled", amount=4999, currency="USD"),
                 ("payment.canceled", 4999, "total", "USD", None)),
    "declined": (sender_event("payment.authorization_failed", amount=4999, currency="USD",
                              reason="card_declined"),
                 ("payment.authorization_failed", 4999, "total", "USD", None)),
    "dispute lost": (sender_event("dispute.lost", amount=4999, currency="USD",
                                  operation_id="dp_1"),
                     ("dispute.lost", 4999, "operation", "USD", "dp_1")),
    "capture failed without an amount": (sender_event("payment.capture_failed",
                                                      operation_id="cap_8"),
                                         ("payment.capture_failed", None, None, None, "cap_8")),
}


@pytest.mark.parametrize("case", TABLE)
def test_sender_payloads_map_to_their_canonical_fields(case: str) -> None:
    body, expected = TABLE[case]
    env = envelope(body, body["type"])
    event = normalize(env)
    assert event is not None
    assert (event.type, event.amount, event.amount_scope, event.currency,
            event.operation_id) == expected
    assert (event.event_id, event.provider, event.endpoint, event.payment_id) == (
        f"hmac:{EVENT_ID}", "hmac", "shop", f"hmac:{PAYMENT}")
    assert (event.occurred_at, event.received_at, event.delivery_id) == (
        "2026-09-21T11:59:00.000Z", RECEIVED, "dlv_1")
    assert dispatch(env) == event
    assert_valid(event)


MALFORMED: dict[str, Envelope] = {
    "a canonical type over a form body": envelope(None, "payment.captured", raw=b"amount=100"),
    "amount is a float": envelope(sender_event("payment.captured", amount=10.5, currency="EUR"),
                                  "payment.captured"),
    "amount is a decimal string": envelope(
        sender_event("payment.captured", amount="10.50", currency="EUR"), "payment.captured"),
    "another payment than the envelope's": envelope(
        sender_event("payment.captured") | {"data": {"payment_id": "pay_other"}},
        "payment.captured"),
    "no payment anywhere": envelope({"type": "payment.captured", "data": {}},
                                    "payment.captured", payment_ref=None),
    "created_at is not a time": envelope(sender_event("payment.captured") | {"created_at": "now"},
                                         "payment.captured"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_payloads_of_canonical_types_are_normalize_errors(case: str) -> None:
    with pytest.raises(NormalizeError):
        normalize(MALFORMED[case])


# --- the simulator, end to end --------------------------------------------------------------------

#: endpoint options of the configurations a generic sender can be received with
STYLES: dict[str, dict[str, Any]] = {
    "ids, types and references from the body": {
        "header": "X-Signature", "digest": "sha512", "prefix": "v1=", "signed_prefix": "payhooks:",
        "event_id_field": "id", "event_type_field": "type", "payment_ref_field": "data.payment_id"},
    "ids and types from headers, Shopify style": {
        "header": "X-Shopify-Hmac-Sha256", "encoding": "base64",
        "event_id_header": "X-Shopify-Webhook-Id", "event_type_header": "X-Shopify-Topic",
        "payment_ref_field": "data.payment_id"},
    "derived ids, types from the body": {
        "header": "X-Signature", "event_type_field": "type",
        "payment_ref_field": "data.payment_id"},
}


def sim_endpoint(options: dict[str, Any]) -> EndpointSettings:
    return EndpointSettings(name="shop", provider="hmac", secrets=(Secret("shpss_5f0c1d2e3a4b"),),
                            options=types.MappingProxyType(options))


async def normalized_lifecycle(endpoint: EndpointSettings, seed: int
                               ) -> list[tuple[SimEvent, Envelope, PaymentEvent | None]]:
    scheme = build_scheme(endpoint)
    out = []
    for index, sim_event in enumerate(sim.lifecycle(random.Random(seed), NOW)):
        signed = sim.sign([sim_event], endpoint, NOW)
        [(record, env)] = await support.delivered(
            endpoint, RawRequest(signed.body, signed.headers), NOW, received_at=RECEIVED,
            delivery_id=f"dlv_{seed}_{index}",
            traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", scheme=scheme)
        assert record.key == env.partition_key.encode()
        out.append((sim_event, env, dispatch(env)))
    return out


@pytest.mark.parametrize("style", STYLES)
async def test_simulated_lifecycles_normalise_end_to_end_with_money_invariants(style: str
                                                                               ) -> None:
    endpoint = sim_endpoint(STYLES[style])
    seen: set[str] = set()
    event_ids: set[str] = set()
    for seed in range(200):
        totals: dict[str, int] = defaultdict(int)
        currencies = set()
        triples = await normalized_lifecycle(endpoint, seed)
        for sim_event, env, event in triples:
            assert event is not None
            assert_valid(event)
            data = sim_event.event["data"]
            assert event.payment_id == env.partition_key == f"hmac:{sim_event.payment_ref}"
            assert event.event_id not in event_ids
            event_ids.add(event.event_id)
            if "derived" not in style:
                assert event.event_id == f"hmac:{sim_event.event_id}"
            assert (event.type, event.amount, event.currency, event.operation_id,
                    event.occurred_at) == (sim_event.kind, data["amount"], data["currency"],
                                           data.get("operation_id"),
                                           sim_event.event["created_at"])
            assert event.amount is not None
            if event.amount_scope == "operation":
                totals[event.type] += event.amount
            else:
                totals[event.type] = max(totals[event.type], event.amount)
            currencies.add(event.currency)
            seen.add(event.type)
        assert len(currencies) == 1
        assert totals["payment.captured"] <= totals["payment.authorized"]
        assert totals["payment.refunded"] <= totals["payment.captured"]
        assert totals["dispute.opened"] <= totals["payment.captured"]
        assert_settles([e for _, _, e in triples if e is not None], totals, seed)
    assert seen == EVENT_TYPES - {"payment.capture_failed", "payment.refund_failed"}


async def test_an_endpoint_that_extracts_no_type_leaves_every_event_on_raw() -> None:
    for _, _, event in await normalized_lifecycle(sim_endpoint({"header": "X-Sig"}), 5):
        assert event is None


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

KEYS = ["id", "type", "created_at", "timestamp", "data", "payment_id", "amount", "currency",
        "operation_id", "amount_scope"]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
    | st.sampled_from(["EUR", "operation", "total", PAYMENT, "2026-09-21T11:59:00Z"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner,
                                                                max_size=6),
    max_leaves=25,
)


@given(doc=JSON, kind=st.sampled_from(sorted(EVENT_TYPES)) | st.text(max_size=20),
       payment_ref=st.none() | st.just(PAYMENT))
def test_any_payload_is_an_event_none_or_a_normalize_error(doc: Any, kind: str,
                                                           payment_ref: str | None) -> None:
    env = envelope(None, kind, payment_ref=payment_ref, raw=orjson.dumps(doc))
    try:
        event = normalize(env)
    except NormalizeError:
        assert kind in EVENT_TYPES
        return
    assert (event is None) == (kind not in EVENT_TYPES)
    if event is not None:
        assert_valid(event)
        assert event.provider == "hmac"
        if payment_ref is not None:
            assert event.payment_id == env.partition_key
