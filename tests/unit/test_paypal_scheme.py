"""PayPal's scheme over raw bytes: genuine, tampered, foreign certificates, hostile cert URLs,
bounded fetches, the certificate cache, stale and future transmissions, garbage headers.

Oracles: a throwaway PKI (tests/unit/paypal_pki.py) for everything that needs a private key, and
one real PayPal delivery recorded in 2024 (body, headers, the certificate served at its cert URL,
and DigiCert's intermediate that issued it), which fixes the signed-text layout, the CRC-32
encoding and the certificate profile independently of our signer. PayPal's SDK is no oracle: it
no longer verifies with current pyOpenSSL.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime as dt
import functools
import random
import types
import zlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.errors import CertificateUnavailable, MalformedRequest, VerificationFailed
from ingest.schemes import RawRequest, Scheme, build_scheme, signing
from ingest.schemes import paypal as paypal_module
from ingest.schemes.paypal import (
    PayPalScheme,
    crc32_decimal,
    format_transmission_time,
    payment_ref,
    sign_transmission,
    signature_holds,
    signed_text,
)
from ingest.schemes.paypal_certs import (
    PAYPAL_CERT_HOSTS,
    CertFetchError,
    CertPolicy,
    CertSourceUnavailable,
    HttpxCertFetcher,
    SigningCertificates,
    allowed_url,
)
from payhooks.config import BasicAuth, ConfigError, EndpointSettings, Secret
from payhooks.sim import paypal as sim
from payhooks.sim.base import SimEvent
from tests.unit.paypal_pki import Issued, ca, signing_cert

NOW = 1_790_000_000
AT = dt.datetime.fromtimestamp(NOW, dt.UTC)
WEBHOOK_ID, OLD_WEBHOOK_ID = "8PT597110X687430L", "1JE4291016473214C"
TRANSMISSION_ID = "4cce5920-5106-11ef-84e2-f38df3f70683"
CERT_URL = "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-0000test"
ISSUER_URL = "http://cacerts.example.test/PayhooksTestEVServerCA.crt"
BODY = orjson.dumps({
    "id": "WH-58D329510W468432D-8HN650336L201105X", "event_version": "1.0",
    "create_time": "2026-09-21T14:13:19.123Z", "resource_type": "capture",
    "resource_version": "2.0", "event_type": "PAYMENT.CAPTURE.COMPLETED",
    "resource": {"id": "12A34567BC123456S", "status": "COMPLETED", "final_capture": True,
                 "amount": {"currency_code": "EUR", "value": "30.00"},
                 "supplementary_data": {"related_ids": {"order_id": "1AB234567A1234567",
                                                        "authorization_id": "24B76447NN600461P"}}},
})


@dataclasses.dataclass(frozen=True, slots=True)
class Pki:
    root: Issued
    intermediate: Issued
    leaf: Issued  # PayPal-shaped, issued by the intermediate
    leaf_with_aia: Issued  # same, naming the intermediate's URL in its AIA extension
    foreign_leaf: Issued  # PayPal's name, issued by a CA nobody trusts
    self_signed: Issued  # PayPal's name, signed by its own key
    other_name: Issued  # trusted chain, but not PayPal's name
    expired: Issued
    short_lived: Issued  # expires an hour after NOW

    @property
    def chain_pem(self) -> bytes:
        return self.leaf.pem + self.intermediate.pem


@functools.cache
def pki() -> Pki:
    root = ca("payhooks Test Root CA", at=AT)
    intermediate = ca("payhooks Test EV Server CA", issuer=root, at=AT)
    rogue = ca("Rogue Root CA", at=AT)
    return Pki(
        root=root,
        intermediate=intermediate,
        leaf=signing_cert(intermediate, at=AT),
        leaf_with_aia=signing_cert(intermediate, at=AT, ca_issuers_url=ISSUER_URL),
        foreign_leaf=signing_cert(rogue, at=AT, key_label="rogue-signing"),
        self_signed=signing_cert(None, at=AT, key_label="rogue-signing"),
        other_name=signing_cert(intermediate, at=AT, dns_name="api.paypal.com"),
        expired=signing_cert(intermediate, at=AT, not_before=AT - dt.timedelta(days=400),
                             not_after=AT - dt.timedelta(seconds=1)),
        short_lived=signing_cert(intermediate, at=AT, not_after=AT + dt.timedelta(hours=1)),
    )


@dataclasses.dataclass(slots=True)
class FakeFetcher:
    """The network, in memory: URL -> bytes or an exception; every call is recorded."""

    responses: dict[str, bytes | Exception] = dataclasses.field(default_factory=dict)
    calls: list[str] = dataclasses.field(default_factory=list)
    gate: asyncio.Event | None = None  # when set, every fetch waits for it

    async def fetch(self, url: str) -> bytes:
        self.calls.append(url)
        if self.gate is not None:
            await self.gate.wait()
        response = self.responses.get(url, CertFetchError("certificate host answered 404"))
        if isinstance(response, Exception):
            raise response
        return response


def endpoint(trust_store: str, **options: Any) -> EndpointSettings:
    return EndpointSettings(
        name="paypal", provider="paypal", secrets=(Secret("unused"),),
        options=types.MappingProxyType({"webhook_id": WEBHOOK_ID, "trust_store": trust_store,
                                        **options}),
    )


def scheme(fetcher: FakeFetcher | None = None, *, trust: bytes | None = None,
           **options: Any) -> PayPalScheme:
    """A scheme trusting the test root (PEM text as ``trust_store``), fetching from memory."""
    fake = fetcher or FakeFetcher({CERT_URL: pki().chain_pem})
    pem = (trust or pki().root.pem).decode()
    return PayPalScheme.from_settings(endpoint(pem, **options), fetcher=fake)


def delivery(body: bytes = BODY, *, key: rsa.RSAPrivateKey | None = None,
             transmission_id: str = TRANSMISSION_ID, sent: int = NOW,
             webhook_id: str = WEBHOOK_ID, cert_url: str = CERT_URL,
             headers: Mapping[str, str | None] | None = None) -> RawRequest:
    """A request signed as PayPal signs; ``headers`` replaces (or, with None, drops) headers."""
    time = format_transmission_time(sent)
    signature = sign_transmission(key or pki().leaf.key, transmission_id, time, webhook_id, body)
    sent_headers: dict[str, str | None] = {
        "paypal-transmission-id": transmission_id,
        "paypal-transmission-time": time,
        "paypal-transmission-sig": signature,
        "paypal-cert-url": cert_url,
        "paypal-auth-algo": "SHA256withRSA",
        **(headers or {}),
    }
    return RawRequest(body=body, headers={k: v for k, v in sent_headers.items() if v is not None})


async def rejected(verifying: Scheme, request: RawRequest, now: float = NOW) -> str:
    with pytest.raises(VerificationFailed) as err:
        await verifying.verify(request, now)
    return err.value.reason


async def unavailable(verifying: Scheme, request: RawRequest, now: float = NOW) -> str:
    """The detail of the CertificateUnavailable (a 503) that ``request`` meets."""
    with pytest.raises(CertificateUnavailable) as err:
        await verifying.verify(request, now)
    return err.value.detail


# -- genuine deliveries ----------------------------------------------------------------------


async def test_genuine_delivery_is_accepted() -> None:
    fetcher = FakeFetcher({CERT_URL: pki().chain_pem})
    verified = await scheme(fetcher).verify(delivery(), NOW)
    assert verified.key_index == 0
    assert [(e.event_id, e.event_type, e.payment_ref) for e in verified.events] == [
        ("WH-58D329510W468432D-8HN650336L201105X", "PAYMENT.CAPTURE.COMPLETED",
         "1AB234567A1234567")]
    assert verified.events[0].payload == BODY
    assert fetcher.calls == [CERT_URL]


async def test_real_paypal_delivery_verifies_end_to_end() -> None:
    """PayPal's own signature, PayPal's certificate, DigiCert's intermediate as trust anchor
    (as PayPal's SDKs shipped it): our URL check, chain check and signed text all agree."""
    fetcher = FakeFetcher({REAL_CERT_URL: REAL_LEAF_PEM})
    policy = CertPolicy(trust_anchors=(x509.load_pem_x509_certificate(DIGICERT_EV_CA_PEM),))
    verifying = PayPalScheme(webhook_ids=("WEBHOOK_ID",),
                             certificates=SigningCertificates(policy, fetcher))
    verified = await verifying.verify(RawRequest(REAL_BODY, REAL_HEADERS), REAL_SENT)
    assert verified.events[0].event_id == "WH-1GE84257G0350133W-6RW800890C634293G"
    assert verified.events[0].payment_ref == "1Y107995YT783435V"  # a refund names no order
    assert fetcher.calls == [REAL_CERT_URL]


def test_real_paypal_signature_covers_our_signed_text() -> None:
    leaf = x509.load_pem_x509_certificate(REAL_LEAF_PEM)
    key = leaf.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    text = signed_text(REAL_HEADERS["paypal-transmission-id"],
                       REAL_HEADERS["paypal-transmission-time"], "WEBHOOK_ID", REAL_BODY)
    assert text == (b"51730200-5106-11ef-9a30-157053fd3e43|2024-08-02T19:35:04Z|WEBHOOK_ID|"
                    + str(zlib.crc32(REAL_BODY)).encode())
    signature = base64.b64decode(REAL_HEADERS["paypal-transmission-sig"])
    key.verify(signature, text, padding.PKCS1v15(), hashes.SHA256())  # raises if not
    assert signature_holds(key, signature, text)
    assert not signature_holds(key, signature, text.replace(b"WEBHOOK_ID", b"8PT597110X687430L"))


@given(body=st.binary(max_size=2048))
def test_crc32_is_zlibs_unsigned_decimal(body: bytes) -> None:
    expected = str(zlib.crc32(body) & 0xFFFFFFFF)
    assert crc32_decimal(body) == expected
    assert signed_text("id", "time", "wh", body) == f"id|time|wh|{expected}".encode()


def test_crc32_above_two_to_the_31_stays_unsigned() -> None:
    # the standard CRC-32 check value, 0xCBF43926: negative as a signed 32-bit integer
    assert crc32_decimal(b"123456789") == "3421780262"


def test_our_signer_verifies_with_plain_rsa_pkcs1_sha256() -> None:
    time = format_transmission_time(NOW)
    signature = sign_transmission(pki().leaf.key, TRANSMISSION_ID, time, WEBHOOK_ID, BODY)
    text = f"{TRANSMISSION_ID}|{time}|{WEBHOOK_ID}|{zlib.crc32(BODY) & 0xFFFFFFFF}".encode()
    pki().leaf.key.public_key().verify(base64.b64decode(signature), text,
                                       padding.PKCS1v15(), hashes.SHA256())
    assert time == "2026-09-21T14:13:20Z"


async def test_old_webhook_id_of_the_ring_is_accepted_and_reported() -> None:
    verifying = scheme(webhook_id=[WEBHOOK_ID, OLD_WEBHOOK_ID])
    assert (await verifying.verify(delivery(webhook_id=OLD_WEBHOOK_ID), NOW)).key_index == 1


async def test_comma_separated_webhook_ids_from_the_environment_are_a_ring() -> None:
    verifying = scheme(webhook_id=f"{WEBHOOK_ID}, {OLD_WEBHOOK_ID}")
    assert verifying.webhook_ids == (WEBHOOK_ID, OLD_WEBHOOK_ID)


async def test_cert_url_with_explicit_default_port_is_fetched_in_canonical_form() -> None:
    fetcher = FakeFetcher({CERT_URL: pki().chain_pem})
    url = CERT_URL.replace("api.paypal.com", "API.PayPal.com:443")
    assert await scheme(fetcher).verify(delivery(cert_url=url), NOW)
    assert fetcher.calls == [CERT_URL]


# -- tampering -------------------------------------------------------------------------------


@pytest.mark.parametrize("tampered", [
    {"paypal-transmission-id": "4cce5920-5106-11ef-84e2-f38df3f70684"},
    {"paypal-transmission-time": format_transmission_time(NOW + 1)},
])
async def test_tampered_signed_header_is_rejected(tampered: dict[str, str]) -> None:
    assert await rejected(scheme(), delivery(headers=tampered)) == "signature_mismatch"


@pytest.mark.parametrize("tamper", [
    lambda b: b.replace(b"30.00", b"90.00"),
    lambda b: b + b" ",
    lambda b: b[:-1],
])
async def test_tampered_body_is_rejected(tamper: Any) -> None:
    request = delivery()
    forged = RawRequest(tamper(request.body), request.headers)
    assert await rejected(scheme(), forged) == "signature_mismatch"


async def test_delivery_for_another_webhook_id_is_rejected() -> None:
    """The same PayPal key signs every merchant's webhooks: only our webhook id binds."""
    verifying = scheme(webhook_id="5GP028458E2496506")
    assert await rejected(verifying, delivery()) == "signature_mismatch"


async def test_signature_by_a_key_other_than_the_certificates_is_rejected() -> None:
    request = delivery(key=pki().foreign_leaf.key)
    assert await rejected(scheme(), request) == "signature_mismatch"


# -- certificates ----------------------------------------------------------------------------


UNTRUSTED, NOT_PAYPAL = "does not verify to the trust store", "does not name PayPal"


@pytest.mark.parametrize(("served", "detail"), [
    # a forger's certificate carries the forger's key, so the signature itself would hold
    pytest.param(lambda p: p.foreign_leaf.pem, UNTRUSTED, id="leaf-of-an-untrusted-ca"),
    pytest.param(lambda p: p.self_signed.pem, UNTRUSTED, id="self-signed-in-paypals-name"),
    pytest.param(lambda p: p.foreign_leaf.pem + p.intermediate.pem, UNTRUSTED,
                 id="untrusted-leaf-beside-a-trusted-intermediate"),
    pytest.param(lambda p: p.other_name.pem + p.intermediate.pem, NOT_PAYPAL,
                 id="trusted-but-not-paypals-name"),
    pytest.param(lambda p: p.expired.pem + p.intermediate.pem, "expired", id="expired"),
    pytest.param(lambda p: p.leaf.pem, UNTRUSTED, id="leaf-without-its-intermediate"),
    pytest.param(lambda p: b"-----BEGIN CERTIFICATE-----\nnonsense\n-----END CERTIFICATE-----\n",
                 "not a certificate", id="garbage-pem"),
    pytest.param(lambda p: b"<html>maintenance</html>", "not a certificate",
                 id="not-a-certificate"),
    pytest.param(lambda p: p.chain_pem * 3, "too many", id="too-many-certificates"),
])
async def test_unacceptable_certificate_is_rejected(served: Any, detail: str) -> None:
    p = pki()
    bundle = served(p)
    forged = bundle.startswith((p.foreign_leaf.pem, p.self_signed.pem))
    fetcher = FakeFetcher({CERT_URL: bundle})
    with pytest.raises(VerificationFailed) as err:
        await scheme(fetcher).verify(delivery(key=p.foreign_leaf.key if forged else None), NOW)
    assert err.value.reason == "certificate_rejected"
    assert detail in err.value.detail
    assert fetcher.calls == [CERT_URL]


async def test_certificate_not_yet_valid_is_rejected() -> None:
    fetcher = FakeFetcher({CERT_URL: pki().chain_pem})
    early = NOW - 2 * 86400  # the test leaf starts a day before NOW
    assert await rejected(scheme(fetcher), delivery(sent=early), now=early) == (
        "certificate_rejected")


async def test_intermediate_is_fetched_from_the_leafs_aia_url_on_an_allowed_host() -> None:
    p = pki()
    fetcher = FakeFetcher({CERT_URL: p.leaf_with_aia.pem, ISSUER_URL: p.intermediate.der})
    verifying = scheme(fetcher, ca_issuer_hosts=["cacerts.example.test"])
    assert (await verifying.verify(delivery(), NOW)).key_index == 0
    assert fetcher.calls == [CERT_URL, ISSUER_URL]


async def test_aia_url_on_a_host_not_allowed_is_never_fetched() -> None:
    p = pki()
    fetcher = FakeFetcher({CERT_URL: p.leaf_with_aia.pem, ISSUER_URL: p.intermediate.der})
    assert await rejected(scheme(fetcher), delivery()) == "certificate_rejected"
    assert fetcher.calls == [CERT_URL]


async def test_intermediate_as_trust_anchor_is_enough() -> None:
    """An operator may pin PayPal's issuing CA instead of trusting a whole root bundle."""
    verifying = scheme(FakeFetcher({CERT_URL: pki().leaf.pem}), trust=pki().intermediate.pem)
    assert (await verifying.verify(delivery(), NOW)).key_index == 0


async def test_preloaded_certificate_file_is_used_instead_of_the_network(tmp_path: Path
                                                                         ) -> None:
    cert_file = tmp_path / "paypal-cert.pem"
    cert_file.write_bytes(pki().chain_pem)
    fetcher = FakeFetcher()
    verifying = scheme(fetcher, cert_files={CERT_URL: str(cert_file)})
    assert (await verifying.verify(delivery(), NOW)).key_index == 0
    assert fetcher.calls == []


async def test_unreadable_preloaded_certificate_file_is_unavailable(tmp_path: Path) -> None:
    fetcher = FakeFetcher()
    verifying = scheme(fetcher, cert_files={CERT_URL: str(tmp_path / "missing.pem")})
    assert "preloaded certificate unreadable" in await unavailable(verifying, delivery())
    assert fetcher.calls == []


# -- hostile certificate URLs ----------------------------------------------------------------

HOSTILE_CERT_URLS = [
    "https://evil.example/v1/notifications/certs/CERT-1",
    "http://api.paypal.com/v1/notifications/certs/CERT-1",
    "https://user:pw@api.paypal.com/v1/notifications/certs/CERT-1",
    "https://api.paypal.com@evil.example/v1/notifications/certs/CERT-1",
    "https://api.paypal.com:8443/v1/notifications/certs/CERT-1",
    "https://api.paypal.com.evil.example/v1/notifications/certs/CERT-1",
    "https://evilapi.paypal.com/v1/notifications/certs/CERT-1",
    "https://api.paypal.com./v1/notifications/certs/CERT-1",
    "https://www.paypal.com/v1/notifications/certs/CERT-1",
    "https://api.paypal.com/v1/notifications/webhooks/CERT-1",
    "https://api.paypal.com/v1/notifications/certs/",
    "https://api.paypal.com/v1/notifications/certs/../../oauth2/token",
    "https://api.paypal.com/v1/notifications/certs/..",
    "https://api.paypal.com/v1/notifications/certs/a/b",
    "https://api.paypal.com/v1/notifications/certs/%2e%2e",
    "https://api.paypal.com/v1/notifications/certs/CERT-1?redirect=https://evil.example",
    "https://api.paypal.com/v1/notifications/certs/CERT-1#frag",
    "https://api.paypal.com\\@evil.example/v1/notifications/certs/CERT-1",
    "https://api.paypal.com\t/v1/notifications/certs/CERT-1",
    "https://api.pay\npal.com/v1/notifications/certs/CERT-1",
    "https://[::1]/v1/notifications/certs/CERT-1",
    "https://127.0.0.1/v1/notifications/certs/CERT-1",
    "file:///etc/passwd",
    "//api.paypal.com/v1/notifications/certs/CERT-1",
    "api.paypal.com/v1/notifications/certs/CERT-1",
    "https://api.paypal.com/v1/notifications/certs/" + "A" * 600,
    "https://\u0430pi.paypal.com/v1/notifications/certs/CERT-1",  # Cyrillic a: a look-alike
]


@pytest.mark.parametrize("cert_url", HOSTILE_CERT_URLS)
async def test_hostile_cert_url_is_rejected_without_network(cert_url: str) -> None:
    fetcher = FakeFetcher({cert_url: pki().chain_pem})
    assert await rejected(scheme(fetcher), delivery(cert_url=cert_url)) == "certificate_rejected"
    assert fetcher.calls == []


async def test_configured_cert_hosts_replace_paypals() -> None:
    url = CERT_URL.replace("api.paypal.com", "certs.payhooks.test")
    fetcher = FakeFetcher({url: pki().chain_pem})
    assert await scheme(fetcher, cert_hosts=["certs.payhooks.test"]).verify(
        delivery(cert_url=url), NOW)
    assert await rejected(scheme(fetcher, cert_hosts=["certs.payhooks.test"]),
                          delivery()) == "certificate_rejected"
    assert fetcher.calls == [url]


# -- bounded fetches -------------------------------------------------------------------------


async def test_certificate_response_over_the_size_limit_is_rejected() -> None:
    oversized = pki().chain_pem + b"\n" * (64 * 1024)
    assert await rejected(scheme(FakeFetcher({CERT_URL: oversized})), delivery()) == (
        "certificate_rejected")


async def test_certificate_fetch_that_hangs_times_out_as_unavailable() -> None:
    fetcher = FakeFetcher({CERT_URL: pki().chain_pem}, gate=asyncio.Event())  # never set
    verifying = scheme(fetcher)
    slow = dataclasses.replace(verifying, certificates=SigningCertificates(
        verifying.certificates.policy, fetcher, fetch_timeout_seconds=0.05))
    assert await unavailable(slow, delivery()) == "certificate fetch timed out"
    assert fetcher.calls == [CERT_URL]


async def test_no_free_fetch_slot_in_time_is_unavailable() -> None:
    other_url = f"{CERT_URL[:-4]}0001"
    gate = asyncio.Event()
    fetcher = FakeFetcher({CERT_URL: pki().chain_pem, other_url: pki().chain_pem}, gate=gate)
    verifying = scheme(fetcher)
    certificates = SigningCertificates(verifying.certificates.policy, fetcher,
                                       max_concurrent_fetches=1)
    busy = dataclasses.replace(verifying, certificates=certificates)
    holder = asyncio.create_task(busy.verify(delivery(cert_url=other_url), NOW))
    await asyncio.sleep(0.01)  # the first fetch holds the only slot, with the default deadline
    certificates.fetch_timeout_seconds = 0.05
    assert await unavailable(busy, delivery()) == "certificate fetch timed out"
    assert fetcher.calls == [other_url]  # the second URL never got a slot
    gate.set()
    assert await holder


async def test_certificate_host_answering_4xx_is_rejected() -> None:
    fetcher = FakeFetcher({CERT_URL: CertFetchError("certificate host answered 404")})
    assert await rejected(scheme(fetcher), delivery()) == "certificate_rejected"
    assert fetcher.calls == [CERT_URL]


async def test_failed_fetch_is_unavailable_and_retried_after_a_short_while() -> None:
    fetcher = FakeFetcher({CERT_URL: CertSourceUnavailable("certificate host answered 503")})
    verifying = scheme(fetcher)
    assert await unavailable(verifying, delivery()) == "certificate host answered 503"
    # remembered briefly: a burst during an outage does not hammer PayPal
    assert await unavailable(verifying, delivery(sent=NOW + 5), now=NOW + 5) == (
        "certificate host answered 503")
    assert fetcher.calls == [CERT_URL]
    # the outage is over: the next delivery after the failure TTL fetches again and passes
    fetcher.responses[CERT_URL] = pki().chain_pem
    assert await verifying.verify(delivery(sent=NOW + 11), NOW + 11)
    assert fetcher.calls == [CERT_URL, CERT_URL]


async def _chunks(*chunks: bytes) -> AsyncIterator[bytes]:
    """A streamed response body (no Content-Length: the limit must hold while reading)."""
    for chunk in chunks:
        yield chunk


@pytest.mark.parametrize(("answer", "error"), [
    (lambda r: httpx.Response(404), "answered 404"),
    (lambda r: httpx.Response(302, headers={"location": "https://evil.example/c.pem"}),
     "answered 302"),
    (lambda r: httpx.Response(200, content=_chunks(b"x" * 40_000, b"x" * 40_000)), "too large"),
    (lambda r: (_ for _ in ()).throw(httpx.ConnectError("refused", request=r)), "ConnectError"),
])
async def test_default_fetcher_fails_in_its_own_typed_way(answer: Any, error: str) -> None:
    fetcher = HttpxCertFetcher(transport=httpx.MockTransport(answer))
    with pytest.raises(CertFetchError, match=error):
        await fetcher.fetch(CERT_URL)


@pytest.mark.parametrize(("answer", "unavailable_source"), [
    (lambda r: httpx.Response(503), True),
    (lambda r: httpx.Response(500), True),
    (lambda r: (_ for _ in ()).throw(httpx.ConnectError("refused", request=r)), True),
    (lambda r: (_ for _ in ()).throw(httpx.ReadTimeout("slow", request=r)), True),
    (lambda r: httpx.Response(404), False),
    (lambda r: httpx.Response(302, headers={"location": "https://evil.example/c.pem"}), False),
    (lambda r: httpx.Response(200, content=_chunks(b"x" * 40_000, b"x" * 40_000)), False),
])
async def test_default_fetcher_tells_an_outage_from_what_was_served(
        answer: Any, unavailable_source: bool) -> None:
    fetcher = HttpxCertFetcher(transport=httpx.MockTransport(answer))
    with pytest.raises(CertFetchError) as err:
        await fetcher.fetch(CERT_URL)
    assert isinstance(err.value, CertSourceUnavailable) is unavailable_source


async def test_default_fetcher_returns_the_body_and_asks_for_identity_encoding() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=pki().chain_pem)

    assert await HttpxCertFetcher(transport=httpx.MockTransport(answer)).fetch(CERT_URL) == (
        pki().chain_pem)
    assert [(str(r.url), r.headers["accept-encoding"]) for r in seen] == [(CERT_URL, "identity")]


