"""Adyen's scheme: every item of a batch verified over its eight signed fields, plus Basic auth.

Adyen's own library (``Adyen.util``) is the independent oracle: it signs the items we must accept
and checks the items our signer produces. It verifies only the first item of a notification and
signs ``str(value)``, so the batch and boolean cases are ours alone.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
from typing import Any

import orjson
import pytest
from Adyen import util as adyen_sdk
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.errors import MalformedRequest, VerificationFailed
from ingest.schemes import RawRequest, Scheme, build_scheme
from ingest.schemes.adyen import (
    AdyenScheme,
    event_id,
    item_signature,
    notification_body,
    payment_ref,
    signed_item,
    signing_string,
)
from ingest.schemes.basic_auth import BasicAuthGuard
from payhooks.config import BasicAuth, ConfigError, EndpointSettings, Secret
from payhooks.sim import adyen as sim

NEW = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
OLD = "9B1C6F3A2D4E5F60718293A4B5C6D7E8F90A1B2C3D4E5F60718293A4B5C6D7E8"
BASIC = BasicAuth(username="adyen-notifications", password=Secret("correct horse battery"))
NOW = 1_790_000_000
#: each example starts an event loop; a wall-clock deadline would only measure machine load
PROPERTY = settings(deadline=None)


def item(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "amount": {"currency": "EUR", "value": 1130},
        "eventCode": "CAPTURE",
        "eventDate": "2026-09-21T14:10:25+02:00",
        "merchantAccountCode": "PayhooksECOM",
        "merchantReference": "order-42",
        "originalReference": "8835511210681999",
        "paymentMethod": "visa",
        "pspReference": "8535296650153317",
        "reason": "",
        "success": "true",
    }
    return {**base, **changes}


def sdk_signed(raw: dict[str, Any], key: str = NEW) -> dict[str, Any]:
    """``raw`` with the hmacSignature Adyen's library computes for it."""
    signature = adyen_sdk.generate_notification_sig(raw, key).decode()
    return {**raw, "additionalData": {**raw.get("additionalData", {}), "hmacSignature": signature}}


def body_of(*items: dict[str, Any]) -> bytes:
    return orjson.dumps({"live": "false",
                         "notificationItems": [{"NotificationRequestItem": i} for i in items]})


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def scheme(*keys: str, basic_auth: BasicAuth | None = None) -> Scheme:
    """Adyen's scheme with ``keys``; with ``basic_auth`` as the receiver builds it (guarded)."""
    if basic_auth is not None:
        return build_scheme(endpoint(*keys, basic_auth=basic_auth))
    return AdyenScheme(keys=tuple(bytes.fromhex(k) for k in keys))


def request(body: bytes, authorization: str | None = None) -> RawRequest:
    return RawRequest(body=body, headers={} if authorization is None else
                      {"authorization": authorization})


async def reason_of(scheme_: AdyenScheme, req: RawRequest) -> str:
    with pytest.raises(VerificationFailed) as err:
        await scheme_.verify(req, now=NOW)
    return err.value.reason


# -- genuine, oracle, derivation -------------------------------------------------------------------

async def test_genuine_notification_signed_by_adyens_sdk_is_accepted() -> None:
    genuine = sdk_signed(item())
    verified = await scheme(NEW).verify(request(body_of(genuine)), now=NOW)
    assert verified.key_index == 0
    [event] = verified.events
    assert (event.event_id, event.event_type, event.payment_ref) == (
        "8535296650153317:CAPTURE:true:8835511210681999", "CAPTURE", "8835511210681999")
    assert orjson.loads(event.payload) == genuine


@pytest.mark.parametrize("raw", [
    item(),
    item(originalReference=None, eventCode="AUTHORISATION"),
    {k: v for k, v in item().items() if k not in {"originalReference", "merchantReference"}},
    item(merchantReference="a:b\\c:d", success="false"),  # nothing is escaped
    item(merchantReference="Bestellung Nr. 42 für Jürgen"),
])
def test_our_signature_equals_adyens_sdk_signature(raw: dict[str, Any]) -> None:
    sdk_raw = {k: ("" if v is None else v) for k, v in raw.items()}
    assert item_signature(raw, NEW) == adyen_sdk.generate_notification_sig(sdk_raw, NEW).decode()


def test_our_signed_notification_satisfies_adyens_sdk_verifier() -> None:
    notification = orjson.loads(notification_body([item()], NEW))
    assert adyen_sdk.is_valid_hmac_notification(notification, NEW)


def test_signing_string_joins_the_eight_fields_with_missing_ones_empty() -> None:
    assert signing_string(item(originalReference=None)) == (
        b"8535296650153317::PayhooksECOM:order-42:1130:EUR:CAPTURE:true")


