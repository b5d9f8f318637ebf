"""Mollie's next-gen scheme over raw bytes: genuine, tampered, the two-signature rotation, classic
(unsigned) webhooks, garbage headers.

Mollie's own SDK (mollie-api-py's ``SignatureValidator``) is the independent oracle: it computes
signatures we must accept and validates what our signer produces, rotation included.
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
from mollie.utils.webhooks import InvalidSignatureException, SignatureValidator
from starlette.datastructures import Headers

from ingest.errors import MalformedRequest, VerificationFailed
from ingest.schemes import RawRequest, build_scheme
from ingest.schemes.mollie import HEADER, MollieScheme, payment_ref, signature, signatures
from payhooks.config import BasicAuth, ConfigError, EndpointSettings, Secret
from payhooks.sim import mollie as mollie_sim

NEW, OLD = "mollie-signing-secret-new-5f0c1d", "mollie-signing-secret-old-9a8b7c"
NOW = 1_790_000_000
BODY = orjson.dumps({
    "resource": "event", "id": "event_GvJ8WHrp5isUdRub9CJyH", "type": "payment.paid",
    "entityId": "tr_5B8cwPMGnU", "createdAt": "2026-09-21T12:00:00.000Z",
    "_embedded": {"entity": {"resource": "payment", "id": "tr_5B8cwPMGnU", "status": "paid",
                             "amount": {"value": "24.95", "currency": "EUR"}}},
})


def scheme(*keys: str) -> MollieScheme:
    return MollieScheme(keys=tuple(k.encode() for k in keys))


def request(body: bytes, *lines: str) -> RawRequest:
    """A request as Starlette hands it over: every header line kept, in order."""
    return RawRequest(body=body, headers=Headers(raw=[(HEADER.encode(), line.encode("latin-1"))
                                                      for line in lines]))


def endpoint(**options: object) -> EndpointSettings:
    return EndpointSettings(name="mol", provider="mollie", secrets=(Secret(NEW), Secret(OLD)),
                            options=types.MappingProxyType(options))


def sdk_accepts(body: bytes, lines: list[str], secrets: list[str]) -> bool:
    try:
        return SignatureValidator.validate(body.decode(), secrets, lines)
    except InvalidSignatureException:
        return False


async def test_genuine_event_signed_by_mollies_sdk_is_accepted() -> None:
    header = "sha256=" + SignatureValidator.create_signature(BODY.decode(), NEW)
    verified = await scheme(NEW).verify(request(BODY, header), now=NOW)
    assert verified.key_index == 0
    assert [(e.event_id, e.event_type, e.payment_ref) for e in verified.events] == [
        ("event_GvJ8WHrp5isUdRub9CJyH", "payment.paid", "tr_5B8cwPMGnU")]
    assert verified.events[0].payload == BODY


def test_our_signer_satisfies_mollies_sdk_validator() -> None:
    assert signature(BODY, NEW) == "sha256=" + SignatureValidator.create_signature(
        BODY.decode(), NEW)
    assert sdk_accepts(BODY, [signature(BODY, NEW)], [NEW])
    assert not sdk_accepts(BODY, [signature(BODY, NEW)], [OLD])


async def test_old_key_of_the_ring_is_accepted_and_reported() -> None:
    verified = await scheme(NEW, OLD).verify(request(BODY, signature(BODY, OLD)), now=NOW)
    assert verified.key_index == 1


@pytest.mark.parametrize("ring", [(NEW,), (OLD,), (NEW, OLD), (OLD, NEW)])
async def test_rotation_delivery_with_two_signature_headers_is_accepted(ring: tuple[str, ...]
                                                                        ) -> None:
    lines = signatures(BODY, [NEW, OLD])  # Mollie: two X-Mollie-Signature lines for 24 hours
    assert sdk_accepts(BODY, lines, list(ring))
    assert (await scheme(*ring).verify(request(BODY, *lines), now=NOW)).key_index == 0


async def test_rotation_signatures_folded_into_one_header_are_accepted() -> None:
    folded = ", ".join(signatures(BODY, [NEW, OLD]))  # what a proxy may make of the two lines
    for ring in ((NEW,), (OLD,)):
        assert (await scheme(*ring).verify(request(BODY, folded), now=NOW)).key_index == 0
    plain = RawRequest(body=BODY, headers={HEADER: folded})  # a plain lower-case mapping
    assert (await scheme("unrelated", OLD).verify(plain, now=NOW)).key_index == 1


async def test_rotation_delivery_is_rejected_when_neither_signature_matches() -> None:
    lines = signatures(BODY, [NEW, OLD])
    assert not sdk_accepts(BODY, lines, ["third"])
    with pytest.raises(VerificationFailed) as err:
        await scheme("third").verify(request(BODY, *lines), now=NOW)
    assert err.value.reason == "signature_mismatch"


async def test_wrong_key_is_rejected() -> None:
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW, OLD).verify(request(BODY, signature(BODY, "other")), now=NOW)
    assert err.value.reason == "signature_mismatch"


@pytest.mark.parametrize("tamper", [
    lambda b: b.replace(b"24.95", b"94.95"),
    lambda b: b + b" ",
    lambda b: b[:-1],
    lambda b: orjson.dumps(orjson.loads(b), option=orjson.OPT_INDENT_2),
])
async def test_tampered_body_is_rejected(tamper: object) -> None:
    header = signature(BODY, NEW)
    body = tamper(BODY)  # type: ignore[operator]
    assert not sdk_accepts(body, [header], [NEW])
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW).verify(request(body, header), now=NOW)
    assert err.value.reason == "signature_mismatch"


async def test_tampered_signature_is_rejected() -> None:
    header = signature(BODY, NEW)
    flipped = header[:7] + ("0" if header[7] != "0" else "1") + header[8:]
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW).verify(request(BODY, flipped), now=NOW)
    assert err.value.reason == "signature_mismatch"


@pytest.mark.parametrize("lines", [(), ("",), (" , ",)])
async def test_missing_header_is_rejected(lines: tuple[str, ...]) -> None:
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW).verify(request(BODY, *lines), now=NOW)
    assert err.value.reason == "missing_header"


async def test_classic_unsigned_webhook_is_rejected() -> None:
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW).verify(RawRequest(b"id=tr_5B8cwPMGnU", {}), now=NOW)
    assert err.value.reason == "missing_header"


@pytest.mark.parametrize("header", [
    "garbage",
    "ab" * 32,  # hex without the sha256= prefix (Mollie always sends it)
    "sha1=" + "ab" * 20,
    "sha256=" + "ab" * 31,
    "sha256=" + base64.b64encode(b"\x00" * 32).decode(),
    "sha256=" + "ünïcødé☃" * 8,
    "SHA256=" + "ab" * 32,
])
async def test_malformed_header_is_rejected(header: str) -> None:
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW).verify(RawRequest(BODY, {HEADER: header}), now=NOW)
    assert err.value.reason == "malformed_header"


async def test_one_malformed_value_beside_a_good_one_does_not_matter() -> None:
    verified = await scheme(NEW).verify(request(BODY, "garbage", signature(BODY, NEW)), now=NOW)
    assert verified.key_index == 0


async def test_failure_detail_holds_no_signature_key_or_body() -> None:
    header = signature(BODY, "other")
    with pytest.raises(VerificationFailed) as err:
        await scheme(NEW).verify(request(BODY, header), now=NOW)
    for secret in (NEW, header, header[7:], BODY.decode()):
        assert secret not in err.value.detail


@pytest.mark.parametrize("body", [b"id=tr_5B8cwPMGnU", b'["a"]', b'{"type": "payment.paid"}',
                                  b'{"id": "event_1"}', b'{"id": "", "type": "payment.paid"}'])
async def test_verified_body_that_is_not_a_next_gen_event_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedRequest):
        await scheme(NEW).verify(request(body, signature(body, NEW)), now=NOW)


async def test_configured_basic_auth_is_checked_too() -> None:
    auth = BasicAuth(username="mollie", password=Secret("pw"))
    with_auth = build_scheme(dataclasses.replace(endpoint(), basic_auth=auth))
    with pytest.raises(VerificationFailed) as err:
        await with_auth.verify(request(BODY, signature(BODY, NEW)), now=NOW)
    assert err.value.reason == "basic_auth_failed"


@pytest.mark.parametrize(("event", "ref"), [
    ({"type": "payment.paid", "entityId": "tr_1"}, "tr_1"),
    ({"type": "payment.authorized", "entityId": "tr_2"}, "tr_2"),
    ({"type": "refund.refunded", "entityId": "re_1",
      "_embedded": {"entity": {"resource": "refund", "id": "re_1", "paymentId": "tr_3"}}}, "tr_3"),
    ({"type": "refund.queued", "entityId": "re_2"}, None),  # simple payload: no snapshot
    ({"type": "chargeback.received", "entityId": "chb_1",
      "_embedded": {"entity": {"id": "chb_1", "paymentId": "tr_4"}}}, "tr_4"),
    ({"type": "payment-link.paid", "entityId": "pl_1",
      "_embedded": {"entity": {"resource": "payment-link", "id": "pl_1"}}}, None),
    ({"type": "sales-invoice.paid", "entityId": "invoice_1"}, None),
    ({"type": "payment.paid", "entityId": 7}, None),
    ({"type": "refund.refunded", "_embedded": "nonsense"}, None),
])
def test_payment_reference_is_the_mollie_payment(event: dict[str, object], ref: str | None
                                                 ) -> None:
    assert payment_ref(event) == ref


def test_settings_build_the_scheme() -> None:
    built = build_scheme(endpoint())
    assert isinstance(built, MollieScheme)
    assert built.keys == (NEW.encode(), OLD.encode())


def test_unknown_option_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError) as err:
        MollieScheme.from_settings(endpoint(api_key="live_x"))
    assert err.value.key == "endpoints.mol.api_key"


def test_empty_key_in_the_ring_is_a_config_error() -> None:
    settings = EndpointSettings(name="mol", provider="mollie", secrets=(Secret(""),))
    with pytest.raises(ConfigError) as err:
        MollieScheme.from_settings(settings)
    assert err.value.key == "endpoints.mol.secrets"


_HEADER_VALUES = st.one_of(
    st.text(max_size=150),
    st.binary(max_size=150).map(lambda b: b.decode("latin-1")),  # how Starlette decodes headers
    st.binary(min_size=32, max_size=32).map(lambda b: "sha256=" + b.hex()),
)


@given(body=st.binary(max_size=512), lines=st.lists(_HEADER_VALUES, max_size=3))
def test_arbitrary_input_raises_only_typed_errors(body: bytes, lines: list[str]) -> None:
    plain = RawRequest(body, {HEADER: ",".join(lines)})
    with contextlib.suppress(VerificationFailed, MalformedRequest):
        asyncio.run(scheme(NEW, OLD).verify(plain, NOW))


@given(body=st.binary(max_size=512),
       lines=st.lists(st.binary(max_size=120).map(lambda b: b.decode("latin-1")), max_size=3))
def test_arbitrary_header_lines_raise_only_typed_errors(body: bytes, lines: list[str]) -> None:
    with contextlib.suppress(VerificationFailed, MalformedRequest):
        asyncio.run(scheme(NEW, OLD).verify(request(body, *lines), NOW))


@given(body=st.binary(max_size=512))
def test_arbitrary_body_signed_with_a_ring_key_raises_only_malformed_or_passes(body: bytes
                                                                              ) -> None:
    with contextlib.suppress(MalformedRequest):
        asyncio.run(scheme(NEW, OLD).verify(request(body, signature(body, OLD)), NOW))


@pytest.mark.parametrize("seed", range(20))
async def test_simulated_lifecycles_verify_with_the_endpoints_own_scheme(seed: int) -> None:
    settings = endpoint()
    built = MollieScheme.from_settings(settings)
    for event in mollie_sim.lifecycle(random.Random(seed), NOW):
        signed = mollie_sim.sign([event], settings, NOW)
        assert sdk_accepts(signed.body, [signed.headers[HEADER]], [NEW])
        verified = await built.verify(RawRequest(signed.body, signed.headers), NOW)
        assert verified.key_index == 0
        assert [(e.event_id, e.event_type, e.payment_ref) for e in verified.events] == [
            (event.event_id, event.kind, event.payment_ref)]


def test_simulated_amounts_are_decimal_strings_in_major_units() -> None:
    assert mollie_sim.decimal_amount(2495, "EUR") == "24.95"
    assert mollie_sim.decimal_amount(5, "EUR") == "0.05"
    assert mollie_sim.decimal_amount(1200, "JPY") == "1200"
    event = mollie_sim.lifecycle(random.Random(1), NOW)[0].event
    assert isinstance(event["_embedded"]["entity"]["amount"]["value"], str)