# -- the cache -------------------------------------------------------------------------------


async def test_two_verifications_fetch_the_certificate_once() -> None:
    fetcher = FakeFetcher({CERT_URL: pki().chain_pem})
    verifying = scheme(fetcher)
    await verifying.verify(delivery(), NOW)
    await verifying.verify(delivery(transmission_id="second", sent=NOW + 60), NOW + 60)
    assert fetcher.calls == [CERT_URL]


async def test_concurrent_verifications_share_one_fetch() -> None:
    gate = asyncio.Event()
    fetcher = FakeFetcher({CERT_URL: pki().chain_pem}, gate=gate)
    verifying = scheme(fetcher)
    burst = [asyncio.create_task(verifying.verify(delivery(transmission_id=f"t-{i}"), NOW))
             for i in range(20)]
    await asyncio.sleep(0.01)
    gate.set()
    results = await asyncio.gather(*burst)
    assert len(results) == 20
    assert fetcher.calls == [CERT_URL]


async def test_followers_are_released_when_the_leading_fetch_is_cancelled() -> None:
    gate = asyncio.Event()
    fetcher = FakeFetcher({CERT_URL: pki().chain_pem}, gate=gate)
    verifying = scheme(fetcher)
    leader = asyncio.create_task(verifying.verify(delivery(), NOW))
    await asyncio.sleep(0.01)
    follower = asyncio.create_task(verifying.verify(delivery(transmission_id="f"), NOW))
    await asyncio.sleep(0.01)
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    with pytest.raises(CertificateUnavailable):  # its request was fine: the PSP may retry
        await follower
    gate.set()
    assert await verifying.verify(delivery(), NOW)  # nothing was cached from the interruption
    assert fetcher.calls == [CERT_URL, CERT_URL]


