"""Every scheme reads its options and key ring through ingest.schemes.options, so every provider
refuses the same mistakes with a ConfigError naming the key; and the JSON body helpers."""

from __future__ import annotations

import pytest

from ingest.errors import MalformedRequest
from ingest.schemes import SCHEMES, build_scheme
from ingest.schemes.json_body import dig, json_object, value_at
from ingest.schemes.options import Options, key_ring
from payhooks.config import PROVIDERS_WITHOUT_SECRETS, ConfigError
from tests.unit.scheme_endpoints import MINIMAL, minimal_endpoint

PROVIDERS = sorted(SCHEMES)
WITH_SECRETS = sorted(set(SCHEMES) - PROVIDERS_WITHOUT_SECRETS)


def test_every_provider_has_a_minimal_endpoint() -> None:
    assert set(MINIMAL) == set(SCHEMES)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_minimal_endpoint_builds(provider: str) -> None:
    assert build_scheme(minimal_endpoint(provider)).provider == provider


@pytest.mark.parametrize("provider", PROVIDERS)
def test_unknown_option_is_a_config_error_naming_it(provider: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_scheme(minimal_endpoint(provider, notification_ulr="typo"))
    assert err.value.key == f"endpoints.{provider}-test.notification_ulr"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_simulator_options_are_accepted(provider: str) -> None:
    assert build_scheme(minimal_endpoint(provider, sim_anything="for payhooks sim only"))


@pytest.mark.parametrize("provider", WITH_SECRETS)
def test_empty_key_in_the_ring_is_a_config_error_naming_the_ring(provider: str) -> None:
    [key] = MINIMAL[provider][0]
    with pytest.raises(ConfigError) as err:
        build_scheme(minimal_endpoint(provider, secrets=(key, "")))
    assert err.value.key == f"endpoints.{provider}-test.secrets"
    assert "key 1" in err.value.problem


@pytest.mark.parametrize("provider", WITH_SECRETS)
def test_key_that_is_not_text_is_a_config_error_not_quoting_it(provider: str) -> None:
    bad = "whsec_secret-part\udcff"  # a lone surrogate, as os.environ makes of invalid UTF-8
    with pytest.raises(ConfigError) as err:
        build_scheme(minimal_endpoint(provider, secrets=(bad,)))
    assert err.value.key == f"endpoints.{provider}-test.secrets"
    assert "secret-part" not in str(err.value)


@pytest.mark.parametrize("provider", WITH_SECRETS)
def test_empty_key_ring_is_a_config_error(provider: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_scheme(minimal_endpoint(provider, secrets=()))
    assert err.value.key == f"endpoints.{provider}-test.secrets"


def test_key_ring_is_the_keys_as_utf8_in_order() -> None:
    endpoint = minimal_endpoint("stripe", secrets=("whsec_new", "whsec_ält"))
    assert key_ring(endpoint) == (b"whsec_new", "whsec_ält".encode())


def test_unknown_option_message_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as err:
        Options(minimal_endpoint("razorpay", key_id="x"), frozenset())
    assert err.value.problem == "unknown option of provider razorpay; known: none"


def test_text_option_that_is_not_text_is_a_config_error() -> None:
    options = Options(minimal_endpoint("hmac", prefix="sha256=\udcff"), {"header", "prefix"})
    with pytest.raises(ConfigError) as err:
        options.text("prefix")
    assert err.value.key == "endpoints.hmac-test.prefix"


@pytest.mark.parametrize(("value", "expected"), [
    ("a, b ,c", ("a", "b", "c")),
    (["a", " b"], ("a", "b")),
    ("a,,b", ("a", "", "b")),
    ("", ("",)),
])
def test_list_option_comes_as_a_list_or_a_comma_separated_string(
        value: object, expected: tuple[str, ...]) -> None:
    assert Options(minimal_endpoint("hmac", hosts=value), {"header", "hosts"}).strings(
        "hosts") == expected


@pytest.mark.parametrize("value", [7, ["a", 7], {"a": "b"}])
def test_list_option_of_another_type_is_a_config_error(value: object) -> None:
    options = Options(minimal_endpoint("hmac", hosts=value), {"header", "hosts"})
    with pytest.raises(ConfigError) as err:
        options.strings("hosts")
    assert err.value.key == "endpoints.hmac-test.hosts"


@pytest.mark.parametrize(("body", "problem"), [
    (b"{not json", "body is not JSON"),
    (b"[1, 2]", "body is not a Stripe event object"),
])
def test_body_that_is_not_a_json_object_is_malformed(body: bytes, problem: str) -> None:
    with pytest.raises(MalformedRequest) as err:
        json_object(body, "a Stripe event object")
    assert err.value.detail == problem


def test_dig_follows_objects_and_list_indexes() -> None:
    doc = {"data": {"items": [{"id": "a"}, {"id": "b"}]}}
    assert dig(doc, "data", "items", "1", "id") == "b"
    assert dig(doc, "data", "items", "2", "id") is None
    assert dig(doc, "data", "id", "x") is None


def test_dig_does_not_raise_on_digits_that_are_not_ascii() -> None:
    assert dig({"items": ["a", "b"]}, "items", "\u00b2") is None  # "²".isdigit() is True


@pytest.mark.parametrize(("path", "expected"), [
    ("data.id", "pay_1"), ("data.amount", "1250"), ("data.flag", None), ("data.empty", None),
    ("data.missing", None), (None, None),
])
def test_value_at_is_a_non_empty_string_or_an_integer_as_text(
        path: str | None, expected: str | None) -> None:
    doc = {"data": {"id": "pay_1", "amount": 1250, "flag": True, "empty": ""}}
    assert value_at(doc, path) == expected
