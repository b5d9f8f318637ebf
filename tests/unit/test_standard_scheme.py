"""Standard Webhooks over raw bytes: v1 HMAC and v1a Ed25519, webhook-* and svix-* headers,
rotation, mixed key rings, timestamps both ways, garbage headers, and the simulator's lifecycles.

Independent oracles: the reference library ``standardwebhooks`` (it signs what we must accept and
verifies what we sign; it knows only v1 and ``webhook-*`` headers) and the published test vectors
of the reference libraries (standard-webhooks/standard-webhooks, ``libraries/go/webhook_test.go``
``TestWebhookSign`` and ``libraries/go/webhook_asymmetric_test.go`` ``TestAsymmetricWebhookSign``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import random
import time
import types
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import standardwebhooks
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from ingest.errors import MalformedRequest, VerificationFailed
from ingest.schemes import RawRequest, Scheme, build_scheme
from ingest.schemes.standard import (
    StandardScheme,
    private_key,
    private_key_text,
    public_key_text,
    sign_v1,
    sign_v1a,
    webhook_headers,
)
from payhooks.config import BasicAuth, ConfigError, EndpointSettings, Secret
from payhooks.sim import standard as sim

# the secret, id, time and payload of the reference libraries' published test vectors
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_SIGNING_KEY = "whsk_VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk="
VECTOR_MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_PAYLOAD = b'{"test": 2432232314}'
VECTOR_V1 = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
VECTOR_V1A = ("v1a,tQ9V2XOqn7jL/DQenEFpqIugdBVtiMmER5mhSkXBNwM0mkATuDe6KYYUuxqtaiHeYGb7KaaBRdM5Wqye"
              "FiL8Ag==")

NEW = VECTOR_SECRET
OLD = "whsec_" + base64.b64encode(b"the-old-secret-of-the-rotation!!").decode()
OTHER = "whsec_" + base64.b64encode(b"a-secret-nobody-configured-here").decode()
ED_KEY = Ed25519PrivateKey.generate()
ED_PUBLIC = public_key_text(ED_KEY)
ED_OTHER = Ed25519PrivateKey.generate()
NOW = 1_790_000_000
MSG_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
BODY = orjson.dumps({
    "type": "payment.captured", "timestamp": "2026-09-21T12:00:00.000Z",
    "data": {"payment_id": "pay_42", "amount": 1000, "currency": "EUR", "operation_id": "cap_1"},
})


def endpoint(*keys: str, tolerance: int = 300, basic_auth: BasicAuth | None = None,
             **options: Any) -> EndpointSettings:
    return EndpointSettings(name="acme", provider="standard",
                            secrets=tuple(Secret(k) for k in keys), tolerance_seconds=tolerance,
                            basic_auth=basic_auth, options=types.MappingProxyType(options))


def scheme(*keys: str, tolerance: int = 300, **options: Any) -> StandardScheme:
    options.setdefault("payment_ref_field", "data.payment_id")
    return StandardScheme.from_settings(endpoint(*keys, tolerance=tolerance, **options))


def request(body: bytes, headers: dict[str, str]) -> RawRequest:
    return RawRequest(body=body, headers=headers)


def signed(body: bytes = BODY, *entries: str, msg_id: str = MSG_ID, timestamp: int = NOW,
           prefix: str = "webhook-") -> RawRequest:
    """A request whose signature header carries ``entries`` (default: v1 with NEW)."""
    entries = entries or (sign_v1(msg_id, timestamp, body, NEW),)
    return request(body, webhook_headers(msg_id, timestamp, entries, prefix=prefix))


def library_entry(body: bytes, secret: str, msg_id: str = MSG_ID, timestamp: int = NOW) -> str:
    moment = datetime.fromtimestamp(timestamp, UTC)
    return standardwebhooks.Webhook(secret).sign(msg_id, moment, body.decode())


async def reason(scheme_: Scheme, req: RawRequest, now: float = NOW) -> str:
    with pytest.raises(VerificationFailed) as err:
        await scheme_.verify(req, now=now)
    return err.value.reason


# --- oracles: published vectors and the reference library ----------------------------------------


def test_our_v1_signer_reproduces_the_published_test_vector() -> None:
    assert sign_v1(VECTOR_MSG_ID, VECTOR_TIMESTAMP, VECTOR_PAYLOAD, VECTOR_SECRET) == VECTOR_V1


def test_our_v1a_signer_reproduces_the_published_test_vector() -> None:
    key = private_key(VECTOR_SIGNING_KEY)
    assert sign_v1a(VECTOR_MSG_ID, VECTOR_TIMESTAMP, VECTOR_PAYLOAD, key) == VECTOR_V1A


@pytest.mark.parametrize(("entry", "index"), [(VECTOR_V1, 0), (VECTOR_V1A, 1)])
async def test_published_test_vectors_are_accepted(entry: str, index: int) -> None:
    ring = (VECTOR_SECRET, public_key_text(private_key(VECTOR_SIGNING_KEY)))
    req = request(VECTOR_PAYLOAD, webhook_headers(VECTOR_MSG_ID, VECTOR_TIMESTAMP, [entry]))
    verified = await scheme(*ring).verify(req, now=VECTOR_TIMESTAMP)
    assert verified.key_index == index
    [event] = verified.events
    # the vectors' payload carries no type: the event is kept, typed ""
    assert (event.event_id, event.event_type, event.payload) == (VECTOR_MSG_ID, "", VECTOR_PAYLOAD)


async def test_genuine_message_signed_by_the_reference_library_is_accepted() -> None:
    verified = await scheme(NEW).verify(signed(BODY, library_entry(BODY, NEW)), now=NOW)
    assert verified.key_index == 0
    assert [(e.event_id, e.event_type, e.payment_ref, e.payload) for e in verified.events] == [
        (MSG_ID, "payment.captured", "pay_42", BODY)]


def test_our_signer_satisfies_the_reference_library_verifier() -> None:
    now = int(time.time())  # the library reads the clock itself
    headers = webhook_headers(MSG_ID, now, [sign_v1(MSG_ID, now, BODY, NEW)])
    assert standardwebhooks.Webhook(NEW).verify(BODY, headers) == orjson.loads(BODY)


def test_v1_key_is_the_base64_decoded_secret_not_the_text() -> None:
    content = f"{MSG_ID}.{NOW}.".encode() + BODY
    decoded = base64.b64decode(NEW.removeprefix("whsec_"))
    by_hand = base64.b64encode(hmac.new(decoded, content, hashlib.sha256).digest()).decode()
    assert sign_v1(MSG_ID, NOW, BODY, NEW) == f"v1,{by_hand}"


# --- key ring and rotation ----------------------------------------------------------------------


async def test_old_key_of_the_ring_is_accepted_and_reported() -> None:
    verified = await scheme(NEW, OLD).verify(signed(BODY, library_entry(BODY, OLD)), now=NOW)
    assert verified.key_index == 1


async def test_header_with_several_signatures_during_rotation_is_accepted() -> None:
    entries = (sign_v1(MSG_ID, NOW, BODY, OTHER), "v2,bm90IGEgcmVhbCB2ZXJzaW9u",
               sign_v1(MSG_ID, NOW, BODY, OLD), sign_v1(MSG_ID, NOW, BODY, NEW))
    assert (await scheme(NEW, OLD).verify(signed(BODY, *entries), now=NOW)).key_index == 0
    assert (await scheme(OLD).verify(signed(BODY, *entries), now=NOW)).key_index == 0


async def test_wrong_key_is_rejected() -> None:
    req = signed(BODY, library_entry(BODY, OTHER))
    assert await reason(scheme(NEW, OLD), req) == "signature_mismatch"


@pytest.mark.parametrize("tamper", [
    lambda h: {**h, "webhook-id": "msg_someone_else"},
    lambda h: {**h, "webhook-timestamp": str(NOW + 1)},
    lambda h: {**h, "webhook-timestamp": f"0{NOW}"},  # same number, different signed text
])
async def test_tampered_id_or_timestamp_is_rejected(tamper: Callable[[dict[str, str]],
                                                                      dict[str, str]]) -> None:
    headers = webhook_headers(MSG_ID, NOW, [library_entry(BODY, NEW)])
    assert await reason(scheme(NEW), request(BODY, tamper(headers))) == "signature_mismatch"


@pytest.mark.parametrize("tamper", [
    lambda b: b.replace(b"1000", b"9000"),
    lambda b: b + b" ",
    lambda b: b[:-1],
    lambda b: orjson.dumps(orjson.loads(b), option=orjson.OPT_INDENT_2),  # re-serialised
])
async def test_tampered_body_is_rejected(tamper: Callable[[bytes], bytes]) -> None:
    headers = webhook_headers(MSG_ID, NOW, [library_entry(BODY, NEW)])
    assert await reason(scheme(NEW), request(tamper(BODY), headers)) == "signature_mismatch"


# --- v1a Ed25519 and mixed rings -----------------------------------------------------------------


async def test_ed25519_v1a_signature_is_accepted() -> None:
    verified = await scheme(ED_PUBLIC).verify(
        signed(BODY, sign_v1a(MSG_ID, NOW, BODY, ED_KEY)), now=NOW)
    assert verified.key_index == 0
    assert verified.events[0].payment_ref == "pay_42"


async def test_mixed_ring_reports_the_public_key_that_matched() -> None:
    entries = (sign_v1(MSG_ID, NOW, BODY, OTHER), sign_v1a(MSG_ID, NOW, BODY, ED_KEY))
    ring = (NEW, public_key_text(ED_OTHER), ED_PUBLIC)
    assert (await scheme(*ring).verify(signed(BODY, *entries), now=NOW)).key_index == 2


@pytest.mark.parametrize("tamper", [
    lambda r: request(r.body + b" ", dict(r.headers)),
    lambda r: request(r.body, {**r.headers, "webhook-id": "msg_other"}),
    lambda r: request(r.body, {**r.headers, "webhook-timestamp": str(NOW - 1)}),
])
async def test_tampered_v1a_message_is_rejected(tamper: Callable[[RawRequest], RawRequest]
                                                ) -> None:
    req = tamper(signed(BODY, sign_v1a(MSG_ID, NOW, BODY, ED_KEY)))
    assert await reason(scheme(ED_PUBLIC), req) == "signature_mismatch"


async def test_v1a_signature_of_another_key_pair_is_rejected() -> None:
    req = signed(BODY, sign_v1a(MSG_ID, NOW, BODY, ED_OTHER))
    assert await reason(scheme(ED_PUBLIC), req) == "signature_mismatch"


async def test_public_key_never_accepts_a_v1_hmac_entry() -> None:
    # the public key is public: an HMAC keyed with its bytes must not pass as a v1 signature
    public_raw = base64.b64decode(ED_PUBLIC.removeprefix("whpk_"))
    content = f"{MSG_ID}.{NOW}.".encode() + BODY
    forged = base64.b64encode(hmac.new(public_raw, content, hashlib.sha256).digest()).decode()
    as_whsec = "whsec_" + ED_PUBLIC.removeprefix("whpk_")
    ed_sig = sign_v1a(MSG_ID, NOW, BODY, ED_KEY).removeprefix("v1a,")
    req = signed(BODY, f"v1,{forged}", sign_v1(MSG_ID, NOW, BODY, as_whsec), f"v1,{ed_sig}")
    assert await reason(scheme(ED_PUBLIC), req) == "signature_mismatch"


async def test_hmac_secret_never_accepts_a_v1a_entry() -> None:
    hmac_sig = sign_v1(MSG_ID, NOW, BODY, NEW).removeprefix("v1,")
    req = signed(BODY, f"v1a,{hmac_sig}", sign_v1a(MSG_ID, NOW, BODY, ED_KEY))
    assert await reason(scheme(NEW), req) == "signature_mismatch"


# --- timestamps -----------------------------------------------------------------------------------


async def test_stale_timestamp_is_rejected() -> None:
    req = signed(BODY, library_entry(BODY, NEW, timestamp=NOW - 301), timestamp=NOW - 301)
    assert await reason(scheme(NEW), req) == "timestamp_too_old"


async def test_future_timestamp_is_rejected() -> None:
    req = signed(BODY, library_entry(BODY, NEW, timestamp=NOW + 301), timestamp=NOW + 301)
    assert await reason(scheme(NEW), req) == "timestamp_in_future"


async def test_timestamp_at_the_edge_of_tolerance_is_accepted() -> None:
    for ts in (NOW - 300, NOW + 300):
        assert await scheme(NEW).verify(signed(BODY, library_entry(BODY, NEW, timestamp=ts),
                                               timestamp=ts), now=NOW)


async def test_configured_tolerance_is_used() -> None:
    req = signed(BODY, sign_v1(MSG_ID, NOW - 100, BODY, NEW), timestamp=NOW - 100)
    assert await reason(scheme(NEW, tolerance=60), req) == "timestamp_too_old"


async def test_forged_stale_message_is_a_mismatch_not_a_timing_hint() -> None:
    req = signed(BODY, sign_v1(MSG_ID, NOW - 900, BODY, OTHER), timestamp=NOW - 900)
    assert await reason(scheme(NEW), req) == "signature_mismatch"


# --- header sets ----------------------------------------------------------------------------------


async def test_svix_headers_are_accepted() -> None:
    req = signed(BODY, library_entry(BODY, NEW), prefix="svix-")
    assert (await scheme(NEW).verify(req, now=NOW)).events[0].event_id == MSG_ID


async def test_webhook_headers_win_over_svix_headers() -> None:
    genuine = webhook_headers(MSG_ID, NOW, [sign_v1(MSG_ID, NOW, BODY, NEW)])
    stale = webhook_headers("msg_svix", NOW - 900, ["v1,AAAA"], prefix="svix-")
    verified = await scheme(NEW).verify(request(BODY, {**stale, **genuine}), now=NOW)
    assert verified.events[0].event_id == MSG_ID


@pytest.mark.parametrize("mixed", ["id", "timestamp", "signature"])
async def test_a_mix_of_webhook_and_svix_headers_is_rejected(mixed: str) -> None:
    headers = webhook_headers(MSG_ID, NOW, [sign_v1(MSG_ID, NOW, BODY, NEW)])
    headers[f"svix-{mixed}"] = headers.pop(f"webhook-{mixed}")
    assert await reason(scheme(NEW), request(BODY, headers)) == "missing_header"


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
async def test_missing_or_empty_header_is_rejected(missing: str) -> None:
    headers = webhook_headers(MSG_ID, NOW, [sign_v1(MSG_ID, NOW, BODY, NEW)])
    del headers[missing]
    assert await reason(scheme(NEW), request(BODY, headers)) == "missing_header"
    assert await reason(scheme(NEW), request(BODY, {**headers, missing: ""})) == "missing_header"


@pytest.mark.parametrize("timestamp", ["abc", "-5", "1.5", "1e9", "١٢٣", "1234567890123", " 17"])
async def test_malformed_timestamp_is_rejected(timestamp: str) -> None:
    headers = {**webhook_headers(MSG_ID, NOW, ["v1,AAAA"]), "webhook-timestamp": timestamp}
    assert await reason(scheme(NEW), request(BODY, headers)) == "malformed_header"


@pytest.mark.parametrize("header", ["garbage", "v1", "v1;abc", "   ", "ünïcødé☃",
                                   " ".join(["v1,AAAA"] * 17)])
async def test_malformed_signature_header_is_rejected(header: str) -> None:
    headers = {**webhook_headers(MSG_ID, NOW, []), "webhook-signature": header}
    assert await reason(scheme(NEW), request(BODY, headers)) == "malformed_header"


@pytest.mark.parametrize("header", ["v1,", "v1,!!!notbase64", "v1,ünïcødé☃", "v2,AAAA v1b,AAAA",
                                    "v1,AAAA", "v1a,AAAA"])
async def test_signature_entries_nothing_can_check_are_a_mismatch(header: str) -> None:
    headers = {**webhook_headers(MSG_ID, NOW, []), "webhook-signature": header}
    assert await reason(scheme(NEW, ED_PUBLIC), request(BODY, headers)) == "signature_mismatch"


async def test_failure_details_hold_no_secret_signature_or_body() -> None:
    entry = sign_v1(MSG_ID, NOW, BODY, OTHER)
    for req, now in [(signed(BODY, entry), NOW), (signed(BODY), NOW + 3600),
                     (request(BODY, {"webhook-signature": entry}), NOW)]:
        with pytest.raises(VerificationFailed) as err:
            await scheme(NEW).verify(req, now=now)
        for leak in (entry.removeprefix("v1,"), NEW, NEW.removeprefix("whsec_"), BODY.decode(),
                     "pay_42"):
            assert leak not in err.value.detail


# --- payloads -------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"not json", b'["a", "list"]', b"", b"\xff\xfe"])
async def test_verified_body_that_is_not_a_json_object_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedRequest):
        await scheme(NEW).verify(signed(body, sign_v1(MSG_ID, NOW, body, NEW)), now=NOW)


async def test_payment_ref_is_none_when_nothing_is_at_the_configured_field() -> None:
    verified = await scheme(NEW, payment_ref_field="data.nowhere").verify(signed(), now=NOW)
    assert verified.events[0].payment_ref is None


async def test_payment_ref_defaults_to_the_canonical_payloads_data_payment_id() -> None:
    plain = StandardScheme.from_settings(endpoint(NEW))
    assert (await plain.verify(signed(), now=NOW)).events[0].payment_ref == "pay_42"


async def test_basic_auth_is_checked_when_the_endpoint_configures_it() -> None:
    auth = BasicAuth("acme", Secret("s3cret"))
    guarded = build_scheme(endpoint(NEW, basic_auth=auth))
    assert await reason(guarded, signed()) == "basic_auth_failed"
    token = base64.b64encode(b"acme:s3cret").decode()
    req = signed()
    req = request(req.body, {**req.headers, "authorization": f"Basic {token}"})
    assert await guarded.verify(req, now=NOW)


# --- configuration --------------------------------------------------------------------------------


def test_the_scheme_table_builds_the_standard_scheme() -> None:
    built = build_scheme(endpoint(NEW, ED_PUBLIC, payment_ref_field="data.payment_id"))
    assert isinstance(built, StandardScheme)
    assert built.provider == "standard"
    assert built.content_types == frozenset({"application/json"})


@pytest.mark.parametrize("bad", [
    "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # no prefix
    "whsec_", "whsec_!!!not-base64!!!", "whsec_abcde",
    "whpk_" + base64.b64encode(b"short").decode(),
    "whpk_not base64",
    private_key_text(ED_KEY),  # a private key
    "sk_live_whatever",
])
def test_key_that_is_not_whsec_or_whpk_is_a_config_error_naming_secrets(bad: str) -> None:
    with pytest.raises(ConfigError) as err:
        StandardScheme.from_settings(endpoint(NEW, bad))
    assert err.value.key == "endpoints.acme.secrets"
    assert "key 1" in err.value.problem
    secret_part = bad.partition("_")[2]
    assert not secret_part or secret_part not in str(err.value)


def test_secret_without_base64_padding_is_accepted() -> None:
    padded = "whsec_" + base64.b64encode(b"twenty-five-bytes-of-key!").decode()
    assert padded.endswith("=")
    unpadded = StandardScheme.from_settings(endpoint(padded.rstrip("=")))
    assert unpadded.keys == StandardScheme.from_settings(endpoint(padded)).keys


def test_unknown_option_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError) as err:
        StandardScheme.from_settings(endpoint(NEW, payment_ref="data.id"))
    assert err.value.key == "endpoints.acme.payment_ref"


@pytest.mark.parametrize("path", ["", "data..id", ".id", 42])
def test_bad_payment_ref_field_is_a_config_error(path: object) -> None:
    with pytest.raises(ConfigError) as err:
        StandardScheme.from_settings(endpoint(NEW, payment_ref_field=path))
    assert err.value.key == "endpoints.acme.payment_ref_field"


def test_simulator_options_are_accepted_and_ignored() -> None:
    built = StandardScheme.from_settings(endpoint(ED_PUBLIC, sim_signing_key="whsk_x", sim_x=1))
    assert built == StandardScheme.from_settings(endpoint(ED_PUBLIC))


# --- arbitrary input ------------------------------------------------------------------------------

HEADER_NAMES = [f"{p}{n}" for p in ("webhook-", "svix-") for n in ("id", "timestamp", "signature")]


@given(body=st.binary(max_size=512),
       headers=st.dictionaries(st.sampled_from(HEADER_NAMES), st.text(max_size=120)),
       now=st.integers(min_value=0, max_value=2**40))
def test_arbitrary_headers_and_bodies_raise_only_typed_errors(
        body: bytes, headers: dict[str, str], now: int) -> None:
    with contextlib.suppress(VerificationFailed, MalformedRequest):
        asyncio.run(scheme(NEW, ED_PUBLIC).verify(request(body, headers), now=now))


@given(body=st.binary(max_size=256), junk=st.lists(st.text(max_size=40), max_size=5),
       msg_id=st.text(min_size=1, max_size=40).filter(str.strip))
def test_arbitrary_signature_entries_raise_only_typed_errors(
        body: bytes, junk: list[str], msg_id: str) -> None:
    headers = {**webhook_headers(msg_id, NOW, []), "webhook-signature": " ".join(junk)}
    with contextlib.suppress(VerificationFailed, MalformedRequest):
        asyncio.run(scheme(NEW, ED_PUBLIC).verify(request(body, headers), now=NOW))


@given(body=st.binary(max_size=256),
       msg_id=st.text(min_size=1, max_size=40).filter(lambda s: s == s.strip() and s.strip()))
def test_any_genuinely_signed_body_passes_verification(body: bytes, msg_id: str) -> None:
    req = signed(body, sign_v1a(msg_id, NOW, body, ED_KEY), msg_id=msg_id)
    try:
        verified = asyncio.run(scheme(ED_PUBLIC).verify(req, now=NOW))
    except MalformedRequest:
        return  # the signature held; the body is not a JSON object
    assert verified.events[0].event_id == msg_id
    assert verified.events[0].payload == body


# --- the simulator --------------------------------------------------------------------------------


@pytest.mark.parametrize("ring", ["hmac", "ed25519"])
async def test_simulated_lifecycles_verify_with_the_expected_ids_and_refs(ring: str) -> None:
    if ring == "hmac":
        settings = endpoint(NEW, OLD, payment_ref_field="data.payment_id")
    else:
        settings = endpoint(ED_PUBLIC, NEW, payment_ref_field="data.payment_id",
                            sim_signing_key=private_key_text(ED_KEY))
    receiver = StandardScheme.from_settings(settings)
    kinds = set()
    for seed in range(40):
        events = sim.lifecycle(random.Random(seed), NOW)
        assert len({e.payment_ref for e in events}) == 1
        for event in events:
            req = sim.sign([event], settings, NOW + 5)
            verified = await receiver.verify(request(req.body, req.headers), now=NOW + 5)
            assert verified.key_index == 0
            assert [(e.event_id, e.event_type, e.payment_ref) for e in verified.events] == [
                (event.event_id, event.kind, event.payment_ref)]
            assert req.headers["content-type"] == "application/json"
            assert req.headers["webhook-signature"].startswith(
                "v1," if ring == "hmac" else "v1a,")
            kinds.add(event.kind)
    assert kinds >= {"payment.authorized", "payment.captured", "payment.refunded",
                     "payment.canceled", "payment.authorization_failed", "dispute.opened"}


def test_simulated_lifecycles_are_seeded_and_money_is_well_formed() -> None:
    assert sim.lifecycle(random.Random(7), NOW) == sim.lifecycle(random.Random(7), NOW)
    for seed in range(200):
        events = sim.lifecycle(random.Random(seed), NOW)
        data = [e.event["data"] for e in events]
        assert all(isinstance(d["amount"], int) and d["amount"] > 0 for d in data)
        assert all(d["currency"].isupper() and len(d["currency"]) == 3 for d in data)
        authorized = sum(d["amount"] for e, d in zip(events, data, strict=True)
                         if e.kind == "payment.authorized")
        captures = [d for e, d in zip(events, data, strict=True) if e.kind == "payment.captured"]
        refunded = sum(d["amount"] for e, d in zip(events, data, strict=True)
                       if e.kind == "payment.refunded")
        assert sum(d["amount"] for d in captures) <= authorized
        assert refunded <= sum(d["amount"] for d in captures)
        assert len({d["operation_id"] for d in captures}) == len(captures)
        assert len({e.event_id for e in events}) == len(events)


def test_simulator_needs_the_private_key_of_a_public_key_ring() -> None:
    [event, *_] = sim.lifecycle(random.Random(1), NOW)
    with pytest.raises(ConfigError) as err:
        sim.sign([event], endpoint(ED_PUBLIC), NOW)
    assert err.value.key == "endpoints.acme.sim_signing_key"
    with pytest.raises(ConfigError):
        sim.sign([event], endpoint(ED_PUBLIC, sim_signing_key=private_key_text(ED_OTHER)), NOW)


def test_scheme_repr_shows_no_key_material() -> None:
    text = repr(StandardScheme.from_settings(endpoint(NEW, OLD)))
    for secret in (NEW, OLD):
        raw = base64.b64decode(secret.removeprefix("whsec_"))
        assert secret.removeprefix("whsec_") not in text
        assert repr(raw) not in text