async def test_cached_certificate_is_fetched_again_once_it_expires() -> None:
    p = pki()
    fetcher = FakeFetcher({CERT_URL: p.short_lived.pem + p.intermediate.pem})
    verifying = scheme(fetcher)
    assert await verifying.verify(delivery(), NOW)
    later = NOW + 2 * 3600
    assert await rejected(verifying, delivery(sent=later), now=later) == "certificate_rejected"
    assert fetcher.calls == [CERT_URL, CERT_URL]


async def test_cache_holds_a_bounded_number_of_urls() -> None:
    urls = [f"{CERT_URL[:-4]}{n:04d}" for n in range(3)]
    fetcher = FakeFetcher(dict.fromkeys(urls, pki().chain_pem))
    verifying = scheme(fetcher)
    small = dataclasses.replace(verifying, certificates=SigningCertificates(
        verifying.certificates.policy, fetcher, max_entries=2))
    for url in [*urls, urls[0]]:
        await small.verify(delivery(cert_url=url), NOW)
    assert fetcher.calls == [*urls, urls[0]]


# -- transmission time -----------------------------------------------------------------------


async def test_stale_transmission_is_rejected_without_fetching() -> None:
    fetcher = FakeFetcher({CERT_URL: pki().chain_pem})
    assert await rejected(scheme(fetcher), delivery(sent=NOW - 301)) == "timestamp_too_old"
    assert fetcher.calls == []


