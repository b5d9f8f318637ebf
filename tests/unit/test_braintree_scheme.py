"""Braintree's scheme: ``bt_signature`` pairs over ``bt_payload``, then the payload's XML, safely.

Braintree's own SDK is the independent oracle: ``WebhookTesting.sample_notification`` signs what we
must accept, and ``WebhookNotificationGateway.parse`` checks what our signer produces. Both work
offline with a sandbox gateway built from made-up keys.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import braintree as braintree_sdk
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.errors import MalformedRequest, VerificationFailed
from ingest.schemes import RawRequest, build_scheme
from ingest.schemes.braintree import (
    BraintreeScheme,
    UnreadableNotification,
    encode_payload,
    form_body,
    hmac_key,
    notification,
    parse_xml,
    public_keys,
    read_notification,
    signature,
)
from payhooks.config import ConfigError, EndpointSettings, Secret, load_settings
from payhooks.sim import braintree as sim

PUBLIC, PRIVATE = "pk_4n6bqv2x9", "e1f0c7a1b2d3e4f5a6b7c8d9e0f1a2b3"
OLD_PUBLIC, OLD_PRIVATE = "pk_old_7wz3", "0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d"
NOW = 1_790_000_000
#: each example starts an event loop; a wall-clock deadline would only measure machine load
PROPERTY = settings(deadline=None)
XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<notification>
  <kind>transaction_settled</kind>
  <timestamp type="datetime">2026-09-21T14:10:25Z</timestamp>
  <subject>
    <transaction>
      <id>7p5xfbdm</id>
      <status>settled</status>
      <type>sale</type>
      <currency-iso-code>USD</currency-iso-code>
      <amount>25.00</amount>
    </transaction>
  </subject>
</notification>
"""


def gateway(public: str = PUBLIC, private: str = PRIVATE) -> braintree_sdk.BraintreeGateway:
    return braintree_sdk.BraintreeGateway(braintree_sdk.Configuration(
        environment=braintree_sdk.Environment.Sandbox, merchant_id="payhooks",
        public_key=public, private_key=private))


def sdk_form(kind: str, subject_id: str, public: str = PUBLIC, private: str = PRIVATE) -> bytes:
    sample = gateway(public, private).webhook_testing.sample_notification(kind, subject_id)
    return urlencode({"bt_signature": sample["bt_signature"],
                      "bt_payload": sample["bt_payload"].decode()}).encode()


def form(fields: dict[str, str | bytes]) -> bytes:
    return urlencode({k: v.decode() if isinstance(v, bytes) else v for k, v in fields.items()}
                     ).encode()


def scheme(*pairs: tuple[str, str]) -> BraintreeScheme:
    pairs = pairs or ((PUBLIC, PRIVATE),)
    return BraintreeScheme(keys=tuple(hmac_key(private) for _, private in pairs),
                           public_keys=tuple(public.encode() for public, _ in pairs))


def request(body: bytes) -> RawRequest:
    return RawRequest(body=body, headers={"content-type": "application/x-www-form-urlencoded"})


async def reason_of(scheme_: BraintreeScheme, body: bytes) -> str:
    with pytest.raises(VerificationFailed) as err:
        await scheme_.verify(request(body), now=NOW)
    return err.value.reason


# -- genuine, oracle, derivation -------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "payment_ref"), [
    ("transaction_settled", "abc123"),
    ("transaction_settlement_declined", "abc123"),
    ("transaction_disbursed", "abc123"),
    ("dispute_opened", "abc123"),  # the SDK's sample dispute wraps a transaction of the same id
    ("dispute_won", "abc123"),
    ("dispute_lost", "abc123"),
    ("local_payment_completed", "1"),
    ("local_payment_reversed", None),
    ("disbursement", None),
    ("subscription_charged_successfully", None),
    ("check", None),
])
async def test_genuine_notification_signed_by_braintrees_sdk_is_accepted(
        kind: str, payment_ref: str | None) -> None:
    body = sdk_form(kind, "abc123")
    verified = await scheme().verify(request(body), now=NOW)
    assert verified.key_index == 0
    [event] = verified.events
    parsed = read_notification(body)
    assert (event.event_type, event.payment_ref) == (kind, payment_ref)
    assert event.event_id == f"{kind}:{parsed.timestamp}:{parsed.subject_id}"
    assert event.payload == body


def test_our_signer_satisfies_braintrees_sdk_parser() -> None:
    payload = encode_payload(XML)
    parsed = gateway().webhook_notification.parse(
        f"{PUBLIC}|{signature(payload, PRIVATE)}", payload.decode())
    assert (parsed.kind, parsed.transaction.id, parsed.transaction.amount) == (
        "transaction_settled", "7p5xfbdm", Decimal("25.00"))


