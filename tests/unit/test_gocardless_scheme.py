"""GoCardless's scheme over raw bytes: batches split per event, all or nothing, rotated keys,
tampered bodies and garbage headers.

GoCardless's own SDK (``gocardless_pro.webhooks.parse``) is the independent oracle: it verifies
what our signer produces and parses the same events out of the batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import types

import orjson
import pytest
from gocardless_pro import webhooks as gocardless_sdk
from gocardless_pro.errors import InvalidSignatureError
from hypothesis import given
from hypothesis import strategies as st

from ingest.errors import MalformedRequest, VerificationFailed
from ingest.schemes import RawRequest, build_scheme
from ingest.schemes.gocardless import HEADER, GoCardlessScheme, payment_ref, signature
from payhooks.config import ConfigError, EndpointSettings, Secret
from payhooks.sim import gocardless as gocardless_sim

NEW, OLD = "gc-webhook-secret-new-5f0c1d2e", "gc-webhook-secret-old-9a8b7c6d"
NOW = 1_790_000_000


def gc_event(event_id: str, action: str, payment: str | None = "PM0001ABCDEF") -> dict[str, object]:
    links = {"mandate": "MD0001ABCDEF"} | ({"payment": payment} if payment else {})
    return {"id": event_id, "created_at": "2026-09-21T12:00:00.000Z",
            "resource_type": "payments" if payment else "mandates", "action": action,
            "links": links, "details": {"origin": "gocardless", "cause": f"payment_{action}"},
            "metadata": {}}


EVENTS = [gc_event("EV0001", "submitted"), gc_event("EV0002", "confirmed"),
          gc_event("EV0003", "active", payment=None)]
BODY = orjson.dumps({"events": EVENTS, "meta": {"webhook_id": "WB0001"}})


def scheme(*keys: str) -> GoCardlessScheme:
    return GoCardlessScheme(keys=tuple(k.encode() for k in keys))


def request(body: bytes, header: str | None) -> RawRequest:
    return RawRequest(body=body, headers={} if header is None else {HEADER: header})


def endpoint(**options: object) -> EndpointSettings:
    return EndpointSettings(name="gc", provider="gocardless",
                            secrets=(Secret(NEW), Secret(OLD)),
                            options=types.MappingProxyType(options))


async def test_genuine_batch_is_split_into_one_event_per_item() -> None:
    header = signature(BODY, NEW)
    sdk_events = gocardless_sdk.parse(BODY, NEW, header)
    verified = await scheme(NEW).verify(request(BODY, header), now=NOW)
    assert verified.key_index == 0
    assert [(e.event_id, e.event_type, e.payment_ref) for e in verified.events] == [
        ("EV0001", "payments.submitted", "PM0001ABCDEF"),
        ("EV0002", "payments.confirmed", "PM0001ABCDEF"),
        ("EV0003", "mandates.active", None),
    ]
    assert [e.event_id for e in verified.events] == [e.id for e in sdk_events]
    assert [orjson.loads(e.payload) for e in verified.events] == EVENTS


def test_our_signer_satisfies_gocardless_sdk_verifier() -> None:
    assert len(gocardless_sdk.parse(BODY, NEW, signature(BODY, NEW))) == 3
    with pytest.raises(InvalidSignatureError):
        gocardless_sdk.parse(BODY, OLD, signature(BODY, NEW))


async def test_old_key_of_the_ring_is_accepted_and_reported() -> None:
    header = signature(BODY, OLD)
    assert gocardless_sdk.parse(BODY, OLD, header)
    assert (await scheme(NEW, OLD).verify(request(BODY, header), now=NOW)).key_index == 1


async def test_wrong_key_is_rejected() -> None:
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW, OLD).verify(request(BODY, signature(BODY, "other")), now=NOW)
    assert err.value.reason == "signature_mismatch"


@pytest.mark.parametrize("tamper", [
    lambda b: b.replace(b"EV0002", b"EV0009"),  # one event of the batch
    lambda b: b.replace(b'"confirmed"', b'"failed"'),
    lambda b: b + b"\n",
    lambda b: b[:-1],
])
async def test_tampered_batch_is_rejected_as_a_whole(tamper: object) -> None:
    header = signature(BODY, NEW)
    body = tamper(BODY)  # type: ignore[operator]
    with pytest.raises(InvalidSignatureError):
        gocardless_sdk.parse(body, NEW, header)
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
async def test_missing_header_is_rejected(header: str | None) -> None:
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW).verify(request(BODY, header), now=NOW)
    assert err.value.reason == "missing_header"


@pytest.mark.parametrize("header", [
    "garbage", "ab" * 31, "ab" * 33, "sha256=" + "ab" * 32, "ünïcødé☃" * 8, "zz" * 32,
    " " + "ab" * 32,
])
async def test_malformed_header_is_rejected(header: str) -> None:
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW).verify(request(BODY, header), now=NOW)
    assert err.value.reason == "malformed_header"


@pytest.mark.parametrize("items", [
    [gc_event("EV1", "confirmed"), {**gc_event("EV2", "paid_out"), "id": None}],
    [gc_event("EV1", "confirmed"), {k: v for k, v in gc_event("EV2", "x").items() if k != "id"}],
    [gc_event("EV1", "confirmed"), {**gc_event("EV2", "paid_out"), "id": ""}],
    [gc_event("EV1", "confirmed"), "EV2"],
    [gc_event("EV1", "confirmed"), {**gc_event("EV2", "x"), "resource_type": None}],
    [],
])
async def test_authentic_batch_with_an_unreadable_event_is_malformed_as_a_whole(
        items: list[object]) -> None:
    body = orjson.dumps({"events": items})
    with pytest.raises(MalformedRequest):
        await scheme(NEW).verify(request(body, signature(body, NEW)), now=NOW)


@pytest.mark.parametrize("body", [b"not json", b'[{"id": "EV1"}]', b'{"events": {"id": "EV1"}}',
                                  b'{"event": []}'])
async def test_verified_body_that_is_not_a_batch_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedRequest):
        await scheme(NEW).verify(request(body, signature(body, NEW)), now=NOW)


async def test_failure_detail_holds_no_signature_key_or_body() -> None:
    body = orjson.dumps({"events": [{"id": None, "secret": "card-4111"}]})
    for header, error in ((signature(BODY, "other"), VerificationFailed),
                          (signature(body, NEW), MalformedRequest)):
        with pytest.raises(error) as err:
            await scheme(NEW).verify(request(body if error is MalformedRequest else BODY,
                                             header), now=NOW)
        for secret in (NEW, header, "card-4111", "EV0001"):
            assert secret not in str(err.value)


@pytest.mark.parametrize(("event", "ref"), [
    ({"links": {"payment": "PM1", "mandate": "MD1"}}, "PM1"),
    ({"links": {"mandate": "MD1"}}, None),
    ({"links": {"payment": ""}}, None),
    ({"links": "PM1"}, None),
    ({}, None),
])
def test_payment_reference_is_the_linked_payment(event: dict[str, object], ref: str | None
                                                 ) -> None:
    assert payment_ref(event) == ref


def test_settings_build_the_scheme() -> None:
    built = build_scheme(endpoint())
    assert isinstance(built, GoCardlessScheme)
    assert built.keys == (NEW.encode(), OLD.encode())


def test_unknown_option_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError) as err:
        GoCardlessScheme.from_settings(endpoint(webhook_secret="x"))
    assert err.value.key == "endpoints.gc.webhook_secret"


def test_empty_key_in_the_ring_is_a_config_error() -> None:
    settings = EndpointSettings(name="gc", provider="gocardless", secrets=(Secret(""),))
    with pytest.raises(ConfigError) as err:
        GoCardlessScheme.from_settings(settings)
    assert err.value.key == "endpoints.gc.secrets"


_HEADER_VALUES = st.one_of(
    st.text(max_size=80),
    st.binary(max_size=80).map(lambda b: b.decode("latin-1")),  # how Starlette decodes headers
    st.binary(min_size=32, max_size=32).map(bytes.hex),
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)


@given(body=st.binary(max_size=512), header=_HEADER_VALUES)
def test_arbitrary_input_raises_only_typed_errors(body: bytes, header: str) -> None:
    with contextlib.suppress(VerificationFailed, MalformedRequest):
        asyncio.run(scheme(NEW, OLD).verify(request(body, header), NOW))


@given(batch=st.one_of(_JSON, st.fixed_dictionaries({"events": st.lists(_JSON, max_size=4)})))
def test_arbitrary_authentic_json_raises_only_malformed_or_passes(batch: object) -> None:
    body = orjson.dumps(batch)
    with contextlib.suppress(MalformedRequest):
        asyncio.run(scheme(NEW, OLD).verify(request(body, signature(body, OLD)), NOW))


@pytest.mark.parametrize("seed", range(20))
async def test_simulated_lifecycles_verify_as_one_batch_and_one_by_one(seed: int) -> None:
    settings = endpoint()
    built = GoCardlessScheme.from_settings(settings)
    events = gocardless_sim.lifecycle(random.Random(seed), NOW)
    expected = [(e.event_id, e.kind, e.payment_ref) for e in events]

    batch = gocardless_sim.sign(events, settings, NOW)
    assert len(gocardless_sdk.parse(batch.body, NEW, batch.headers[HEADER])) == len(events)
    verified = await built.verify(RawRequest(batch.body, batch.headers), NOW)
    assert [(e.event_id, e.event_type, e.payment_ref) for e in verified.events] == expected
    assert [orjson.loads(e.payload) for e in verified.events] == [e.event for e in events]

    one_by_one = []
    for event in events:
        signed = gocardless_sim.sign([event], settings, NOW)
        [item] = (await built.verify(RawRequest(signed.body, signed.headers), NOW)).events
        one_by_one.append((item.event_id, item.event_type, item.payment_ref))
    assert one_by_one == expected