async def test_future_transmission_is_rejected() -> None:
    assert await rejected(scheme(), delivery(sent=NOW + 301)) == "timestamp_in_future"


async def test_transmission_at_the_edge_of_tolerance_is_accepted() -> None:
    verifying = scheme()
    for sent in (NOW - 300, NOW + 300):
        assert await verifying.verify(delivery(sent=sent), NOW)


@pytest.mark.parametrize("time", [
    "2026-09-21T14:13:20", "2026-09-21", "yesterday", "1790000000", "2026-09-21T14:13:20+25:00",
    "2026-02-30T14:13:20Z",
])
async def test_transmission_time_that_is_not_rfc3339_with_offset_is_malformed(time: str) -> None:
    request = delivery(headers={"paypal-transmission-time": time})
    assert await rejected(scheme(), request) == "malformed_header"


async def test_transmission_time_with_offset_is_understood() -> None:
    time = dt.datetime.fromtimestamp(NOW, dt.timezone(dt.timedelta(hours=-7))).isoformat()
    signature = sign_transmission(pki().leaf.key, TRANSMISSION_ID, time, WEBHOOK_ID, BODY)
    request = delivery(headers={"paypal-transmission-time": time,
                                "paypal-transmission-sig": signature})
    assert await scheme().verify(request, NOW)