def test_simulated_notifications_satisfy_braintrees_sdk_parser() -> None:
    for seed in range(10):
        for event in sim.lifecycle(random.Random(seed), NOW):
            payload = encode_payload(event.event["xml"].encode())
            parsed = gateway().webhook_notification.parse(
                f"{PUBLIC}|{signature(payload, PRIVATE)}", payload.decode())
            assert parsed.kind == event.kind


def test_event_id_is_kind_timestamp_and_subject_id() -> None:
    parsed = notification(XML)
    assert parsed.event_id == "transaction_settled:2026-09-21T14:10:25Z:7p5xfbdm"
    assert parsed.transaction_id == "7p5xfbdm"


def test_refund_lands_on_the_payment_of_the_sale_it_refunds() -> None:
    xml = XML.replace(b"<type>sale</type>",
                      b"<type>credit</type><refunded-transaction-id>sale0001</refunded-transaction-id>")
    assert notification(xml).transaction_id == "sale0001"
    assert notification(xml).subject_id == "7p5xfbdm"


def test_dispute_names_its_own_id_and_its_transactions_payment() -> None:
    xml = b"""<notification><kind>dispute_opened</kind><timestamp>2026-09-21T14:10:25Z</timestamp>
      <subject><dispute><id>dsp00001</id><status>open</status>
      <transaction><id>sale0001</id><amount>10.00</amount></transaction></dispute></subject>
      </notification>"""
    parsed = notification(xml)
    assert (parsed.subject_id, parsed.transaction_id) == ("dsp00001", "sale0001")


def test_transaction_review_names_its_transaction() -> None:
    xml = b"""<notification><kind>transaction_reviewed</kind><timestamp>t</timestamp><subject>
      <transaction-review><transaction-id>sale0001</transaction-id></transaction-review>
      </subject></notification>"""
    assert notification(xml).transaction_id == "sale0001"


# -- signature pairs, keys, rotation ---------------------------------------------------------------

async def test_pairs_of_other_public_keys_are_ignored() -> None:
    payload = encode_payload(XML)
    pairs = f"other_pk|{'0' * 40}&{PUBLIC}|{signature(payload, PRIVATE)}"
    body = form({"bt_signature": pairs, "bt_payload": payload})
    assert (await scheme().verify(request(body), now=NOW)).key_index == 0


async def test_a_valid_signature_under_another_public_key_is_not_ours() -> None:
    payload = encode_payload(XML)
    pairs = f"{PUBLIC}|{'0' * 40}&other_pk|{signature(payload, PRIVATE)}"
    body = form({"bt_signature": pairs, "bt_payload": payload})
    assert await reason_of(scheme(), body) == "signature_mismatch"


async def test_signature_without_a_pair_for_our_public_key_is_rejected() -> None:
    body = sdk_form("transaction_settled", "abc", public="someone_else")
    assert await reason_of(scheme(), body) == "signature_mismatch"


async def test_wrong_private_key_is_rejected() -> None:
    body = sdk_form("transaction_settled", "abc", private="not-the-key")
    assert await reason_of(scheme(), body) == "signature_mismatch"


async def test_old_private_key_of_the_ring_is_accepted_and_reported() -> None:
    body = sdk_form("transaction_settled", "abc", private=OLD_PRIVATE)
    assert (await scheme((PUBLIC, PRIVATE), (PUBLIC, OLD_PRIVATE)).verify(
        request(body), now=NOW)).key_index == 1


async def test_rotation_to_a_new_api_key_pair_accepts_either_pair() -> None:
    ring = scheme((PUBLIC, PRIVATE), (OLD_PUBLIC, OLD_PRIVATE))
    payload = encode_payload(XML)
    old_only = form_body(payload, [(OLD_PUBLIC, OLD_PRIVATE)])
    both = form_body(payload, [(OLD_PUBLIC, OLD_PRIVATE), (PUBLIC, PRIVATE)])
    assert (await ring.verify(request(old_only), now=NOW)).key_index == 1
    assert (await ring.verify(request(both), now=NOW)).key_index == 0


async def test_signature_over_the_payload_with_a_trailing_newline_is_accepted_like_the_sdk(
        ) -> None:
    payload = encode_payload(XML).rstrip(b"\n")
    with_newline = signature(payload + b"\n", PRIVATE)
    pairs = f"{PUBLIC}|{with_newline}"
    assert await scheme().verify(request(form({"bt_signature": pairs, "bt_payload": payload})),
                                 now=NOW)


