"""Razorpay's scheme over raw bytes: genuine, tampered, rotated, event-id header, garbage headers.

Razorpay's own SDK (``razorpay.Client(...).utility.verify_webhook_signature``, no network needed)
is the independent oracle: it verifies what our signer produces and agrees with our verdicts.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import types

import orjson
import pytest
import razorpay as razorpay_sdk
from hypothesis import given
from hypothesis import strategies as st
from razorpay.errors import SignatureVerificationError

from ingest.errors import MalformedRequest, VerificationFailed
from ingest.schemes import RawRequest, build_scheme
from ingest.schemes.razorpay import (
    EVENT_ID_HEADER,
    HEADER,
    RazorpayScheme,
    payment_ref,
    signature,
)
from payhooks.config import ConfigError, EndpointSettings, Secret
from payhooks.sim import razorpay as razorpay_sim

NEW, OLD = "rzp-webhook-secret-new-5f0c1d", "rzp-webhook-secret-old-9a8b7c"
NOW = 1_790_000_000
EVENT_ID = "Ovpqyvyd6XtVBT"
BODY = orjson.dumps({
    "entity": "event", "account_id": "acc_BFQ7uQEaa7j2z7", "event": "payment.captured",
    "contains": ["payment"], "created_at": NOW,
    "payload": {"payment": {"entity": {"id": "pay_DESlfW9H8K9uqM", "entity": "payment",
                                       "amount": 100000, "currency": "INR",
                                       "status": "captured", "captured": True}}},
})
SDK = razorpay_sdk.Client(auth=("rzp_test_key", "rzp_test_key_secret")).utility


def scheme(*keys: str) -> RazorpayScheme:
    return RazorpayScheme(keys=tuple(k.encode() for k in keys))


def request(body: bytes, header: str | None, event_id: str | None = EVENT_ID) -> RawRequest:
    headers = {} if header is None else {HEADER: header}
    if event_id is not None:
        headers[EVENT_ID_HEADER] = event_id
    return RawRequest(body=body, headers=headers)


def endpoint(**options: object) -> EndpointSettings:
    return EndpointSettings(name="rzp", provider="razorpay", secrets=(Secret(NEW), Secret(OLD)),
                            options=types.MappingProxyType(options))


def sdk_accepts(body: bytes, header: str, secret: str = NEW) -> bool:
    try:
        return bool(SDK.verify_webhook_signature(body.decode(), header, secret))
    except SignatureVerificationError:
        return False


async def test_genuine_event_is_accepted_with_the_header_event_id() -> None:
    header = signature(BODY, NEW)
    assert sdk_accepts(BODY, header)
    verified = await scheme(NEW).verify(request(BODY, header), now=NOW)
    assert verified.key_index == 0
    assert [(e.event_id, e.event_type, e.payment_ref) for e in verified.events] == [
        (EVENT_ID, "payment.captured", "pay_DESlfW9H8K9uqM")]
    assert verified.events[0].payload == BODY


def test_our_signer_satisfies_razorpays_sdk_verifier() -> None:
    assert sdk_accepts(BODY, signature(BODY, NEW))
    assert not sdk_accepts(BODY, signature(BODY, NEW), secret=OLD)


async def test_old_key_of_the_ring_is_accepted_and_reported() -> None:
    header = signature(BODY, OLD)
    assert sdk_accepts(BODY, header, secret=OLD)
    assert (await scheme(NEW, OLD).verify(request(BODY, header), now=NOW)).key_index == 1


async def test_wrong_key_is_rejected() -> None:
    header = signature(BODY, "other")
    assert not sdk_accepts(BODY, header)
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW, OLD).verify(request(BODY, header), now=NOW)
    assert err.value.reason == "signature_mismatch"


@pytest.mark.parametrize("tamper", [
    lambda b: b.replace(b"100000", b"900000"),
    lambda b: b + b" ",
    lambda b: b[:-1],
    lambda b: orjson.dumps(orjson.loads(b), option=orjson.OPT_INDENT_2),
])
async def test_tampered_body_is_rejected(tamper: object) -> None:
    header = signature(BODY, NEW)
    body = tamper(BODY)  # type: ignore[operator]
    assert not sdk_accepts(body, header)
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW).verify(request(body, header), now=NOW)
    assert err.value.reason == "signature_mismatch"


async def test_tampered_signature_is_rejected() -> None:
    header = signature(BODY, NEW)
    flipped = ("0" if header[0] != "0" else "1") + header[1:]
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW).verify(request(BODY, flipped), now=NOW)
    assert err.value.reason == "signature_mismatch"


@pytest.mark.parametrize("header", [None, ""])
async def test_missing_signature_header_is_rejected(header: str | None) -> None:
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW).verify(request(BODY, header), now=NOW)
    assert err.value.reason == "missing_header"


@pytest.mark.parametrize("event_id", [None, ""])
async def test_missing_event_id_header_is_rejected(event_id: str | None) -> None:
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW).verify(request(BODY, signature(BODY, NEW), event_id), now=NOW)
    assert err.value.reason == "missing_header"


@pytest.mark.parametrize("header", [
    "garbage", "ab" * 31, "ab" * 33, "sha256=" + "ab" * 32, "ünïcødé☃" * 8, "zz" * 32,
])
async def test_malformed_signature_header_is_rejected(header: str) -> None:
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW).verify(request(BODY, header), now=NOW)
    assert err.value.reason == "malformed_header"


@pytest.mark.parametrize("event_id", ["with space", "ünïcødé", "x" * 129, "a/b", "a\x00b"])
async def test_malformed_event_id_header_is_rejected(event_id: str) -> None:
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW).verify(request(BODY, signature(BODY, NEW), event_id), now=NOW)
    assert err.value.reason == "malformed_header"


async def test_event_id_header_is_not_covered_by_the_signature() -> None:
    """Razorpay signs only the body: a changed event id still verifies (dedupe must not lean on
    it alone; running totals keep a re-sent body harmless)."""
    verified = await scheme(NEW).verify(request(BODY, signature(BODY, NEW), "Other1d"), now=NOW)
    assert verified.events[0].event_id == "Other1d"


async def test_failure_detail_holds_no_signature_key_or_body() -> None:
    header = signature(BODY, "other")
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW).verify(request(BODY, header), now=NOW)
    for secret in (NEW, header, BODY.decode(), EVENT_ID):
        assert secret not in err.value.detail


@pytest.mark.parametrize("body", [b"not json", b'["a"]', b'{"payload": {}}', b'{"event": ""}',
                                  b'{"event": 42}'])
async def test_verified_body_that_is_not_a_razorpay_event_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedRequest):
        await scheme(NEW).verify(request(body, signature(body, NEW)), now=NOW)


def _payload(**entities: dict[str, object]) -> dict[str, object]:
    return {name: {"entity": entity} for name, entity in entities.items()}


@pytest.mark.parametrize(("event", "ref"), [
    ({"event": "payment.authorized", "payload": _payload(payment={"id": "pay_1"})}, "pay_1"),
    ({"event": "payment.captured", "payload": _payload(payment={"id": "pay_2"})}, "pay_2"),
    ({"event": "refund.processed", "payload": _payload(
        refund={"id": "rfnd_1", "payment_id": "pay_3"}, payment={"id": "pay_3"})}, "pay_3"),
    ({"event": "refund.processed", "payload": _payload(
        refund={"id": "rfnd_1", "payment_id": "pay_4"})}, "pay_4"),
    ({"event": "payment.dispute.created", "payload": _payload(
        dispute={"id": "disp_1", "payment_id": "pay_5"})}, "pay_5"),
    ({"event": "payment.dispute.lost", "payload": _payload(
        dispute={"id": "disp_1"}, payment={"id": "pay_6"})}, "pay_6"),
    ({"event": "order.paid", "payload": _payload(order={"id": "order_1"},
                                                 payment={"id": "pay_7"})}, "pay_7"),
    ({"event": "settlement.processed", "payload": _payload(settlement={"id": "setl_1"})}, None),
    ({"event": "payment.captured", "payload": "nonsense"}, None),
    ({"payload": _payload(payment={"id": "pay_8"})}, None),
])
def test_payment_reference_is_the_razorpay_payment(event: dict[str, object], ref: str | None
                                                   ) -> None:
    assert payment_ref(event) == ref


def test_settings_build_the_scheme() -> None:
    built = build_scheme(endpoint())
    assert isinstance(built, RazorpayScheme)
    assert built.keys == (NEW.encode(), OLD.encode())


def test_unknown_option_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError) as err:
        RazorpayScheme.from_settings(endpoint(key_id="rzp_live_x"))
    assert err.value.key == "endpoints.rzp.key_id"


def test_empty_key_in_the_ring_is_a_config_error() -> None:
    settings = EndpointSettings(name="rzp", provider="razorpay", secrets=(Secret(NEW), Secret("")))
    with pytest.raises(ConfigError) as err:
        RazorpayScheme.from_settings(settings)
    assert err.value.key == "endpoints.rzp.secrets"


_HEADER_VALUES = st.one_of(
    st.text(max_size=80),
    st.binary(max_size=80).map(lambda b: b.decode("latin-1")),  # how Starlette decodes headers
    st.binary(min_size=32, max_size=32).map(bytes.hex),
)


@given(body=st.binary(max_size=512), header=_HEADER_VALUES,
       event_id=st.none() | _HEADER_VALUES)
def test_arbitrary_input_raises_only_typed_errors(body: bytes, header: str,
                                                  event_id: str | None) -> None:
    with contextlib.suppress(VerificationFailed, MalformedRequest):
        asyncio.run(scheme(NEW, OLD).verify(request(body, header, event_id), NOW))


@given(body=st.binary(max_size=512))
def test_arbitrary_body_signed_with_a_ring_key_raises_only_malformed_or_passes(body: bytes
                                                                              ) -> None:
    with contextlib.suppress(MalformedRequest):
        asyncio.run(scheme(NEW, OLD).verify(request(body, signature(body, OLD)), NOW))


@pytest.mark.parametrize("seed", range(20))
async def test_simulated_lifecycles_verify_with_the_endpoints_own_scheme(seed: int) -> None:
    settings = endpoint()
    built = RazorpayScheme.from_settings(settings)
    for event in razorpay_sim.lifecycle(random.Random(seed), NOW):
        signed = razorpay_sim.sign([event], settings, NOW)
        assert sdk_accepts(signed.body, signed.headers[HEADER])
        verified = await built.verify(RawRequest(signed.body, signed.headers), NOW)
        assert verified.key_index == 0
        assert [(e.event_id, e.event_type, e.payment_ref) for e in verified.events] == [
            (event.event_id, event.kind, event.payment_ref)]