# -- headers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [
    "paypal-transmission-id", "paypal-transmission-time", "paypal-transmission-sig",
    "paypal-cert-url", "paypal-auth-algo",
])
async def test_missing_header_is_rejected(header: str) -> None:
    assert await rejected(scheme(), delivery(headers={header: None})) == "missing_header"


@pytest.mark.parametrize("headers", [
    {"paypal-auth-algo": "SHA1withRSA"},
    {"paypal-auth-algo": "sha256withrsa"},
    {"paypal-transmission-sig": "not base64!"},
    {"paypal-transmission-sig": "ünïcødé☃"},
    {"paypal-transmission-sig": "QUFB" * 400},
    {"paypal-transmission-id": "a|b"},
    {"paypal-transmission-id": "with space"},
])
async def test_malformed_header_is_rejected(headers: dict[str, str]) -> None:
    assert await rejected(scheme(), delivery(headers=headers)) == "malformed_header"


async def test_wrong_length_signature_is_a_mismatch_not_a_crash() -> None:
    request = delivery(headers={"paypal-transmission-sig": "QUJD"})
    assert await rejected(scheme(), request) == "signature_mismatch"


async def test_basic_auth_when_configured_is_checked_before_any_fetch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fetcher = FakeFetcher({CERT_URL: pki().chain_pem})
    monkeypatch.setattr(paypal_module, "HttpxCertFetcher", lambda: fetcher)  # the network
    settings_ = dataclasses.replace(endpoint(pki().root.pem.decode()),
                                    basic_auth=BasicAuth("paypal", Secret("pw")))
    verifying = build_scheme(settings_)
    assert await rejected(verifying, delivery()) == "basic_auth_failed"
    assert fetcher.calls == []
    good = delivery(headers={"authorization": "Basic " + base64.b64encode(b"paypal:pw").decode()})
    assert (await verifying.verify(good, NOW)).key_index == 0
    assert fetcher.calls == [CERT_URL]


async def test_verified_body_that_is_not_an_event_is_malformed() -> None:
    with pytest.raises(MalformedRequest):
        await scheme().verify(delivery(b'["not", "an", "event"]'), NOW)


# -- arbitrary input -------------------------------------------------------------------------

_URLS = st.one_of(
    st.text(max_size=120),
    st.sampled_from([CERT_URL, *HOSTILE_CERT_URLS]),
    st.builds(lambda scheme_, host, path: f"{scheme_}://{host}{path}",
              st.sampled_from(["https", "http", "HTTPS", "ftp"]),
              st.sampled_from([*PAYPAL_CERT_HOSTS, "evil.example", "api.paypal.com:444"]),
              st.text(max_size=60).map(lambda s: "/v1/notifications/certs/" + s)),
)
_HEADER = st.one_of(st.none(), st.text(max_size=80))
# well-formed values too, so that many examples get as far as the certificate fetch
_IDS = st.one_of(_HEADER, st.from_regex(r"[0-9a-f-]{1,40}", fullmatch=True))
_BASE64 = st.binary(min_size=1, max_size=600).map(lambda raw: base64.b64encode(raw).decode())
_SIGNATURES = st.one_of(_HEADER, _BASE64)


@settings(max_examples=400, deadline=None)
@given(body=st.binary(max_size=512), transmission_id=_IDS, time=_HEADER, signature=_SIGNATURES,
       cert_url=_URLS, algo=st.one_of(st.none(), st.sampled_from(["SHA256withRSA", "x"])),
       sent=st.integers(min_value=NOW - 400, max_value=NOW + 400))
def test_arbitrary_input_raises_only_typed_errors_and_fetches_only_allowed_urls(
        body: bytes, transmission_id: str | None, time: str | None, signature: str | None,
        cert_url: str, algo: str | None, sent: int) -> None:
    """Everything arbitrary at once: only typed errors (that rarely reaches the fetch; the next
    property starts from a genuine delivery so that it does)."""
    fetcher = FakeFetcher({CERT_URL: pki().chain_pem})
    headers = {
        "paypal-transmission-id": transmission_id,
        "paypal-transmission-time": format_transmission_time(sent) if time is None else time,
        "paypal-transmission-sig": signature,
        "paypal-cert-url": cert_url,
        "paypal-auth-algo": algo,
    }
    request = RawRequest(body, {k: v for k, v in headers.items() if v is not None})
    with contextlib.suppress(VerificationFailed, MalformedRequest):
        asyncio.run(scheme(fetcher).verify(request, NOW))
    for url in fetcher.calls:
        assert url == allowed_url(url, PAYPAL_CERT_HOSTS)
        assert url.startswith(tuple(f"https://{h}/v1/notifications/certs/"
                                    for h in PAYPAL_CERT_HOSTS))


@settings(max_examples=300, deadline=None)
@given(header=st.sampled_from(["paypal-transmission-id", "paypal-transmission-time",
                               "paypal-transmission-sig", "paypal-cert-url", "paypal-auth-algo"]),
       value=st.one_of(st.text(max_size=120), _URLS, _BASE64),
       body=st.one_of(st.just(BODY), st.binary(max_size=256)))
def test_genuine_delivery_with_one_arbitrary_header_fails_only_in_typed_ways(
        header: str, value: str, body: bytes) -> None:
    fetcher = FakeFetcher({CERT_URL: pki().chain_pem})
    request = RawRequest(body, {**delivery().headers, header: value})
    with contextlib.suppress(VerificationFailed, MalformedRequest):
        asyncio.run(scheme(fetcher).verify(request, NOW))
    assert all(url == allowed_url(url, PAYPAL_CERT_HOSTS) for url in fetcher.calls)
    well_formed = value.isascii() and len(value) <= 1024 and signing.b64decode_or_none(value)
    if header == "paypal-transmission-sig" and well_formed:
        assert fetcher.calls == [CERT_URL]  # everything before the fetch was genuine


@given(url=_URLS)
def test_allowed_url_is_https_on_a_paypal_host_under_the_certs_path(url: str) -> None:
    try:
        canonical = allowed_url(url, PAYPAL_CERT_HOSTS)
    except VerificationFailed as exc:
        reason = exc.reason
    else:
        reason = "allowed"
        assert canonical.startswith(tuple(f"https://{h}/v1/notifications/certs/"
                                          for h in PAYPAL_CERT_HOSTS))
        assert not {"@", "?", "#", "\\"} & set(canonical)
    assert reason in {"allowed", "certificate_rejected"}


