"""The generic, configurable HMAC scheme over raw bytes: Shopify- and GitHub-style senders,
digests and encodings, prefixes, rotation, event ids (configured or derived), options, garbage.

The oracle is the standard library: every expected signature is computed here with ``hmac`` and
``hashlib`` directly, not with the scheme's signer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import random
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.errors import MalformedRequest, VerificationFailed
from ingest.schemes import RawRequest, Scheme, build_scheme
from ingest.schemes.generic_hmac import GenericHmacScheme, derived_event_id, signature
from ingest.schemes.json_body import value_at
from payhooks.config import BasicAuth, ConfigError, EndpointSettings, Secret, load_settings
from payhooks.sim import hmac as sim

NEW, OLD, OTHER = "shpss_new_5f0c1d2e3a4b", "shpss_old_9a8b7c6d5e4f", "shpss_someone_else"
NOW = 1_790_000_000
BODY = orjson.dumps({"id": 820982911946154508, "name": "#9999", "total_price": "10.00",
                     "data": {"payment_id": "pay_42", "amount": 1000, "currency": "EUR"}})

SHOPIFY: dict[str, Any] = {
    "header": "X-Shopify-Hmac-Sha256", "encoding": "base64",
    "event_id_header": "X-Shopify-Webhook-Id", "event_type_header": "X-Shopify-Topic",
    "payment_ref_field": "id",
}
GITHUB: dict[str, Any] = {
    "header": "X-Hub-Signature-256", "prefix": "sha256=",
    "event_id_header": "X-GitHub-Delivery", "event_type_header": "X-GitHub-Event",
}


def endpoint(*keys: str, basic_auth: BasicAuth | None = None, **options: Any
             ) -> EndpointSettings:
    return EndpointSettings(name="acme", provider="hmac", secrets=tuple(Secret(k) for k in keys),
                            basic_auth=basic_auth, options=types.MappingProxyType(options))


def scheme(*keys: str, **options: Any) -> GenericHmacScheme:
    return GenericHmacScheme.from_settings(endpoint(*keys, **options))


def request(body: bytes, headers: dict[str, str]) -> RawRequest:
    return RawRequest(body=body, headers=headers)


def mac(secret: str, message: bytes, digest: str = "sha256") -> bytes:
    return hmac.new(secret.encode(), message, getattr(hashlib, digest)).digest()


def shopify_headers(body: bytes, secret: str = NEW) -> dict[str, str]:
    return {"x-shopify-hmac-sha256": base64.b64encode(mac(secret, body)).decode(),
            "x-shopify-webhook-id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
            "x-shopify-topic": "orders/paid"}


def github_headers(body: bytes, secret: str = NEW) -> dict[str, str]:
    return {"x-hub-signature-256": "sha256=" + mac(secret, body).hex(),
            "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            "x-github-event": "push"}


async def reason(scheme_: Scheme, req: RawRequest) -> str:
    with pytest.raises(VerificationFailed) as err:
        await scheme_.verify(req, now=NOW)
    return err.value.reason


# --- real-world senders, signed independently ---------------------------------------------------


async def test_shopify_style_webhook_is_accepted() -> None:
    verified = await scheme(NEW, **SHOPIFY).verify(request(BODY, shopify_headers(BODY)), now=NOW)
    assert verified.key_index == 0
    assert [(e.event_id, e.event_type, e.payment_ref, e.payload) for e in verified.events] == [
        ("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", "orders/paid", "820982911946154508", BODY)]


async def test_github_style_webhook_is_accepted() -> None:
    verified = await scheme(NEW, **GITHUB).verify(request(BODY, github_headers(BODY)), now=NOW)
    assert [(e.event_id, e.event_type, e.payment_ref) for e in verified.events] == [
        ("72d3162e-cc78-11e3-81ab-4c9367dc0958", "push", None)]


async def test_header_names_are_matched_whatever_their_case() -> None:
    headers = {k.upper(): v for k, v in github_headers(BODY).items()}
    lookup = {k.lower(): v for k, v in headers.items()}  # what starlette's Headers does
    assert await scheme(NEW, **{**GITHUB, "header": "x-HUB-signature-256"}).verify(
        request(BODY, lookup), now=NOW)


@pytest.mark.parametrize("digest", ["sha1", "sha256", "sha512"])
@pytest.mark.parametrize("encoding", ["hex", "base64"])
async def test_every_digest_and_encoding_verifies_and_our_signer_agrees(digest: str,
                                                                          encoding: str) -> None:
    raw = mac(NEW, b"v0:" + BODY, digest)
    by_hand = raw.hex() if encoding == "hex" else base64.b64encode(raw).decode()
    options = {"header": "X-Signature", "digest": digest, "encoding": encoding,
               "signed_prefix": "v0:"}
    ours = signature(BODY, NEW, digest=digest, encoding=encoding, signed_prefix=b"v0:")
    assert ours == by_hand
    assert await scheme(NEW, **options).verify(request(BODY, {"x-signature": by_hand}), now=NOW)


async def test_upper_case_hex_is_accepted() -> None:
    headers = {"x-signature": mac(NEW, BODY).hex().upper()}
    assert await scheme(NEW, header="X-Signature").verify(request(BODY, headers), now=NOW)


async def test_signed_prefix_is_part_of_what_is_signed() -> None:
    headers = {"x-signature": mac(NEW, BODY).hex()}  # signed over the body alone
    assert await reason(scheme(NEW, header="X-Signature", signed_prefix="v0:"),
                        request(BODY, headers)) == "signature_mismatch"


# --- key ring -------------------------------------------------------------------------------------


async def test_old_key_of_the_ring_is_accepted_and_reported() -> None:
    req = request(BODY, shopify_headers(BODY, OLD))
    assert (await scheme(NEW, OLD, **SHOPIFY).verify(req, now=NOW)).key_index == 1


async def test_wrong_key_is_rejected() -> None:
    req = request(BODY, github_headers(BODY, OTHER))
    assert await reason(scheme(NEW, OLD, **GITHUB), req) == "signature_mismatch"


@pytest.mark.parametrize("tamper", [
    lambda b: b.replace(b"10.00", b"90.00"),
    lambda b: b + b"\n",
    lambda b: b[:-1],
    lambda b: orjson.dumps(orjson.loads(b), option=orjson.OPT_INDENT_2),
])
async def test_tampered_body_is_rejected(tamper: Callable[[bytes], bytes]) -> None:
    req = request(tamper(BODY), shopify_headers(BODY))
    assert await reason(scheme(NEW, **SHOPIFY), req) == "signature_mismatch"


async def test_signature_of_another_digest_is_a_mismatch() -> None:
    headers = {"x-hub-signature-256": "sha256=" + mac(NEW, BODY, "sha1").hex()}
    assert await reason(scheme(NEW, **GITHUB), request(BODY, headers)) == "signature_mismatch"


# --- malformed headers ----------------------------------------------------------------------------


async def test_missing_or_empty_signature_header_is_rejected() -> None:
    assert await reason(scheme(NEW, **GITHUB), request(BODY, {})) == "missing_header"
    headers = {"x-hub-signature-256": ""}
    assert await reason(scheme(NEW, **GITHUB), request(BODY, headers)) == "missing_header"


@pytest.mark.parametrize("value", [
    "sha1=" + "ab" * 20, "SHA256=" + "ab" * 32, "ab" * 32, "sha256=zz", "sha256=abc",
    "sha256=ünïcødé☃", "sha256=" + "ab" * 31 + " a b",
])
async def test_malformed_hex_signature_header_is_rejected(value: str) -> None:
    headers = {"x-hub-signature-256": value}
    assert await reason(scheme(NEW, **GITHUB), request(BODY, headers)) == "malformed_header"


@pytest.mark.parametrize("value", ["!!!", "abc", "ünïcødé☃", "a-b_"])
async def test_malformed_base64_signature_header_is_rejected(value: str) -> None:
    headers = {"x-shopify-hmac-sha256": value}
    assert await reason(scheme(NEW, **SHOPIFY), request(BODY, headers)) == "malformed_header"


async def test_failure_details_hold_no_secret_signature_or_body() -> None:
    forged = github_headers(BODY, OTHER)
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW, **GITHUB).verify(request(BODY, forged), now=NOW)
    for leak in (forged["x-hub-signature-256"].removeprefix("sha256="), NEW, BODY.decode()):
        assert leak not in err.value.detail


async def test_basic_auth_is_checked_when_the_endpoint_configures_it() -> None:
    guarded = build_scheme(
        endpoint(NEW, basic_auth=BasicAuth("acme", Secret("s3cret")), **GITHUB))
    assert await reason(guarded, request(BODY, github_headers(BODY))) == "basic_auth_failed"
    auth = "Basic " + base64.b64encode(b"acme:s3cret").decode()
    assert await guarded.verify(request(BODY, {**github_headers(BODY), "authorization": auth}),
                                now=NOW)


# --- event ids, types and payment references ------------------------------------------------------


async def test_event_id_is_derived_from_the_body_when_none_is_configured() -> None:
    headers = {"x-signature": mac(NEW, BODY).hex()}
    first = await scheme(NEW, header="X-Signature").verify(request(BODY, headers), now=NOW)
    again = await scheme(NEW, header="X-Signature").verify(request(BODY, headers), now=NOW + 60)
    [event] = first.events
    assert event.event_id == "sha256:" + hashlib.sha256(BODY).hexdigest() == derived_event_id(BODY)
    assert again.events == first.events
    assert (event.event_type, event.payment_ref) == ("", None)


async def test_event_id_is_derived_when_the_configured_header_is_absent() -> None:
    headers = shopify_headers(BODY)
    del headers["x-shopify-webhook-id"], headers["x-shopify-topic"]
    [event] = (await scheme(NEW, **SHOPIFY).verify(request(BODY, headers), now=NOW)).events
    assert (event.event_id, event.event_type) == (derived_event_id(BODY), "")


async def test_event_id_and_type_can_come_from_the_body() -> None:
    body = orjson.dumps({"event": {"id": "evt_9", "kind": "payment.captured"},
                         "data": {"payment_id": "pay_7"}})
    options = {"header": "X-Signature", "event_id_field": "event.id",
               "event_type_field": "event.kind", "payment_ref_field": "data.payment_id"}
    req = request(body, {"x-signature": mac(NEW, body).hex()})
    [event] = (await scheme(NEW, **options).verify(req, now=NOW)).events
    assert (event.event_id, event.event_type, event.payment_ref) == (
        "evt_9", "payment.captured", "pay_7")


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"\xff"])
async def test_verified_body_that_is_not_a_json_object_is_malformed_when_fields_are_read(
        body: bytes) -> None:
    req = request(body, {"x-signature": mac(NEW, body).hex()})
    with pytest.raises(MalformedRequest):
        await scheme(NEW, header="X-Signature", event_id_field="id").verify(req, now=NOW)


async def test_a_body_that_is_not_json_is_fine_when_no_field_is_read() -> None:
    body = b"payment=42&status=captured"
    req = request(body, {"x-signature": mac(NEW, body).hex()})
    built = scheme(NEW, header="X-Signature", content_types=["application/x-www-form-urlencoded"])
    assert (await built.verify(req, now=NOW)).events[0].event_id == derived_event_id(body)


@pytest.mark.parametrize(("path", "expected"), [
    ("data.payment_id", "pay_1"), ("data.count", "3"), ("items.1.id", "b"), ("data", None),
    ("data.flag", None), ("data.empty", None), ("missing.path", None), ("items.9.id", None),
    ("items.x", None), (None, None),
])
def test_dotted_paths_find_strings_and_integers(path: str | None, expected: str | None) -> None:
    doc = {"data": {"payment_id": "pay_1", "count": 3, "flag": True, "empty": ""},
           "items": [{"id": "a"}, {"id": "b"}]}
    assert value_at(doc, path) == expected


# --- configuration --------------------------------------------------------------------------------


def test_the_scheme_table_builds_the_generic_scheme() -> None:
    built = build_scheme(endpoint(NEW, **GITHUB))
    assert isinstance(built, GenericHmacScheme)
    assert (built.provider, built.header, built.digest, built.encoding) == (
        "hmac", "x-hub-signature-256", "sha256", "hex")
    assert built.content_types == frozenset({"application/json"})


def test_options_from_a_toml_file_and_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "payhooks.toml"
    config.write_text('[endpoints.shop]\nprovider = "hmac"\nsecrets = ["k1"]\n'
                      'header = "X-Shopify-Hmac-Sha256"\nencoding = "base64"\n')
    env = {"PAYHOOKS_ENDPOINTS__SHOP__CONTENT_TYPES": "application/json, text/plain",
           "PAYHOOKS_ENDPOINTS__SHOP__DIGEST": "SHA512"}
    built = build_scheme(load_settings(config, environ=env).endpoints["shop"])
    assert isinstance(built, GenericHmacScheme)
    assert built.content_types == frozenset({"application/json", "text/plain"})
    assert (built.digest, built.encoding) == ("sha512", "base64")


@pytest.mark.parametrize(("options", "key"), [
    ({}, "header"),
    ({"header": ""}, "header"),
    ({"header": "X Sig"}, "header"),
    ({"header": 7}, "header"),
    ({"header": "X-Sig", "digest": "md5"}, "digest"),
    ({"header": "X-Sig", "encoding": "base32"}, "encoding"),
    ({"header": "X-Sig", "prefix": 1}, "prefix"),
    ({"header": "X-Sig", "hedaer": "X-Sig"}, "hedaer"),
    ({"header": "X-Sig", "event_id_header": "X-Id", "event_id_field": "id"}, "event_id_field"),
    ({"header": "X-Sig", "event_type_header": "X", "event_type_field": "t"}, "event_type_field"),
    ({"header": "X-Sig", "payment_ref_field": "data..id"}, "payment_ref_field"),
    ({"header": "X-Sig", "content_types": []}, "content_types"),
    ({"header": "X-Sig", "content_types": ["json"]}, "content_types"),
    ({"header": "X-Sig", "content_types": [1]}, "content_types"),
])
def test_bad_options_are_config_errors_naming_the_key(options: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        scheme(NEW, **options)
    assert err.value.key == f"endpoints.acme.{key}"


def test_simulator_options_are_accepted_and_ignored() -> None:
    assert scheme(NEW, **GITHUB, sim_anything=1) == scheme(NEW, **GITHUB)


# --- arbitrary input ------------------------------------------------------------------------------


@given(body=st.binary(max_size=512),
       headers=st.dictionaries(
           st.sampled_from(["x-hub-signature-256", "x-shopify-hmac-sha256", "x-github-delivery",
                            "x-shopify-webhook-id", "authorization"]),
           st.text(max_size=120)),
       style=st.sampled_from([
           SHOPIFY, GITHUB,
           {"header": "X-Hub-Signature-256", "prefix": "sha256=", "event_id_field": "id",
            "event_type_field": "type", "payment_ref_field": "data.payment_id"},
       ]))
def test_arbitrary_headers_and_bodies_raise_only_typed_errors(
        body: bytes, headers: dict[str, str], style: dict[str, Any]) -> None:
    built = scheme(NEW, OLD, **style)
    with contextlib.suppress(VerificationFailed, MalformedRequest):
        asyncio.run(built.verify(request(body, headers), now=NOW))


@given(body=st.binary(max_size=256), secret=st.text(min_size=1, max_size=40))
def test_any_body_signed_with_any_secret_verifies(body: bytes, secret: str) -> None:
    options = {k: v for k, v in SHOPIFY.items() if k != "payment_ref_field"}  # body may be any
    built = scheme(OTHER, secret, **options)
    verified = asyncio.run(built.verify(request(body, shopify_headers(body, secret)), now=NOW))
    assert verified.key_index == 1
    assert verified.events[0].payload == body


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["id", "type", "data", "payment_id", "0", "1"]), inner, max_size=4),
    max_leaves=20,
)


@given(doc=JSON)
def test_any_genuinely_signed_json_yields_an_event_or_is_malformed(doc: Any) -> None:
    body = orjson.dumps(doc)
    options = {"header": "X-Signature", "event_id_field": "data.0.id", "event_type_field": "type",
               "payment_ref_field": "data.payment_id"}
    req = request(body, {"x-signature": mac(NEW, body).hex()})
    try:
        [event] = asyncio.run(scheme(NEW, **options).verify(req, now=NOW)).events
    except MalformedRequest:
        assert not isinstance(doc, dict)
        return
    assert event.event_id
    assert isinstance(event.event_type, str)
    assert event.payment_ref is None or event.payment_ref


# --- the simulator --------------------------------------------------------------------------------

SIM_STYLES: dict[str, dict[str, Any]] = {
    "headers": {**SHOPIFY, "payment_ref_field": "data.payment_id"},
    "body fields": {"header": "X-Signature", "digest": "sha512", "prefix": "v1=",
                    "signed_prefix": "payhooks:", "event_id_field": "id",
                    "event_type_field": "type", "payment_ref_field": "data.payment_id"},
    "nothing configured": {"header": "X-Signature"},
}


@pytest.mark.parametrize("style", SIM_STYLES)
async def test_simulated_lifecycles_verify_with_the_expected_ids_and_refs(style: str) -> None:
    settings = endpoint(NEW, OLD, **SIM_STYLES[style])
    receiver = GenericHmacScheme.from_settings(settings)
    kinds = set()
    for seed in range(40):
        for event in sim.lifecycle(random.Random(seed), NOW):
            signed = sim.sign([event], settings, NOW)
            verified = await receiver.verify(request(signed.body, signed.headers), now=NOW)
            assert verified.key_index == 0
            [got] = verified.events
            expected: tuple[str, str, str | None] = (event.event_id, event.kind,
                                                     event.payment_ref)
            if style == "nothing configured":
                expected = (derived_event_id(signed.body), "", None)
            assert (got.event_id, got.event_type, got.payment_ref) == expected
            assert got.payload == signed.body
            kinds.add(event.kind)
    assert {"payment.authorized", "payment.captured", "payment.refunded"} <= kinds


def test_simulated_signature_matches_an_independent_computation() -> None:
    settings = endpoint(NEW, **SIM_STYLES["body fields"])
    [event, *_] = sim.lifecycle(random.Random(3), NOW)
    signed = sim.sign([event], settings, NOW)
    by_hand = "v1=" + mac(NEW, b"payhooks:" + signed.body, "sha512").hex()
    assert signed.headers["x-signature"] == by_hand
    assert signed.headers["content-type"] == "application/json"


def test_scheme_repr_shows_no_key_material() -> None:
    text = repr(scheme(NEW, OLD, **GITHUB))
    assert NEW not in text
    assert OLD not in text