@pytest.mark.parametrize(("raw", "expected"), [
    (item(), "8535296650153317:CAPTURE:true:8835511210681999"),
    (item(eventCode="AUTHORISATION", originalReference=None, success="false"),
     "8535296650153317:AUTHORISATION:false:"),
    (item(success=True), "8535296650153317:CAPTURE:true:8835511210681999"),
])
def test_event_id_is_psp_reference_event_code_success_and_original_reference(
        raw: dict[str, Any], expected: str) -> None:
    assert event_id(raw) == expected


@pytest.mark.parametrize(("raw", "ref"), [
    (item(), "8835511210681999"),
    (item(originalReference=None), "8535296650153317"),
    (item(originalReference=""), "8535296650153317"),
    (item(originalReference=None, pspReference=None), None),
])
def test_payment_reference_is_the_original_reference_else_the_psp_reference(
        raw: dict[str, Any], ref: str | None) -> None:
    assert payment_ref(raw) == ref


async def test_success_sent_as_a_json_boolean_is_verified_over_adyens_text() -> None:
    genuine = sdk_signed(item())  # signed over "...:CAPTURE:true"
    as_bool = {**genuine, "success": True}
    verified = await scheme(NEW).verify(request(body_of(as_bool)), now=NOW)
    assert verified.events[0].event_id == event_id(genuine)


def test_adyens_sdk_would_sign_a_boolean_success_as_python_text() -> None:
    """The trap PSP_NOTES warns about: ``str(True)`` is ``"True"``, which Adyen never signs."""
    assert (adyen_sdk.generate_notification_sig(item(success=True), NEW)
            != adyen_sdk.generate_notification_sig(item(), NEW))


# -- tampering, keys -------------------------------------------------------------------------------

@pytest.mark.parametrize("tamper", [
    {"pspReference": "8535296650153318"},
    {"originalReference": "8835511210681990"},
    {"merchantAccountCode": "OtherMerchantECOM"},
    {"merchantReference": "order-43"},
    {"amount": {"currency": "EUR", "value": 113000}},
    {"amount": {"currency": "USD", "value": 1130}},
    {"eventCode": "REFUND"},
    {"success": "false"},
], ids=lambda t: next(iter(t)) if "amount" not in t else f"amount.{t['amount']}")
async def test_each_signed_field_tampered_is_rejected(tamper: dict[str, Any]) -> None:
    tampered = {**sdk_signed(item()), **tamper}
    assert await reason_of(scheme(NEW), request(body_of(tampered))) == "signature_mismatch"


@pytest.mark.parametrize("tamper", [
    {"eventDate": "2030-01-01T00:00:00+00:00"},
    {"reason": "anything at all"},
    {"paymentMethod": "mc"},
    {"operations": ["REFUND"]},
])
async def test_unsigned_field_change_is_still_accepted(tamper: dict[str, Any]) -> None:
    """Adyen signs eight fields only: the rest is protected by Basic auth (and TLS), not HMAC."""
    changed = {**sdk_signed(item()), **tamper}
    assert await scheme(NEW).verify(request(body_of(changed)), now=NOW)


async def test_old_key_of_the_ring_is_accepted_and_reported() -> None:
    body = body_of(sdk_signed(item(), OLD))
    assert (await scheme(NEW, OLD).verify(request(body), now=NOW)).key_index == 1


async def test_wrong_key_is_rejected() -> None:
    body = body_of(sdk_signed(item(), OLD))
    assert await reason_of(scheme(NEW), request(body)) == "signature_mismatch"


async def test_batch_signed_with_both_keys_reports_the_oldest_key_it_needed() -> None:
    body = body_of(sdk_signed(item(), NEW), sdk_signed(item(pspReference="X1"), OLD))
    assert (await scheme(NEW, OLD).verify(request(body), now=NOW)).key_index == 1


# -- batches ---------------------------------------------------------------------------------------

async def test_every_item_of_a_batch_becomes_one_event_in_order() -> None:
    items = [sdk_signed(item(pspReference=f"PSP{n}", eventCode=code))
             for n, code in enumerate(["AUTHORISATION", "CAPTURE", "REFUND"])]
    verified = await scheme(NEW).verify(request(body_of(*items)), now=NOW)
    assert [e.event_id for e in verified.events] == [event_id(i) for i in items]
    assert [orjson.loads(e.payload) for e in verified.events] == items


@pytest.mark.parametrize("bad", [0, 1, 2])
async def test_one_bad_item_in_three_rejects_the_whole_batch(bad: int) -> None:
    items = [sdk_signed(item(pspReference=f"PSP{n}")) for n in range(3)]
    items[bad] = {**items[bad], "amount": {"currency": "EUR", "value": 1}}
    assert await reason_of(scheme(NEW), request(body_of(*items))) == "signature_mismatch"