async def test_payload_is_read_exactly_from_the_percent_encoded_form() -> None:
    body = form_body(encode_payload(XML), [(PUBLIC, PRIVATE)])
    # the newlines and '+' signs of the base64 arrive percent-encoded
    assert b"%0A" in body
    assert b"%2B" in body
    assert await scheme().verify(request(body), now=NOW)


@pytest.mark.parametrize("tamper", [
    lambda p: p.replace(b"A", b"B", 1),
    lambda p: p[:-2],
    lambda p: b"\n" + p,
    lambda p: p.replace(b"\n", b""),
])
async def test_tampered_payload_is_rejected(tamper: Any) -> None:
    payload = encode_payload(XML)
    pairs = f"{PUBLIC}|{signature(payload, PRIVATE)}"
    body = form({"bt_signature": pairs, "bt_payload": tamper(payload)})
    assert await reason_of(scheme(), body) == "signature_mismatch"


# -- missing and garbage fields --------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    form({"bt_payload": encode_payload(XML)}),
    form({"bt_signature": "", "bt_payload": encode_payload(XML)}),
    form({"bt_signature": "garbage", "bt_payload": encode_payload(XML)}),
    form({"bt_signature": "|&|", "bt_payload": encode_payload(XML)}),
    b"",
    b"\xff\xfe\x00",
])
async def test_missing_or_pairless_signature_is_rejected(body: bytes) -> None:
    assert await reason_of(scheme(), body) == "missing_signature"


@pytest.mark.parametrize("pairs", [f"{PUBLIC}|ünïcødé☃", f"{PUBLIC}|{'z' * 40}", f"{PUBLIC}|0"])
async def test_garbage_signature_is_a_mismatch_not_a_crash(pairs: str) -> None:
    body = form({"bt_signature": pairs, "bt_payload": encode_payload(XML)})
    assert await reason_of(scheme(), body) == "signature_mismatch"


@pytest.mark.parametrize("body", [
    form({"bt_signature": f"{PUBLIC}|{'0' * 40}"}),
    form({"bt_signature": f"{PUBLIC}|{'0' * 40}"}) + b"&bt_payload=a&bt_payload=b",
    form({"bt_signature": f"{PUBLIC}|{'0' * 40}", "bt_payload": "x"}) + b"&bt_signature=y",
])
async def test_form_without_exactly_one_payload_and_signature_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedRequest):
        await scheme().verify(request(body), now=NOW)


