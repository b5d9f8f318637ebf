"""Basic auth is enforced by build_scheme for every provider, before the scheme sees the request."""

from __future__ import annotations

import base64
import dataclasses
import importlib

import pytest

from ingest.errors import IngestError, VerificationFailed
from ingest.schemes import SCHEMES, RawRequest, Scheme, Verified, build_scheme
from ingest.schemes import paypal as paypal_module
from ingest.schemes.basic_auth import BasicAuthGuard
from ingest.schemes.paypal import format_transmission_time
from payhooks.config import BasicAuth, Secret
from tests.unit.scheme_endpoints import minimal_endpoint

AUTH = BasicAuth("psp-user", Secret("correct horse"))
PROVIDERS = sorted(SCHEMES)
NOW = 1_790_000_000


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@dataclasses.dataclass
class Spy:
    """Stands in for a provider's scheme behind the guard and records what reaches it."""

    inner: Scheme
    seen: list[RawRequest] = dataclasses.field(default_factory=list)

    @property
    def provider(self) -> str:
        return self.inner.provider

    @property
    def content_types(self) -> frozenset[str]:
        return self.inner.content_types

    @property
    def success_body(self) -> bytes:
        return self.inner.success_body

    @property
    def success_media_type(self) -> str:
        return self.inner.success_media_type

    async def verify(self, request: RawRequest, now: float) -> Verified:
        self.seen.append(request)
        return Verified(key_index=0, events=())


def spied(provider: str) -> tuple[BasicAuthGuard, Spy]:
    guard = build_scheme(minimal_endpoint(provider, basic_auth=AUTH))
    assert isinstance(guard, BasicAuthGuard)
    spy = Spy(guard.scheme)
    return dataclasses.replace(guard, scheme=spy), spy


def scheme_class(provider: str) -> type:
    module_name, _, class_name = SCHEMES[provider].partition(":")
    cls: type = getattr(importlib.import_module(module_name), class_name)
    return cls


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("authorization", [
    None,
    basic(AUTH.username, "wrong password"),
    basic("someone-else", AUTH.password.value),
])
async def test_configured_basic_auth_is_enforced_before_the_scheme_sees_the_request(
        provider: str, authorization: str | None) -> None:
    guard, spy = spied(provider)
    headers = {} if authorization is None else {"authorization": authorization}
    with pytest.raises(VerificationFailed) as err:
        await guard.verify(RawRequest(body=b"{}", headers=headers), NOW)
    assert err.value.reason == "basic_auth_failed"
    assert spy.seen == []


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_right_credentials_hand_the_request_to_the_scheme(provider: str) -> None:
    guard, spy = spied(provider)
    authorization = basic(AUTH.username, AUTH.password.value)
    request = RawRequest(body=b"{}", headers={"authorization": authorization})
    assert await guard.verify(request, NOW) == Verified(key_index=0, events=())
    assert spy.seen == [request]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_guard_wraps_the_providers_scheme_and_shows_what_it_shows(provider: str) -> None:
    guard = build_scheme(minimal_endpoint(provider, basic_auth=AUTH))
    assert isinstance(guard, BasicAuthGuard)
    assert isinstance(guard.scheme, scheme_class(provider))
    assert (guard.provider, guard.content_types, guard.success_body, guard.success_media_type) == (
        guard.scheme.provider, guard.scheme.content_types, guard.scheme.success_body,
        guard.scheme.success_media_type)
    assert AUTH.password.value not in repr(guard)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_endpoint_without_basic_auth_is_not_wrapped(provider: str) -> None:
    built = build_scheme(minimal_endpoint(provider))
    assert not isinstance(built, BasicAuthGuard)
    assert isinstance(built, scheme_class(provider))


@dataclasses.dataclass
class RecordingFetcher:
    calls: list[str] = dataclasses.field(default_factory=list)

    async def fetch(self, url: str) -> bytes:
        self.calls.append(url)
        return b"not a certificate"


async def test_paypal_certificate_is_not_fetched_without_the_credentials(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fetcher = RecordingFetcher()
    monkeypatch.setattr(paypal_module, "HttpxCertFetcher", lambda: fetcher)
    cert_url = "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-0000test"
    request = RawRequest(body=b"{}", headers={
        "paypal-transmission-id": "4cce5920-5106-11ef-84e2-f38df3f70683",
        "paypal-transmission-time": format_transmission_time(NOW),
        "paypal-transmission-sig": base64.b64encode(b"s" * 256).decode(),
        "paypal-cert-url": cert_url,
        "paypal-auth-algo": "SHA256withRSA",
    })
    guarded = build_scheme(minimal_endpoint("paypal", basic_auth=AUTH))
    with pytest.raises(VerificationFailed) as err:
        await guarded.verify(request, NOW)
    assert err.value.reason == "basic_auth_failed"
    assert fetcher.calls == []
    # the same request at an endpoint without Basic auth gets as far as the fetch
    with pytest.raises(IngestError):
        await build_scheme(minimal_endpoint("paypal")).verify(request, NOW)
    assert fetcher.calls == [cert_url]