# -- payment reference -----------------------------------------------------------------------


@pytest.mark.parametrize(("event", "ref"), [
    ({"resource": {"id": "CAP1", "supplementary_data": {"related_ids": {"order_id": "ORD1"}}}},
     "ORD1"),
    ({"resource": {"id": "AUTH1", "supplementary_data": {"related_ids": {}}}}, "AUTH1"),
    ({"resource": {"id": "REF1", "links": [{"rel": "up", "href": "…/captures/CAP1"}]}}, "REF1"),
    ({"resource": {"dispute_id": "PP-D-1", "disputed_transactions": []}}, None),
    ({"resource": {"supplementary_data": "nonsense", "id": 7}}, None),
    ({"resource": []}, None),
    ({}, None),
])
def test_payment_reference_is_the_order_else_the_resource(event: dict[str, Any],
                                                          ref: str | None) -> None:
    assert payment_ref(event) == ref


# -- configuration ---------------------------------------------------------------------------


def test_webhook_id_is_required() -> None:
    settings_ = dataclasses.replace(endpoint(pki().root.pem.decode()),
                                    options=types.MappingProxyType({}))
    with pytest.raises(ConfigError) as err:
        PayPalScheme.from_settings(settings_, fetcher=FakeFetcher())
    assert err.value.key == "endpoints.paypal.webhook_id"


@pytest.mark.parametrize("webhook_id", ["WEBHOOK_ID", "has space", "a|b", "", ["ok1", 7]])
def test_unusable_webhook_id_is_a_config_error(webhook_id: Any) -> None:
    with pytest.raises(ConfigError) as err:
        scheme(webhook_id=webhook_id)
    assert err.value.key == "endpoints.paypal.webhook_id"


def test_unknown_option_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError) as err:
        scheme(webhookid="typo")
    assert err.value.key == "endpoints.paypal.webhookid"


def test_simulator_options_are_accepted_and_ignored() -> None:
    assert scheme(sim_signing_key="-----BEGIN PRIVATE KEY-----", sim_cert_url=CERT_URL,
                  sim_signing_key_file="/nonexistent")


def test_unreadable_trust_store_is_a_config_error(tmp_path: Path) -> None:
    for trust_store in (str(tmp_path / "missing.pem"), str(tmp_path)):
        with pytest.raises(ConfigError) as err:
            PayPalScheme.from_settings(endpoint(trust_store), fetcher=FakeFetcher())
        assert err.value.key == "endpoints.paypal.trust_store"


async def test_trust_store_file_from_tmp_path_is_used(tmp_path: Path) -> None:
    path = tmp_path / "ca.pem"
    path.write_bytes(pki().root.pem)
    verifying = PayPalScheme.from_settings(endpoint(str(path)),
                                           fetcher=FakeFetcher({CERT_URL: pki().chain_pem}))
    assert (await verifying.verify(delivery(), NOW)).key_index == 0


def test_default_trust_store_is_the_system_bundle() -> None:
    settings_ = dataclasses.replace(endpoint(""), options=types.MappingProxyType(
        {"webhook_id": WEBHOOK_ID}))
    built = build_scheme(settings_)
    assert isinstance(built, PayPalScheme)
    assert len(built.certificates.policy.trust_anchors) > 50


@pytest.mark.parametrize("option", ["cert_hosts", "cert_subjects"])
def test_empty_host_list_is_a_config_error(option: str) -> None:
    with pytest.raises(ConfigError) as err:
        scheme(**{option: []})
    assert err.value.key == f"endpoints.paypal.{option}"


def test_cert_files_must_name_allowed_urls() -> None:
    with pytest.raises(ConfigError) as err:
        scheme(cert_files={"https://evil.example/cert": "/tmp/x.pem"})
    assert err.value.key == "endpoints.paypal.cert_files"


# -- the simulator ---------------------------------------------------------------------------


def sim_endpoint(tmp_path: Path) -> EndpointSettings:
    key_file = tmp_path / "signing-key.pem"
    key_file.write_bytes(pki().leaf.key_pem)
    return endpoint(pki().root.pem.decode(), sim_signing_key_file=str(key_file),
                    sim_cert_url=CERT_URL)


async def test_simulated_lifecycles_verify_at_a_receiver_trusting_the_sim_cert(tmp_path: Path
                                                                              ) -> None:
    settings_ = sim_endpoint(tmp_path)
    verifying = PayPalScheme.from_settings(settings_,
                                           fetcher=FakeFetcher({CERT_URL: pki().chain_pem}))
    rng = random.Random(7)
    kinds = set()
    for _ in range(40):
        for event in sim.lifecycle(rng, NOW):
            signed = sim.sign([event], settings_, NOW)
            verified = await verifying.verify(RawRequest(signed.body, signed.headers), NOW)
            [provider_event] = verified.events
            assert provider_event.event_id == event.event_id
            assert provider_event.event_type == event.kind
            kinds.add(event.kind)
    assert kinds == {"PAYMENT.AUTHORIZATION.CREATED", "PAYMENT.AUTHORIZATION.VOIDED",
                     "PAYMENT.CAPTURE.COMPLETED", "PAYMENT.CAPTURE.DENIED",
                     "PAYMENT.CAPTURE.REFUNDED", "CUSTOMER.DISPUTE.CREATED",
                     "CUSTOMER.DISPUTE.RESOLVED"}


def test_simulated_signing_key_may_come_as_pem_text(tmp_path: Path) -> None:
    settings_ = endpoint(pki().root.pem.decode(), sim_signing_key=pki().leaf.key_pem.decode(),
                         sim_cert_url=CERT_URL)
    event = sim.lifecycle(random.Random(1), NOW)[0]
    assert sim.sign([event], settings_, NOW).headers["paypal-cert-url"] == CERT_URL


def test_simulator_without_its_options_is_a_config_error() -> None:
    event = sim.lifecycle(random.Random(1), NOW)[0]
    with pytest.raises(ConfigError) as err:
        sim.sign([event], endpoint(""), NOW)
    assert err.value.key == "endpoints.paypal.sim_signing_key_file"


def _minor(amount: dict[str, str]) -> int:
    exponent = sim.EXPONENTS[amount["currency_code"]]
    whole, _, fraction = amount["value"].partition(".")
    assert len(fraction) == exponent
    return int(whole + fraction)


def test_simulated_money_never_breaks_the_payment_invariants() -> None:
    rng = random.Random(11)
    for _ in range(300):
        events = sim.lifecycle(rng, NOW)
        assert {e.payment_ref for e in events} == {events[0].payment_ref}
        authorized = captured = refunded = 0
        for event in events:
            body: dict[str, Any] = event.event
            resource = body["resource"]
            if event.kind == "PAYMENT.AUTHORIZATION.CREATED":
                authorized = _minor(resource["amount"])
                assert payment_ref(body) == event.payment_ref
            elif event.kind == "PAYMENT.CAPTURE.COMPLETED":
                captured += _minor(resource["amount"])
                assert payment_ref(body) == event.payment_ref
            elif event.kind == "PAYMENT.CAPTURE.REFUNDED":
                refunded += _minor(resource["amount"])
                assert _minor(resource["seller_payable_breakdown"]["total_refunded_amount"]) == (
                    refunded)
            elif event.kind == "CUSTOMER.DISPUTE.RESOLVED":
                assert resource["dispute_outcome"]["outcome_code"] in {
                    "RESOLVED_BUYER_FAVOUR", "RESOLVED_SELLER_FAVOUR"}
        assert 0 < captured <= authorized or captured == 0
        assert refunded <= captured