async def test_one_unsigned_item_in_a_batch_rejects_the_whole_batch() -> None:
    items = [sdk_signed(item(pspReference="PSP0")), item(pspReference="PSP1")]
    assert await reason_of(scheme(NEW), request(body_of(*items))) == "missing_signature"


# -- missing and garbage signatures ----------------------------------------------------------------

@pytest.mark.parametrize("additional", [
    None, {}, {"hmacSignature": ""}, {"hmacSignature": None}, {"hmacSignature": 42}, "text",
])
async def test_item_without_a_signature_is_rejected(additional: Any) -> None:
    raw = item() if additional is None else item(additionalData=additional)
    assert await reason_of(scheme(NEW), request(body_of(raw))) == "missing_signature"


@pytest.mark.parametrize("signature", ["ünïcødé☃", "not base64 !!", "AAAA", "\x00\x7f"])
async def test_garbage_signature_is_a_mismatch_not_a_crash(signature: str) -> None:
    raw = item(additionalData={"hmacSignature": signature})
    assert await reason_of(scheme(NEW), request(body_of(raw))) == "signature_mismatch"


@pytest.mark.parametrize("body", [
    b"", b"not json", b"[]", b'"text"', b"{}", b'{"notificationItems": []}',
    b'{"notificationItems": {}}', b'{"notificationItems": [1]}',
    b'{"notificationItems": [{"Other": {}}]}',
    b'{"notificationItems": [{"NotificationRequestItem": []}]}',
    b"\xff\xfe garbage",
])
async def test_body_that_is_not_a_notification_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedRequest):
        await scheme(NEW).verify(request(body), now=NOW)


@pytest.mark.parametrize("change", [
    {"pspReference": 8535296650153317},
    {"amount": {"currency": "EUR", "value": 11.30}},
    {"amount": {"currency": "EUR", "value": True}},
    {"amount": "EUR 11.30"},
    {"success": 1},
    {"eventCode": ["CAPTURE"]},
])
async def test_signed_field_of_a_type_adyen_never_sends_is_malformed(
        change: dict[str, Any]) -> None:
    raw = {**item(), **change, "additionalData": {"hmacSignature": "AAAA"}}
    with pytest.raises(MalformedRequest):
        await scheme(NEW).verify(request(body_of(raw)), now=NOW)


@pytest.mark.parametrize("missing", ["pspReference", "eventCode"])
async def test_verified_item_without_psp_reference_or_event_code_is_malformed(
        missing: str) -> None:
    raw = {k: v for k, v in item().items() if k != missing}
    with pytest.raises(MalformedRequest):
        await scheme(NEW).verify(request(body_of(signed_item(raw, NEW))), now=NOW)


# -- Basic auth ------------------------------------------------------------------------------------

async def test_correct_basic_auth_and_signature_are_accepted() -> None:
    req = request(body_of(sdk_signed(item())), basic(BASIC.username, "correct horse battery"))
    assert await scheme(NEW, basic_auth=BASIC).verify(req, now=NOW)


@pytest.mark.parametrize("authorization", [
    None,
    "",
    basic("adyen-notifications", "wrong"),
    basic("someone-else", "correct horse battery"),
    "Bearer correct horse battery",
    "Basic !!!not-base64!!!",
    "Basic ünïcødé",
    basic("adyen-notifications", "correct horse battery").replace("Basic", "Digest"),
])
async def test_missing_or_wrong_basic_auth_is_rejected(authorization: str | None) -> None:
    req = request(body_of(sdk_signed(item())), authorization)
    assert await reason_of(scheme(NEW, basic_auth=BASIC), req) == "basic_auth_failed"


async def test_basic_auth_is_checked_before_the_body_is_read() -> None:
    assert await reason_of(scheme(NEW, basic_auth=BASIC), request(b"not json")) == (
        "basic_auth_failed")


# -- settings --------------------------------------------------------------------------------------

def endpoint(*secrets: str, basic_auth: BasicAuth | None = BASIC, **options: Any
             ) -> EndpointSettings:
    return EndpointSettings(name="adyen-eu", provider="adyen",
                            secrets=tuple(Secret(s) for s in secrets),
                            basic_auth=basic_auth, options=options)


def test_scheme_is_built_from_endpoint_settings() -> None:
    built = build_scheme(endpoint(NEW, OLD))
    assert built == BasicAuthGuard(scheme(NEW, OLD), BASIC)
    assert (built.success_body, built.success_media_type) == (b"[accepted]", "text/plain")
    assert built.content_types == frozenset({"application/json"})


