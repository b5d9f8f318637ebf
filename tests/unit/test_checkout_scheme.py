"""Checkout.com's scheme: ``Cko-Signature`` over the raw body, and the optional static
``Authorization`` header.

No Checkout.com SDK is installed as an oracle, so the independent check is the documented
recipe written out with the standard library (``hmac.new(key, body, sha256).hexdigest()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.errors import MalformedRequest, VerificationFailed
from ingest.schemes import RawRequest, build_scheme
from ingest.schemes.checkout import CheckoutScheme, payment_ref, signature
from payhooks.config import ConfigError, EndpointSettings, Secret, load_settings
from payhooks.sim import checkout as sim

NEW, OLD = "sk_sbox_wh_5f0c1d2e3a4b", "sk_sbox_wh_old_9a8b7c6d"
AUTHORIZATION = "Bearer 3e1a7c-static-webhook-token"
NOW = 1_790_000_000
#: each example starts an event loop; a wall-clock deadline would only measure machine load
PROPERTY = settings(deadline=None)
BODY = orjson.dumps({
    "id": "evt_6aznipgxbuaure3qen5qbzyswy",
    "type": "payment_captured",
    "created_on": "2026-09-21T14:10:25Z",
    "data": {"id": "pay_waji5li3mqtetnaor77xmow4bq", "action_id": "act_gse7gcrhleuedmzhq25n3mhweq",
             "amount": 10000, "currency": "EUR", "response_code": "10000"},
})


def documented_signature(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def scheme(*keys: str, authorization: str | None = None) -> CheckoutScheme:
    return CheckoutScheme(keys=tuple(k.encode() for k in keys or (NEW,)),
                          authorization=authorization.encode() if authorization else None)


def request(body: bytes, sig: str | None = None, authorization: str | None = None
            ) -> RawRequest:
    headers = {"content-type": "application/json"}
    if sig is not None:
        headers["cko-signature"] = sig
    if authorization is not None:
        headers["authorization"] = authorization
    return RawRequest(body=body, headers=headers)


async def reason_of(scheme_: CheckoutScheme, req: RawRequest) -> str:
    with pytest.raises(VerificationFailed) as err:
        await scheme_.verify(req, now=NOW)
    return err.value.reason


# -- genuine, oracle, derivation -------------------------------------------------------------------

async def test_genuine_event_signed_by_the_documented_recipe_is_accepted() -> None:
    verified = await scheme().verify(request(BODY, documented_signature(BODY, NEW)), now=NOW)
    assert verified.key_index == 0
    assert [(e.event_id, e.event_type, e.payment_ref) for e in verified.events] == [
        ("evt_6aznipgxbuaure3qen5qbzyswy", "payment_captured", "pay_waji5li3mqtetnaor77xmow4bq")]
    assert verified.events[0].payload == BODY


def test_our_signer_equals_the_documented_recipe() -> None:
    assert signature(BODY, NEW) == documented_signature(BODY, NEW)


async def test_upper_case_hex_signature_is_accepted() -> None:
    assert await scheme().verify(request(BODY, signature(BODY, NEW).upper()), now=NOW)


@pytest.mark.parametrize(("event", "ref"), [
    ({"data": {"id": "pay_1", "action_id": "act_1"}}, "pay_1"),
    ({"data": {"id": "dsp_1", "payment_id": "pay_2"}}, "pay_2"),
    ({"data": {"id": "dsp_1"}}, None),
    ({"data": {"id": "src_1"}}, None),
    ({"data": "nonsense"}, None),
    ({}, None),
])
def test_payment_reference_is_the_payment_id_or_the_payments_own_id(
        event: dict[str, Any], ref: str | None) -> None:
    assert payment_ref(event) == ref


# -- tampering, keys -------------------------------------------------------------------------------

@pytest.mark.parametrize("tamper", [
    lambda b: b.replace(b"10000,", b"90000,"),
    lambda b: b + b" ",
    lambda b: b[:-1],
    lambda b: b.replace(b"EUR", b"USD"),
])
async def test_tampered_body_is_rejected(tamper: Any) -> None:
    req = request(tamper(BODY), signature(BODY, NEW))
    assert await reason_of(scheme(), req) == "signature_mismatch"


async def test_old_key_of_the_ring_is_accepted_and_reported() -> None:
    verified = await scheme(NEW, OLD).verify(request(BODY, signature(BODY, OLD)), now=NOW)
    assert verified.key_index == 1


async def test_wrong_key_is_rejected() -> None:
    req = request(BODY, signature(BODY, "sk_sbox_wh_other"))
    assert await reason_of(scheme(NEW, OLD), req) == "signature_mismatch"


# -- missing and garbage headers -------------------------------------------------------------------

@pytest.mark.parametrize("sig", [None, ""])
async def test_missing_signature_header_is_rejected(sig: str | None) -> None:
    assert await reason_of(scheme(), request(BODY, sig)) == "missing_header"


@pytest.mark.parametrize("sig", [
    "garbage", "0" * 63, "0" * 65, "g" * 64, "ünïcødé☃" * 8, "sha256=" + "0" * 57, "\udcff" * 64,
])
async def test_malformed_signature_header_is_rejected(sig: str) -> None:
    assert await reason_of(scheme(), request(BODY, sig)) == "malformed_header"


async def test_well_formed_but_wrong_signature_is_a_mismatch() -> None:
    assert await reason_of(scheme(), request(BODY, "0" * 64)) == "signature_mismatch"


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"id": "evt_1"}', b'{"type": "x"}',
                                  b'{"id": 1, "type": "x"}', b'{"id": "", "type": "x"}',
                                  b"\xff\xfe"])
async def test_verified_body_that_is_not_an_event_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedRequest):
        await scheme().verify(request(body, signature(body, NEW)), now=NOW)


# -- static Authorization header -------------------------------------------------------------------

async def test_correct_authorization_and_signature_are_accepted() -> None:
    req = request(BODY, signature(BODY, NEW), AUTHORIZATION)
    assert await scheme(authorization=AUTHORIZATION).verify(req, now=NOW)


@pytest.mark.parametrize("header", [
    None, "", "Bearer wrong", AUTHORIZATION + " ", AUTHORIZATION.upper(), "ünïcødé☃", "\udcff",
])
async def test_missing_or_wrong_authorization_is_rejected(header: str | None) -> None:
    req = request(BODY, signature(BODY, NEW), header)
    assert await reason_of(scheme(authorization=AUTHORIZATION), req) == "authorization_failed"


async def test_authorization_is_checked_before_the_signature() -> None:
    req = request(BODY, None, "Bearer wrong")
    assert await reason_of(scheme(authorization=AUTHORIZATION), req) == "authorization_failed"


async def test_authorization_header_is_ignored_when_none_is_configured() -> None:
    assert await scheme().verify(request(BODY, signature(BODY, NEW), "anything"), now=NOW)


# -- settings --------------------------------------------------------------------------------------

def endpoint(*secrets: str, **options: Any) -> EndpointSettings:
    return EndpointSettings(name="cko", provider="checkout",
                            secrets=tuple(Secret(s) for s in secrets), options=options)


def test_scheme_is_built_from_endpoint_settings() -> None:
    built = build_scheme(endpoint(NEW, OLD, authorization=AUTHORIZATION))
    assert built == scheme(NEW, OLD, authorization=AUTHORIZATION)
    assert built.content_types == frozenset({"application/json"})


@pytest.mark.parametrize(("options", "key"), [
    ({"authorization": ""}, "endpoints.cko.authorization"),
    ({"authorization": 42}, "endpoints.cko.authorization"),
    ({"authorisation": AUTHORIZATION}, "endpoints.cko.authorisation"),
])
def test_bad_or_unknown_option_is_a_config_error_naming_it(options: dict[str, Any], key: str
                                                           ) -> None:
    with pytest.raises(ConfigError) as err:
        CheckoutScheme.from_settings(endpoint(NEW, **options))
    assert err.value.key == key
    assert AUTHORIZATION not in str(err.value)


def test_empty_secret_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        CheckoutScheme.from_settings(endpoint(NEW, ""))
    assert err.value.key == "endpoints.cko.secrets"


def test_authorization_can_come_from_a_secret_file(tmp_path: Path) -> None:
    token = tmp_path / "cko_authorization"
    token.write_text(AUTHORIZATION + "\n")
    config = tmp_path / "payhooks.toml"
    config.write_text(f'[endpoints.cko]\nprovider = "checkout"\nsecrets = ["{NEW}"]\n'
                      f'authorization_file = "{token}"\n')
    settings = load_settings(config, environ={})
    assert build_scheme(settings.endpoints["cko"]) == scheme(authorization=AUTHORIZATION)


def test_scheme_repr_shows_no_key_or_authorization() -> None:
    text = repr(scheme(authorization=AUTHORIZATION))
    assert "keys" not in text
    assert "webhook-token" not in text


# -- properties ------------------------------------------------------------------------------------

header_names = st.sampled_from(["cko-signature", "authorization", "content-type", "x-other"])


@PROPERTY
@given(body=st.binary(max_size=512),
       headers=st.dictionaries(header_names, st.text(max_size=100), max_size=4))
def test_arbitrary_input_raises_only_typed_errors(body: bytes, headers: dict[str, str]) -> None:
    for configured in (None, AUTHORIZATION):
        with contextlib.suppress(VerificationFailed, MalformedRequest):
            asyncio.run(scheme(NEW, OLD, authorization=configured).verify(
                RawRequest(body=body, headers=headers), now=NOW))


@PROPERTY
@given(body=st.binary(max_size=512))
def test_any_authentic_body_is_verified_or_malformed(body: bytes) -> None:
    with contextlib.suppress(MalformedRequest):
        asyncio.run(scheme().verify(request(body, signature(body, NEW)), now=NOW))


# -- round trip with the simulator -----------------------------------------------------------------

@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("authorization", [None, AUTHORIZATION])
async def test_simulated_lifecycles_verify_with_the_scheme_of_the_same_endpoint(
        seed: int, authorization: str | None) -> None:
    options = {} if authorization is None else {"authorization": authorization}
    settings = endpoint(NEW, OLD, **options)
    receiver = build_scheme(settings)
    for event in sim.lifecycle(random.Random(seed), NOW):
        signed = sim.sign([event], settings, NOW)
        verified = await receiver.verify(RawRequest(signed.body, signed.headers), now=NOW)
        assert [(e.event_id, e.payment_ref, e.event_type) for e in verified.events] == [
            (event.event_id, event.payment_ref, event.kind)]


def test_simulated_lifecycles_cover_every_mapped_event_type() -> None:
    kinds = {e.kind for seed in range(60) for e in sim.lifecycle(random.Random(seed), NOW)}
    assert kinds == {"payment_approved", "payment_declined", "payment_captured", "payment_voided",
                     "payment_refunded", "dispute_evidence_required", "dispute_won",
                     "dispute_lost"}


def test_simulated_partial_captures_have_distinct_action_ids_and_add_up() -> None:
    for seed in range(60):
        events = sim.lifecycle(random.Random(seed), NOW)
        captures = [e.event["data"] for e in events if e.kind == "payment_captured"]
        if len(captures) == 2:
            approved = events[0].event["data"]
            assert captures[0]["action_id"] != captures[1]["action_id"]
            assert sum(c["amount"] for c in captures) == approved["amount"]
            assert all(c["currency"] == approved["currency"].upper() for c in captures)
            return
    pytest.fail("no lifecycle with two partial captures in 60 seeds")