@pytest.mark.parametrize(("minor", "currency", "value"), [
    (1234, "EUR", "12.34"), (5, "USD", "0.05"), (1500, "JPY", "1500"), (100000, "GBP", "1000.00"),
])
def test_simulated_amounts_are_decimal_strings_in_major_units(minor: int, currency: str,
                                                              value: str) -> None:
    assert sim.money(minor, currency) == {"currency_code": currency, "value": value}


def test_simulator_sends_one_event_per_request(tmp_path: Path) -> None:
    events: list[SimEvent] = sim.lifecycle(random.Random(3), NOW)
    with pytest.raises(ValueError, match="unpack"):
        sim.sign(events[:2] if len(events) > 1 else events * 2, sim_endpoint(tmp_path), NOW)


# -- a real PayPal delivery --------------------------------------------------------------------
# PAYMENT.CAPTURE.REFUNDED sent by PayPal's webhook simulator on 2024-08-02 (hence the webhook id
# "WEBHOOK_ID"), as a public project recorded it for its own tests: body and headers exactly as
# received, and the single certificate PayPal served at its PAYPAL-CERT-URL. The intermediate is
# DigiCert's public "DigiCert SHA2 Extended Validation Server CA" (2013-2028) that issued it.

REAL_SENT = 1722627304  # 2024-08-02T19:35:04Z
REAL_CERT_URL = "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-1a5f47cb"
REAL_HEADERS = {
    "content-type": "application/json",
    "paypal-transmission-id": "51730200-5106-11ef-9a30-157053fd3e43",
    "paypal-transmission-time": "2024-08-02T19:35:04Z",
    "paypal-transmission-sig": (
        "ff31fhZxoix1VbYc2wPp991eiUBdhALb71NFSq8VOMkbaBdx3Gm4lFZmQDL/lUXl4rImLjUdDvBMp4DOCN7T5Wmy"
        "Y7G88yzMJJCngENSA7+r1NXweP+TLy5/jyGoNU2j3VEUSr9gwNF1tKrCpixnJbzwTA7tI8s4c53xfdtPuYKd4KNj"
        "H7jRQXt/YH+sR9hwNZTPWpIUm1LrdGFxCH1iHoM5/mO1E7EngRuTf8zYAFIJE/vBcY2dLoD2gTJPfLbo5D+KSSMq"
        "grD+xuCPJtZnQjP9QbA0rUAenRYAbRxPh2u3dLTiAaRMP7mZBI4d9ecPkdk0HgtUAPVhJTTBmx+Lag=="),
    "paypal-auth-version": "v2",
    "paypal-cert-url": REAL_CERT_URL,
    "paypal-auth-algo": "SHA256withRSA",
}
REAL_BODY = (
    b'{"id":"WH-1GE84257G0350133W-6RW800890C634293G","event_version":"1.0","create_time":"2018-08'
    b'-15T19:14:04.543Z","resource_type":"refund","resource_version":"2.0","event_type":"PAYMENT.C'
    b'APTURE.REFUNDED","summary":"A $ 0.99 USD capture payment was refunded","resource":{"id":"1Y1'
    b'07995YT783435V","amount":{"currency_code":"USD","value":"0.99"},"seller_payable_breakdown":{'
    b'"gross_amount":{"currency_code":"USD","value":"0.99"},"paypal_fee":{"currency_code":"USD","v'
    b'alue":"0.02"},"net_amount":{"currency_code":"USD","value":"0.97"},"total_refunded_amount":{"'
    b'currency_code":"USD","value":"1.98"}},"status":"COMPLETED","create_time":"2018-08-15T12:13:29'
    b'-07:00","update_time":"2018-08-15T12:13:29-07:00","links":[{"href":"https://api.paypal.com/v'
    b'2/payments/refunds/1Y107995YT783435V","rel":"self","method":"GET"},{"href":"https://api.payp'
    b'al.com/v2/payments/captures/0JF852973C016714D","rel":"up","method":"GET"}]},"links":[{"href"'
    b':"https://api.paypal.com/v1/notifications/webhooks-events/WH-1GE84257G0350133W-6RW800890C634'
    b'293G","rel":"self","method":"GET"},{"href":"https://api.paypal.com/v1/notifications/webhooks'
    b'-events/WH-1GE84257G0350133W-6RW800890C634293G/resend","rel":"resend","method":"POST"}]}'
)
REAL_LEAF_PEM = b"""-----BEGIN CERTIFICATE-----
MIIHXDCCBkSgAwIBAgIQA/ujbySX3tuj46W/d7zhxDANBgkqhkiG9w0BAQsFADB1
MQswCQYDVQQGEwJVUzEVMBMGA1UEChMMRGlnaUNlcnQgSW5jMRkwFwYDVQQLExB3
d3cuZGlnaWNlcnQuY29tMTQwMgYDVQQDEytEaWdpQ2VydCBTSEEyIEV4dGVuZGVk
IFZhbGlkYXRpb24gU2VydmVyIENBMB4XDTI0MDMwODAwMDAwMFoXDTI1MDMwNzIz
NTk1OVowgdsxEzARBgsrBgEEAYI3PAIBAxMCVVMxGTAXBgsrBgEEAYI3PAIBAhMI
RGVsYXdhcmUxHTAbBgNVBA8MFFByaXZhdGUgT3JnYW5pemF0aW9uMRAwDgYDVQQF
EwczMDE0MjY3MQswCQYDVQQGEwJVUzETMBEGA1UECBMKQ2FsaWZvcm5pYTERMA8G
A1UEBxMIU2FuIEpvc2UxFTATBgNVBAoTDFBheVBhbCwgSW5jLjEsMCoGA1UEAxMj
bWVzc2FnZXZlcmlmaWNhdGlvbmNlcnRzLnBheXBhbC5jb20wggEiMA0GCSqGSIb3
DQEBAQUAA4IBDwAwggEKAoIBAQC4GzoXbAbZY1nNrR6sr/WGBKHrv5MzXK+QY2lt
N0eZFSMR3Q/FhTSVKyFGEtqpdkVu2RwnJnpz0dtDAnssBZTDE/3dafGT41cPPtjQ
Tx/VLhC0noV+SCcwYk2Bv7vm2RqeJUUVqThouNmZPaRZNpMPQDAqdHUoIxSk/kQl
hPVHhTCpjY9wwUbwn49E/+f44W87kkeXsrbTet6bSeqgW1oy7sj2QR0vg2xi1yYy
dNqhMhsceh3pV7qRfvlP7Rv3yorsCWZXAbxSB7MKzcSsnM2n4iE20pTWWiUaKLPI
L4vTqfl0cqRygKx0Pcy4aknxIRwbI8Ab493j5c2Rmtxv4ZJhAgMBAAGjggN/MIID
ezAfBgNVHSMEGDAWgBQ901Cl1qCt7vNKYApl0yHU+PjWDzAdBgNVHQ4EFgQUGTJR
HgzRoA4BYXr5GPWiwCf5gd8wLgYDVR0RBCcwJYIjbWVzc2FnZXZlcmlmaWNhdGlv
bmNlcnRzLnBheXBhbC5jb20wSgYDVR0gBEMwQTALBglghkgBhv1sAgEwMgYFZ4EM
AQEwKTAnBggrBgEFBQcCARYbaHR0cDovL3d3dy5kaWdpY2VydC5jb20vQ1BTMA4G
A1UdDwEB/wQEAwIFoDAdBgNVHSUEFjAUBggrBgEFBQcDAQYIKwYBBQUHAwIwdQYD
VR0fBG4wbDA0oDKgMIYuaHR0cDovL2NybDMuZGlnaWNlcnQuY29tL3NoYTItZXYt
c2VydmVyLWczLmNybDA0oDKgMIYuaHR0cDovL2NybDQuZGlnaWNlcnQuY29tL3No
YTItZXYtc2VydmVyLWczLmNybDCBiAYIKwYBBQUHAQEEfDB6MCQGCCsGAQUFBzAB
hhhodHRwOi8vb2NzcC5kaWdpY2VydC5jb20wUgYIKwYBBQUHMAKGRmh0dHA6Ly9j
YWNlcnRzLmRpZ2ljZXJ0LmNvbS9EaWdpQ2VydFNIQTJFeHRlbmRlZFZhbGlkYXRp
b25TZXJ2ZXJDQS5jcnQwDAYDVR0TAQH/BAIwADCCAXwGCisGAQQB1nkCBAIEggFs
BIIBaAFmAHUATnWjJ1yaEMM4W2zU3z9S6x3w4I4bjWnAsfpksWKaOd8AAAGOHuxW
NwAABAMARjBEAiA794gDwBlLuPrnv5Fj4ablrQ0rdN79WXYKElFRlZfFwQIgbSkU
2m9OuKVbhYkYye2p7uEZaY+7CIau2CgGn021hb4AdgB9WR4S4XgqexxhZ3xe/fjQ
h1wUoE6VnrkDL9kOjC55uAAAAY4e7FX0AAAEAwBHMEUCIH/TXkK2Wg7UAa1E0G0A
BP2PZubHPXyzhtWUQWo0S7SyAiEAuKaUmmoOH7eS+cZXu18EwdU0b0/Fr4vTIeAW
dBwuOOQAdQDm0jFjQHeMwRBBBtdxuc7B0kD2loSG+7qHMh39HjeOUAAAAY4e7FYQ
AAAEAwBGMEQCIFsrE/dHNM1QbIclR/50AiCNtoKjcGJFoblgaVnWW/6uAiBA5EE+
vX1dxUdluf6cktPuo0IxYZSd6WCG4zqBMR292TANBgkqhkiG9w0BAQsFAAOCAQEA
vKdi82U0vGaCCAYN598wEN6Ktu+BeZp3W3p1iVRBZgY9l0JPjwWN8Apwm4BUUTp3
00gpIfROKvyR1655B0QDv/oL1Wuz/zQ87kUGVZNNeac07+X2e6YP5sqrwF4ttWai
ajFRa8M2Y6vEk+7EmSexynxJBRa86Aa4xogqlTv/7kXf7LrDzMTlfle7o2L7eqwd
CIc7vCYw9XQ5K80d4Siy6xz+RSu7+Un8QlfAYB7z1o32uPEUihk05ulMiXJYvA0W
OagItBsuMSzgwQ0KDC9EmDYmXE9xWtUolehmBGRyQw+/E7iVu4x4js1HRiD0M+s9
bRQ14PLxRLqDKu8oqZ8DQA==
-----END CERTIFICATE-----
"""
DIGICERT_EV_CA_PEM = b"""-----BEGIN CERTIFICATE-----
MIIEtjCCA56gAwIBAgIQDHmpRLCMEZUgkmFf4msdgzANBgkqhkiG9w0BAQsFADBs
MQswCQYDVQQGEwJVUzEVMBMGA1UEChMMRGlnaUNlcnQgSW5jMRkwFwYDVQQLExB3
d3cuZGlnaWNlcnQuY29tMSswKQYDVQQDEyJEaWdpQ2VydCBIaWdoIEFzc3VyYW5j
ZSBFViBSb290IENBMB4XDTEzMTAyMjEyMDAwMFoXDTI4MTAyMjEyMDAwMFowdTEL
MAkGA1UEBhMCVVMxFTATBgNVBAoTDERpZ2lDZXJ0IEluYzEZMBcGA1UECxMQd3d3
LmRpZ2ljZXJ0LmNvbTE0MDIGA1UEAxMrRGlnaUNlcnQgU0hBMiBFeHRlbmRlZCBW
YWxpZGF0aW9uIFNlcnZlciBDQTCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoC
ggEBANdTpARR+JmmFkhLZyeqk0nQOe0MsLAAh/FnKIaFjI5j2ryxQDji0/XspQUY
uD0+xZkXMuwYjPrxDKZkIYXLBxA0sFKIKx9om9KxjxKws9LniB8f7zh3VFNfgHk/
LhqqqB5LKw2rt2O5Nbd9FLxZS99RStKh4gzikIKHaq7q12TWmFXo/a8aUGxUvBHy
/Urynbt/DvTVvo4WiRJV2MBxNO723C3sxIclho3YIeSwTQyJ3DkmF93215SF2AQh
cJ1vb/9cuhnhRctWVyh+HA1BV6q3uCe7seT6Ku8hI3UarS2bhjWMnHe1c63YlC3k
8wyd7sFOYn4XwHGeLN7x+RAoGTMCAwEAAaOCAUkwggFFMBIGA1UdEwEB/wQIMAYB
Af8CAQAwDgYDVR0PAQH/BAQDAgGGMB0GA1UdJQQWMBQGCCsGAQUFBwMBBggrBgEF
BQcDAjA0BggrBgEFBQcBAQQoMCYwJAYIKwYBBQUHMAGGGGh0dHA6Ly9vY3NwLmRp
Z2ljZXJ0LmNvbTBLBgNVHR8ERDBCMECgPqA8hjpodHRwOi8vY3JsNC5kaWdpY2Vy
dC5jb20vRGlnaUNlcnRIaWdoQXNzdXJhbmNlRVZSb290Q0EuY3JsMD0GA1UdIAQ2
MDQwMgYEVR0gADAqMCgGCCsGAQUFBwIBFhxodHRwczovL3d3dy5kaWdpY2VydC5j
b20vQ1BTMB0GA1UdDgQWBBQ901Cl1qCt7vNKYApl0yHU+PjWDzAfBgNVHSMEGDAW
gBSxPsNpA/i/RwHUmCYaCALvY2QrwzANBgkqhkiG9w0BAQsFAAOCAQEAnbbQkIbh
hgLtxaDwNBx0wY12zIYKqPBKikLWP8ipTa18CK3mtlC4ohpNiAexKSHc59rGPCHg
4xFJcKx6HQGkyhE6V6t9VypAdP3THYUYUN9XR3WhfVUgLkc3UHKMf4Ib0mKPLQNa
2sPIoc4sUqIAY+tzunHISScjl2SFnjgOrWNoPLpSgVh5oywM395t6zHyuqB8bPEs
1OG9d4Q3A84ytciagRpKkk47RpqF/oOi+Z6Mo8wNXrM9zwR4jxQUezKcxwCmXMS1
oVWNWlZopCJwqjyBcdmdqEU79OX2olHdx3ti6G8MdOu42vi/hw15UJGQmxg7kVkn
8TUoE6smftX3eg==
-----END CERTIFICATE-----
"""