@pytest.mark.parametrize("bad", ["not-hex-at-all", "ABC", "", "44 78"])
def test_key_that_is_not_hex_is_a_config_error_naming_the_key_ring(bad: str) -> None:
    with pytest.raises(ConfigError) as err:
        AdyenScheme.from_settings(endpoint(NEW, bad))
    assert err.value.key == "endpoints.adyen-eu.secrets"
    assert NEW not in str(err.value)


def test_unknown_option_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError) as err:
        AdyenScheme.from_settings(endpoint(NEW, hmac_key="typo"))
    assert err.value.key == "endpoints.adyen-eu.hmac_key"


def test_scheme_repr_shows_no_key() -> None:
    assert "keys" not in repr(scheme(NEW))


# -- properties ------------------------------------------------------------------------------------

text = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)  # JSON holds no surrogates
json_scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
                | text)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
item_fields = st.sampled_from(
    ["pspReference", "originalReference", "merchantAccountCode", "merchantReference", "amount",
     "eventCode", "success", "additionalData", "eventDate"])


@PROPERTY
@given(body=st.binary(max_size=512), authorization=st.text(max_size=100))
def test_arbitrary_bytes_raise_only_typed_errors(body: bytes, authorization: str) -> None:
    with contextlib.suppress(VerificationFailed, MalformedRequest):
        asyncio.run(scheme(NEW, OLD, basic_auth=BASIC).verify(request(body, authorization),
                                                              now=NOW))


@PROPERTY
@given(items=st.lists(st.dictionaries(item_fields, json_values, max_size=9), max_size=4),
       wrapper=json_values)
def test_arbitrary_notification_shapes_raise_only_typed_errors(
        items: list[dict[str, Any]], wrapper: Any) -> None:
    body = orjson.dumps({"live": wrapper, "notificationItems": [
        {"NotificationRequestItem": i} for i in items]})
    with contextlib.suppress(VerificationFailed, MalformedRequest):
        asyncio.run(scheme(NEW).verify(request(body), now=NOW))


@PROPERTY
@given(fields=st.fixed_dictionaries({
    "pspReference": text.filter(bool),
    "originalReference": text,
    "merchantAccountCode": text,
    "merchantReference": text,
    "eventCode": text.filter(bool),
    "success": st.sampled_from(["true", "false"]),
    "amount": st.fixed_dictionaries({"value": st.integers(0, 10**12), "currency": text}),
}))
def test_any_item_our_signer_signs_verifies_with_the_same_event_id(fields: dict[str, Any]
                                                                    ) -> None:
    verified = asyncio.run(scheme(NEW).verify(request(notification_body([fields], NEW)), now=NOW))
    assert [e.event_id for e in verified.events] == [event_id(fields)]


# -- round trip with the simulator -----------------------------------------------------------------

@pytest.mark.parametrize("seed", range(8))
async def test_simulated_lifecycles_verify_one_by_one_and_as_one_batch(seed: int) -> None:
    settings = endpoint(NEW, OLD)
    receiver = build_scheme(settings)
    events = sim.lifecycle(random.Random(seed), NOW)
    for event in events:
        signed = sim.sign([event], settings, NOW)
        verified = await receiver.verify(RawRequest(signed.body, signed.headers), now=NOW)
        assert [(e.event_id, e.payment_ref, e.event_type) for e in verified.events] == [
            (event.event_id, event.payment_ref, event.kind)]
    batch = sim.sign(events, settings, NOW)
    verified = await receiver.verify(RawRequest(batch.body, batch.headers), now=NOW)
    assert [e.event_id for e in verified.events] == [e.event_id for e in events]
    assert {e.payment_ref for e in verified.events} == {events[0].payment_ref}


def test_simulated_lifecycles_cover_captures_refunds_cancels_refusals_and_disputes() -> None:
    kinds = {e.kind for seed in range(60) for e in sim.lifecycle(random.Random(seed), NOW)}
    assert kinds >= {"AUTHORISATION", "CAPTURE", "REFUND", "CANCELLATION",
                     "NOTIFICATION_OF_CHARGEBACK", "CHARGEBACK", "CHARGEBACK_REVERSED",
                     "SECOND_CHARGEBACK"}
    refused = [e for seed in range(60) for e in sim.lifecycle(random.Random(seed), NOW)
               if e.event["success"] == "false"]
    assert refused


def test_simulated_event_ids_are_unique_across_payments() -> None:
    ids = [e.event_id for seed in range(40) for e in sim.lifecycle(random.Random(seed), NOW)]
    assert len(ids) == len(set(ids))