def signed(payload: bytes) -> bytes:
    return form_body(payload, [(PUBLIC, PRIVATE)])


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<notification><kind>&lol2;</kind><timestamp>t</timestamp></notification>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE n [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<notification><kind>&xxe;</kind><timestamp>t</timestamp></notification>"""


@pytest.mark.parametrize("payload", [
    b"!!! not base64 !!!",
    encode_payload(b"not xml at all"),
    encode_payload(BILLION_LAUGHS),
    encode_payload(EXTERNAL_ENTITY),
    encode_payload(b"<other><kind>k</kind><timestamp>t</timestamp></other>"),
    encode_payload(b"<notification><timestamp>t</timestamp></notification>"),
    encode_payload(b"<notification><kind>k</kind></notification>"),
    encode_payload(b'<?xml version="1.0" encoding="no-such-codec"?><notification/>'),
    encode_payload(b"<notification><kind>k</kind>"),
])
async def test_authentic_payload_that_is_not_a_safe_notification_is_malformed(
        payload: bytes) -> None:
    with pytest.raises(MalformedRequest):
        await scheme().verify(request(signed(payload)), now=NOW)


def test_xml_parser_refuses_any_doctype() -> None:
    with pytest.raises(UnreadableNotification):
        parse_xml(b'<!DOCTYPE notification SYSTEM "x.dtd"><notification/>')
    assert parse_xml(b"<notification>&amp;&#65;</notification>").text == "&A"


# -- settings --------------------------------------------------------------------------------------

def endpoint(*secrets: str, **options: Any) -> EndpointSettings:
    return EndpointSettings(name="bt", provider="braintree",
                            secrets=tuple(Secret(s) for s in secrets), options=options)


def test_scheme_is_built_from_endpoint_settings() -> None:
    built = build_scheme(endpoint(PRIVATE, OLD_PRIVATE, public_key=PUBLIC))
    assert built == scheme((PUBLIC, PRIVATE), (PUBLIC, OLD_PRIVATE))
    assert built.content_types == frozenset({"application/x-www-form-urlencoded"})


@pytest.mark.parametrize("value", [[PUBLIC, OLD_PUBLIC], f"{PUBLIC}, {OLD_PUBLIC}"])
def test_one_public_key_per_private_key_pairs_them_by_position(value: Any) -> None:
    assert public_keys(endpoint(PRIVATE, OLD_PRIVATE, public_key=value)) == (PUBLIC, OLD_PUBLIC)


@pytest.mark.parametrize(("options", "key"), [
    ({}, "endpoints.bt.public_key"),
    ({"public_key": ""}, "endpoints.bt.public_key"),
    ({"public_key": 42}, "endpoints.bt.public_key"),
    ({"public_key": "a|b"}, "endpoints.bt.public_key"),
    ({"public_key": ["a", "b", "c"]}, "endpoints.bt.public_key"),
    ({"public_key": PUBLIC, "merchant_id": "x"}, "endpoints.bt.merchant_id"),
])
def test_bad_missing_or_unknown_option_is_a_config_error_naming_it(
        options: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        BraintreeScheme.from_settings(endpoint(PRIVATE, OLD_PRIVATE, **options))
    assert err.value.key == key
    assert PRIVATE not in str(err.value)


def test_empty_private_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        BraintreeScheme.from_settings(endpoint(PRIVATE, "", public_key=PUBLIC))
    assert err.value.key == "endpoints.bt.secrets"


def test_public_key_can_come_from_the_toml_file(tmp_path: Path) -> None:
    config = tmp_path / "payhooks.toml"
    config.write_text(f'[endpoints.bt]\nprovider = "braintree"\nsecrets = ["{PRIVATE}"]\n'
                      f'public_key = "{PUBLIC}"\n')
    settings = load_settings(config, environ={})
    assert build_scheme(settings.endpoints["bt"]) == scheme()


def test_scheme_repr_shows_no_key() -> None:
    assert "keys=" not in repr(scheme()).replace("public_keys=", "")


# -- properties ------------------------------------------------------------------------------------

@PROPERTY
@given(body=st.binary(max_size=512))
def test_arbitrary_bytes_raise_only_typed_errors(body: bytes) -> None:
    with contextlib.suppress(VerificationFailed, MalformedRequest):
        asyncio.run(scheme().verify(request(body), now=NOW))


@PROPERTY
@given(fields=st.lists(st.tuples(st.sampled_from(["bt_signature", "bt_payload", "x"]),
                                 st.text(max_size=80)), max_size=4))
def test_arbitrary_forms_raise_only_typed_errors(fields: list[tuple[str, str]]) -> None:
    body = urlencode(fields, encoding="utf-8", errors="surrogateescape").encode()
    with contextlib.suppress(VerificationFailed, MalformedRequest):
        asyncio.run(scheme().verify(request(body), now=NOW))


@PROPERTY
@given(payload=st.binary(max_size=300))
def test_any_authentic_payload_is_verified_or_malformed(payload: bytes) -> None:
    with contextlib.suppress(MalformedRequest):
        asyncio.run(scheme().verify(request(signed(base64.b64encode(payload))), now=NOW))


@PROPERTY
@given(xml=st.text(st.sampled_from(list("<>/=\"' !?&;#x0kindtmesapnoifcubj\n[]DOCTYPEENTITY")),
                   max_size=200))
def test_any_authentic_xml_like_document_is_verified_or_malformed(xml: str) -> None:
    with contextlib.suppress(MalformedRequest):
        asyncio.run(scheme().verify(request(signed(encode_payload(xml.encode()))), now=NOW))


# -- round trip with the simulator -----------------------------------------------------------------

@pytest.mark.parametrize("seed", range(8))
async def test_simulated_lifecycles_verify_with_the_scheme_of_the_same_endpoint(seed: int
                                                                                ) -> None:
    settings = endpoint(PRIVATE, OLD_PRIVATE, public_key=PUBLIC)
    receiver = build_scheme(settings)
    for event in sim.lifecycle(random.Random(seed), NOW):
        signed_request = sim.sign([event], settings, NOW)
        verified = await receiver.verify(RawRequest(signed_request.body, signed_request.headers),
                                         now=NOW)
        assert [(e.event_id, e.payment_ref, e.event_type) for e in verified.events] == [
            (event.event_id, event.payment_ref, event.kind)]


def test_simulated_lifecycles_have_only_kinds_braintree_sends() -> None:
    kinds = {e.kind for seed in range(60) for e in sim.lifecycle(random.Random(seed), NOW)}
    assert kinds == {"transaction_settled", "transaction_settlement_declined", "dispute_opened",
                     "dispute_won", "dispute_lost", "local_payment_completed",
                     "local_payment_funded"}


def test_simulated_amounts_are_decimal_strings_in_major_units() -> None:
    for seed in range(20):
        for event in sim.lifecycle(random.Random(seed), NOW):
            amount = parse_xml(event.event["xml"].encode()).findtext(".//amount") or ""
            whole, _, cents = amount.partition(".")
            assert whole.isdigit()
            assert len(cents) == 2
            assert cents.isdigit()
