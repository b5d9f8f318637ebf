"""Square's scheme over raw bytes: genuine, tampered, rotated, other URL, garbage headers.

Square's own SDK (``square.utils.webhooks_helper.verify_signature``) is the independent oracle: it
cannot sign, so it verifies what our signer produces, and agrees with every verdict we test.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import random
import types

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from square.utils.webhooks_helper import verify_signature as square_sdk_verify

from ingest.errors import MalformedRequest, VerificationFailed
from ingest.schemes import RawRequest, build_scheme
from ingest.schemes.square import HEADER, SquareScheme, payment_ref, signature
from payhooks.config import BasicAuth, ConfigError, EndpointSettings, Secret
from payhooks.sim import square as square_sim

NEW, OLD = "sq-sig-key-new-5f0c1d2e3a4b", "sq-sig-key-old-9a8b7c6d5e4f"
URL = "https://hooks.example.com/webhooks/square"
NOW = 1_790_000_000
BODY = orjson.dumps({
    "merchant_id": "6SSW7HV8K2ST5", "type": "payment.updated",
    "event_id": "13b867cf-db3d-4b1c-90b6-2f32a9d78124", "created_at": "2026-09-21T12:00:00.000Z",
    "data": {"type": "payment", "id": "KkAkhdMsgzn59SM8A89WgKwekxLZY", "object": {"payment": {
        "id": "KkAkhdMsgzn59SM8A89WgKwekxLZY", "status": "COMPLETED",
        "amount_money": {"amount": 1234, "currency": "USD"}}}},
})


def scheme(*keys: str, url: str = URL) -> SquareScheme:
    return SquareScheme(keys=tuple(k.encode() for k in keys), notification_url=url.encode())


def request(body: bytes, header: str | None, **extra: str) -> RawRequest:
    headers = {} if header is None else {HEADER: header}
    return RawRequest(body=body, headers={**headers, **extra})


def endpoint(**options: object) -> EndpointSettings:
    return EndpointSettings(name="sq", provider="square", secrets=(Secret(NEW), Secret(OLD)),
                            options=types.MappingProxyType(options))


def sdk_accepts(body: bytes, header: str, key: str = NEW, url: str = URL) -> bool:
    return square_sdk_verify(request_body=body.decode(), signature_header=header,
                             signature_key=key, notification_url=url)


async def test_genuine_event_is_accepted_with_its_id_type_and_payment() -> None:
    header = signature(BODY, NEW, URL)
    assert sdk_accepts(BODY, header)
    verified = await scheme(NEW).verify(request(BODY, header), now=NOW)
    assert verified.key_index == 0
    assert [(e.event_id, e.event_type, e.payment_ref) for e in verified.events] == [
        ("13b867cf-db3d-4b1c-90b6-2f32a9d78124", "payment.updated",
         "KkAkhdMsgzn59SM8A89WgKwekxLZY")]
    assert verified.events[0].payload == BODY


def test_our_signer_satisfies_squares_sdk_verifier() -> None:
    assert sdk_accepts(BODY, signature(BODY, NEW, URL))
    assert not sdk_accepts(BODY, signature(BODY, NEW, URL), key=OLD)


async def test_old_key_of_the_ring_is_accepted_and_reported() -> None:
    header = signature(BODY, OLD, URL)
    assert sdk_accepts(BODY, header, key=OLD)
    assert (await scheme(NEW, OLD).verify(request(BODY, header), now=NOW)).key_index == 1


async def test_wrong_key_is_rejected() -> None:
    header = signature(BODY, "someone-elses-key", URL)
    assert not sdk_accepts(BODY, header)
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW, OLD).verify(request(BODY, header), now=NOW)
    assert err.value.reason == "signature_mismatch"


@pytest.mark.parametrize("other_url", [
    "https://hooks.example.com/webhooks/square/",
    "https://hooks.example.com:443/webhooks/square",
    "http://hooks.example.com/webhooks/square",
    "https://HOOKS.example.com/webhooks/square",
    "https://hooks.example.com/webhooks/square?x=1",
])
async def test_request_signed_for_a_different_url_is_rejected(other_url: str) -> None:
    header = signature(BODY, NEW, other_url)
    assert not sdk_accepts(BODY, header)
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW).verify(request(BODY, header), now=NOW)
    assert err.value.reason == "signature_mismatch"


@pytest.mark.parametrize("tamper", [
    lambda b: b.replace(b"1234", b"9234"),
    lambda b: b + b" ",
    lambda b: b[:-1],
    lambda b: orjson.dumps(orjson.loads(b), option=orjson.OPT_INDENT_2),  # same JSON, re-serialised
])
async def test_tampered_body_is_rejected(tamper: object) -> None:
    header = signature(BODY, NEW, URL)
    body = tamper(BODY)  # type: ignore[operator]
    assert not sdk_accepts(body, header)
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW).verify(request(body, header), now=NOW)
    assert err.value.reason == "signature_mismatch"


async def test_tampered_signature_is_rejected() -> None:
    header = signature(BODY, NEW, URL)
    flipped = ("B" if header[0] == "A" else "A") + header[1:]
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW).verify(request(BODY, flipped), now=NOW)
    assert err.value.reason == "signature_mismatch"


@pytest.mark.parametrize("header", [None, ""])
async def test_missing_header_is_rejected(header: str | None) -> None:
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW).verify(request(BODY, header), now=NOW)
    assert err.value.reason == "missing_header"


@pytest.mark.parametrize("header", [
    "garbage",
    "a" * 64,  # hex, not base64
    base64.b64encode(b"\x00" * 20).decode(),  # an HMAC-SHA1 (the legacy x-square-signature)
    base64.b64encode(b"\x00" * 32).decode() + " ",
    "ünïcødé☃" * 6,
    "sha256=" + base64.b64encode(b"\x00" * 32).decode(),
])
async def test_malformed_header_is_rejected(header: str) -> None:
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW).verify(request(BODY, header), now=NOW)
    assert err.value.reason == "malformed_header"


async def test_failure_detail_holds_no_signature_key_or_body() -> None:
    header = signature(BODY, "someone-elses-key", URL)
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW).verify(request(BODY, header), now=NOW)
    for secret in (NEW, header, BODY.decode(), URL):
        assert secret not in err.value.detail


@pytest.mark.parametrize("body", [b"not json", b'["a", "list"]', b'{"type": "payment.updated"}',
                                  b'{"event_id": "e1"}', b'{"event_id": "", "type": "x"}'])
async def test_verified_body_that_is_not_a_square_event_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedRequest):
        await scheme(NEW).verify(request(body, signature(body, NEW, URL)), now=NOW)


async def test_configured_basic_auth_is_checked_too() -> None:
    auth = BasicAuth(username="square", password=Secret("pw"))
    with_auth = build_scheme(dataclasses.replace(endpoint(notification_url=URL), basic_auth=auth))
    header = signature(BODY, NEW, URL)
    with pytest.raises(VerificationFailed) as err:
        await with_auth.verify(request(BODY, header), now=NOW)
    assert err.value.reason == "basic_auth_failed"
    good = "Basic " + base64.b64encode(b"square:pw").decode()
    assert await with_auth.verify(request(BODY, header, authorization=good), now=NOW)


@pytest.mark.parametrize(("event", "ref"), [
    ({"type": "payment.created", "data": {"type": "payment", "id": "P1",
                                          "object": {"payment": {"id": "P1"}}}}, "P1"),
    ({"type": "payment.updated", "data": {"object": {"payment": {"id": "P2"}}}}, "P2"),
    ({"type": "refund.created", "data": {"type": "refund", "id": "P3_R1",
                                         "object": {"refund": {"payment_id": "P3"}}}}, "P3"),
    ({"type": "refund.updated", "data": {"type": "refund", "id": "R2",
                                         "object": {"refund": {}}}}, None),
    ({"type": "dispute.created", "data": {"type": "dispute", "id": "D1", "object": {
        "dispute": {"disputed_payment": {"payment_id": "P4"}}}}}, "P4"),
    ({"type": "customer.created", "data": {"type": "customer", "id": "C1"}}, None),
    ({"type": "payment.updated", "data": "nonsense"}, None),
    ({"data": {"id": "P5"}}, None),
])
def test_payment_reference_is_the_square_payment(event: dict[str, object], ref: str | None
                                                  ) -> None:
    assert payment_ref(event) == ref


def test_settings_build_the_scheme_with_the_configured_url() -> None:
    built = build_scheme(endpoint(notification_url=URL))
    assert isinstance(built, SquareScheme)
    assert built.notification_url == URL.encode()
    assert built.keys == (NEW.encode(), OLD.encode())


@pytest.mark.parametrize("options", [{}, {"notification_url": ""}, {"notification_url": 42},
                                     {"notification_url": "/webhooks/square"},
                                     {"notification_url": "ftp://hooks.example.com/x"},
                                     {"notification_url": " https://hooks.example.com/x"},
                                     {"notification_url": "https://[::1/x"}])
def test_missing_or_bad_notification_url_is_a_config_error(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as err:
        SquareScheme.from_settings(endpoint(**options))
    assert err.value.key == "endpoints.sq.notification_url"


def test_unknown_option_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError) as err:
        SquareScheme.from_settings(endpoint(notification_url=URL, notifcation_url=URL))
    assert err.value.key == "endpoints.sq.notifcation_url"


def test_empty_key_in_the_ring_is_a_config_error() -> None:
    settings = EndpointSettings(name="sq", provider="square", secrets=(Secret(NEW), Secret("")),
                                options=types.MappingProxyType({"notification_url": URL}))
    with pytest.raises(ConfigError) as err:
        SquareScheme.from_settings(settings)
    assert err.value.key == "endpoints.sq.secrets"


_HEADER_VALUES = st.one_of(
    st.text(max_size=80),
    st.binary(max_size=80).map(lambda b: b.decode("latin-1")),  # how Starlette decodes headers
    st.binary(min_size=32, max_size=32).map(lambda b: base64.b64encode(b).decode()),
)


@given(body=st.binary(max_size=512), header=_HEADER_VALUES,
       others=st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=3))
def test_arbitrary_input_raises_only_typed_errors(body: bytes, header: str,
                                                  others: dict[str, str]) -> None:
    with contextlib.suppress(VerificationFailed, MalformedRequest):
        asyncio.run(scheme(NEW, OLD).verify(RawRequest(body, {**others, HEADER: header}), NOW))


@given(body=st.binary(max_size=512))
def test_arbitrary_body_signed_with_a_ring_key_raises_only_malformed_or_passes(body: bytes
                                                                              ) -> None:
    with contextlib.suppress(MalformedRequest):
        asyncio.run(scheme(NEW, OLD).verify(request(body, signature(body, OLD, URL)), NOW))


@pytest.mark.parametrize("seed", range(20))
async def test_simulated_lifecycles_verify_with_the_endpoints_own_scheme(seed: int) -> None:
    settings = endpoint(notification_url=URL)
    built = SquareScheme.from_settings(settings)
    for event in square_sim.lifecycle(random.Random(seed), NOW):
        signed = square_sim.sign([event], settings, NOW)
        assert sdk_accepts(signed.body, signed.headers[HEADER])
        verified = await built.verify(RawRequest(signed.body, signed.headers), NOW)
        assert verified.key_index == 0
        assert [(e.event_id, e.event_type, e.payment_ref) for e in verified.events] == [
            (event.event_id, event.kind, event.payment_ref)]
