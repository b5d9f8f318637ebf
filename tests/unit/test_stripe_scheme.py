"""Stripe's scheme over raw bytes: genuine, tampered, rotated, stale, future, garbage headers.

Stripe's own SDK is the independent oracle: it signs what we must accept and verifies what our
signer produces.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import orjson
import pytest
import stripe as stripe_sdk
from hypothesis import given
from hypothesis import strategies as st

from ingest.errors import MalformedRequest, VerificationFailed
from ingest.schemes import RawRequest
from ingest.schemes.stripe import StripeScheme, payment_ref, signature_header

NEW, OLD = "whsec_new_5f0c1d2e3a4b", "whsec_old_9a8b7c6d5e4f"
NOW = 1_790_000_000
BODY = orjson.dumps({
    "id": "evt_1", "object": "event", "type": "payment_intent.succeeded", "created": NOW,
    "data": {"object": {"id": "pi_42", "object": "payment_intent", "amount": 1000,
                        "currency": "eur"}},
})


def scheme(*keys: str, tolerance: int = 300) -> StripeScheme:
    return StripeScheme(keys=tuple(k.encode() for k in keys), tolerance_seconds=tolerance)


def request(body: bytes, header: str | None) -> RawRequest:
    headers = {} if header is None else {"stripe-signature": header}
    return RawRequest(body=body, headers=headers)


def sdk_header(body: bytes, secret: str, timestamp: int) -> str:
    sig = stripe_sdk.WebhookSignature._compute_signature(f"{timestamp}.{body.decode()}", secret)
    return f"t={timestamp},v1={sig}"


async def test_genuine_event_signed_by_stripes_sdk_is_accepted() -> None:
    verified = await scheme(NEW).verify(request(BODY, sdk_header(BODY, NEW, NOW)), now=NOW)
    assert verified.key_index == 0
    assert [(e.event_id, e.event_type, e.payment_ref) for e in verified.events] == [
        ("evt_1", "payment_intent.succeeded", "pi_42")]
    assert verified.events[0].payload == BODY


def test_our_signer_satisfies_stripes_sdk_verifier() -> None:
    header = signature_header(BODY, [NEW], int(time.time()))
    assert stripe_sdk.WebhookSignature.verify_header(BODY.decode(), header, NEW, tolerance=300)


async def test_old_key_of_the_ring_is_accepted_and_reported() -> None:
    verified = await scheme(NEW, OLD).verify(request(BODY, sdk_header(BODY, OLD, NOW)), now=NOW)
    assert verified.key_index == 1


async def test_header_with_several_v1_during_rotation_is_accepted() -> None:
    header = signature_header(BODY, [OLD, NEW], NOW)
    assert (await scheme(NEW).verify(request(BODY, header), now=NOW)).key_index == 0


async def test_wrong_key_is_rejected() -> None:
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW).verify(request(BODY, sdk_header(BODY, "whsec_other", NOW)), now=NOW)
    assert err.value.reason == "signature_mismatch"


@pytest.mark.parametrize("tamper", [
    lambda b: b.replace(b"1000", b"9000"),
    lambda b: b + b" ",
    lambda b: b[:-1],
])
async def test_tampered_body_is_rejected(tamper: object) -> None:
    header = sdk_header(BODY, NEW, NOW)
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW).verify(request(tamper(BODY), header), now=NOW)  # type: ignore[operator]
    assert err.value.reason == "signature_mismatch"


async def test_tampered_timestamp_is_rejected() -> None:
    header = sdk_header(BODY, NEW, NOW).replace(f"t={NOW}", f"t={NOW + 1}")
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW).verify(request(BODY, header), now=NOW)
    assert err.value.reason == "signature_mismatch"


async def test_stale_timestamp_is_rejected() -> None:
    header = sdk_header(BODY, NEW, NOW - 301)
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW).verify(request(BODY, header), now=NOW)
    assert err.value.reason == "timestamp_too_old"


async def test_future_timestamp_is_rejected() -> None:
    header = sdk_header(BODY, NEW, NOW + 301)
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW).verify(request(BODY, header), now=NOW)
    assert err.value.reason == "timestamp_in_future"


async def test_timestamp_at_the_edge_of_tolerance_is_accepted() -> None:
    for ts in (NOW - 300, NOW + 300):
        assert await scheme(NEW).verify(request(BODY, sdk_header(BODY, NEW, ts)), now=NOW)


async def test_missing_header_is_rejected() -> None:
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW).verify(request(BODY, None), now=NOW)
    assert err.value.reason == "missing_header"


@pytest.mark.parametrize("header", [
    "garbage", "t=abc,v1=00", f"t={NOW}", "v1=abcdef", f"t={NOW},v0=abc", "t=١٢٣,v1=ab",
])
async def test_malformed_header_is_rejected(header: str) -> None:
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW).verify(request(BODY, header), now=NOW)
    assert err.value.reason == "malformed_header"


async def test_non_ascii_signature_is_a_mismatch_not_a_crash() -> None:
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW).verify(request(BODY, f"t={NOW},v1=ünïcødé☃"), now=NOW)
    assert err.value.reason == "signature_mismatch"


async def test_verified_body_that_is_not_an_event_is_malformed() -> None:
    body = b'["not", "an", "event"]'
    with pytest.raises(MalformedRequest):
        await scheme(NEW).verify(request(body, sdk_header(body, NEW, NOW)), now=NOW)


@given(body=st.binary(max_size=512), header=st.text(max_size=200))
def test_arbitrary_input_raises_only_typed_errors(body: bytes, header: str) -> None:
    with contextlib.suppress(VerificationFailed, MalformedRequest):
        asyncio.run(scheme(NEW, OLD).verify(request(body, header), now=NOW))


@pytest.mark.parametrize(("event", "ref"), [
    ({"data": {"object": {"object": "payment_intent", "id": "pi_1"}}}, "pi_1"),
    ({"data": {"object": {"object": "charge", "id": "ch_1", "payment_intent": "pi_2"}}}, "pi_2"),
    ({"data": {"object": {"object": "refund", "id": "re_1", "payment_intent": "pi_3"}}}, "pi_3"),
    ({"data": {"object": {"object": "dispute", "id": "dp_1", "payment_intent": "pi_4"}}}, "pi_4"),
    ({"data": {"object": {"object": "customer", "id": "cus_1"}}}, None),
    ({"data": "nonsense"}, None),
])
def test_payment_reference_is_the_payment_intent(event: dict[str, object], ref: str | None
                                                 ) -> None:
    assert payment_ref(event) == ref
