"""PayPal's signing certificate: which URLs may name it; how it is fetched, checked and cached.

``PAYPAL-CERT-URL`` is chosen by whoever sends the request, so it is the attacker's first lever:
a URL that is not an https URL on one of PayPal's certificate hosts, under
``/v1/notifications/certs/``, with no userinfo, query, fragment or port other than 443, is refused
before any network access. Only the URL rebuilt from the checked parts is fetched, with a deadline
and a size limit, through an injectable :class:`CertFetcher` (``cert_files`` may serve configured
URLs from disk instead).

What PayPal serves there (seen in recorded 2024 deliveries): one PEM certificate, the leaf only,
``CN=messageverificationcerts.paypal.com, O=PayPal, Inc.`` with the same SAN dNSName, issued by
DigiCert's EV server CA. PayPal's own SDKs shipped that intermediate as their trust anchor. Here
the leaf must chain to the configured trust store (default: the system CA bundle); intermediates
come from the served bundle, else from the leaf's AIA ``caIssuers`` URL when its host is allowed
(``cacerts.digicert.com`` by default), so a change of CA at PayPal needs no release. The leaf
must be valid at ``now`` and name an accepted subject in its SAN. No revocation check is made.

A fetch that fails (a timeout, also while waiting for a free fetch slot, a network error, a 5xx,
an unreadable ``cert_files`` entry) says nothing about the request, so it is
:class:`~ingest.errors.CertificateUnavailable`, a 503 the PSP retries; only what was served (a
4xx, a redirect, too many bytes, no certificate, a chain, validity or subject that does not hold)
is ``certificate_rejected``.

A validated key is cached per URL until the earliest ``notAfter`` of its chain (bounded LRU);
concurrent requests for one URL share one fetch; a failure is remembered only briefly, so that an
outage of PayPal's host heals on its own while a burst does not hammer it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
import ssl
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AuthorityInformationAccessOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from ingest.errors import CertificateUnavailable, VerificationFailed

#: hosts PayPal serves webhook signing certificates from (live and sandbox; ``api-m.`` is the
#: newer API host name, the ``PAYPAL-CERT-URL`` seen in deliveries uses ``api.``)
PAYPAL_CERT_HOSTS = (
    "api.paypal.com",
    "api-m.paypal.com",
    "api.sandbox.paypal.com",
    "api-m.sandbox.paypal.com",
)
CERT_PATH_PREFIX = "/v1/notifications/certs/"
#: names PayPal's signing certificate carries (SAN dNSName); the Java SDK accepted
#: ``messageverificationcerts*.paypal.com``, we accept exactly these
PAYPAL_CERT_SUBJECTS = (
    "messageverificationcerts.paypal.com",
    "messageverificationcerts.sandbox.paypal.com",
)
#: hosts an intermediate may be fetched from (the leaf's AIA caIssuers URL)
CA_ISSUER_HOSTS = ("cacerts.digicert.com",)
SYSTEM_CA_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",  # RHEL, Fedora
    "/etc/ssl/cert.pem",  # macOS, BSDs
)

FETCH_TIMEOUT_SECONDS = 3.0  # per fetch, including the wait for a free fetch slot
MAX_CERT_BYTES = 64 * 1024  # a PEM chain is a few KiB
MAX_CHAIN_CERTS = 4  # certificates in one served bundle
MAX_CACHED_URLS = 32
FAILURE_TTL_SECONDS = 10.0  # how long a failed fetch or a rejected certificate is remembered
MAX_CONCURRENT_FETCHES = 4  # distinct URLs fetched at once

_MAX_URL_CHARS = 500  # PayPal's own limit for cert_url
_URL_CHARS = re.compile(r"[A-Za-z0-9._~:/@%?#=&+!$'()*,;\[\]-]+")  # RFC 3986, no space or '\'
_CERT_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}")  # CERT-360caa42-fca2a594-1a5f47cb


class CertFetchError(Exception):
    """What was served is not a certificate to judge (a 4xx, a redirect, too many bytes); the
    message names no secret."""


class CertSourceUnavailable(CertFetchError):
    """The certificate's source failed (network error, timeout, 5xx, unreadable file): retry."""


class CertFetcher(Protocol):
    """Where certificate bytes come from: the network in production, a dict in tests."""

    async def fetch(self, url: str) -> bytes:
        """The body served at ``url``; raises :class:`CertFetchError` on any failure, as
        :class:`CertSourceUnavailable` when the source, not what it serves, failed."""
        ...


@dataclass(frozen=True, slots=True)
class HttpxCertFetcher:
    """GET over httpx: no redirects, identity encoding, at most ``max_bytes`` read."""

    timeout_seconds: float = FETCH_TIMEOUT_SECONDS
    max_bytes: int = MAX_CERT_BYTES
    transport: httpx.AsyncBaseTransport | None = None  # httpx.MockTransport in tests

    async def fetch(self, url: str) -> bytes:
        headers = {"accept": "application/x-pem-file, application/pkix-cert, */*",
                   "accept-encoding": "identity"}
        client = httpx.AsyncClient(timeout=self.timeout_seconds, follow_redirects=False,
                                   transport=self.transport)
        try:
            async with client, client.stream("GET", url, headers=headers) as response:
                if response.status_code >= 500:
                    raise CertSourceUnavailable(
                        f"certificate host answered {response.status_code}")
                if response.status_code != 200:
                    raise CertFetchError(f"certificate host answered {response.status_code}")
                received = bytearray()
                async for chunk in response.aiter_bytes():
                    received += chunk
                    if len(received) > self.max_bytes:
                        raise CertFetchError("certificate response is too large")
                return bytes(received)
        except httpx.TransportError as exc:  # timeouts, connection and protocol errors
            raise CertSourceUnavailable(f"certificate fetch failed ({type(exc).__name__})"
                                        ) from None
        except httpx.HTTPError as exc:  # what was served could not be decoded
            raise CertFetchError(f"certificate fetch failed ({type(exc).__name__})") from None


@dataclass(frozen=True, slots=True)
class PreloadedCertFetcher:
    """Serves configured URLs from local PEM files (air-gapped hosts, local demos), else asks
    ``fallback``. What it serves is validated exactly like a fetched certificate."""

    files: Mapping[str, Path]
    fallback: CertFetcher

    async def fetch(self, url: str) -> bytes:
        path = self.files.get(url)
        if path is None:
            return await self.fallback.fetch(url)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise CertSourceUnavailable(f"preloaded certificate unreadable ({exc.strerror})"
                                        ) from None


def _rejected(detail: str) -> VerificationFailed:
    return VerificationFailed("certificate_rejected", detail)


class UntrustedChain(VerificationFailed):
    """No path from the leaf to the trust store with the intermediates at hand."""

    def __init__(self, detail: str) -> None:
        super().__init__("certificate_rejected", detail)


def allowed_url(url: str, hosts: Iterable[str], *, path_prefix: str | None = CERT_PATH_PREFIX,
                schemes: frozenset[str] = frozenset({"https"})) -> str:
    """The canonical form of ``url`` when it may be fetched, else ``certificate_rejected``.

    Checked on the raw text first: Python's URL parser drops tabs and newlines and tolerates
    backslashes that an HTTP client may read differently, so such characters never get that far.
    """
    if len(url) > _MAX_URL_CHARS or not _URL_CHARS.fullmatch(url):
        raise _rejected("certificate URL is not an allowed PayPal URL")
    parts = urlsplit(url)
    host = parts.netloc.lower().removesuffix(":443" if parts.scheme == "https" else ":80")
    if (
        parts.scheme not in schemes
        or host not in {h.lower() for h in hosts}
        or "?" in url
        or "#" in url
    ):
        raise _rejected("certificate URL is not an allowed PayPal URL")
    path = parts.path
    if path_prefix is not None and not (
        path.startswith(path_prefix) and _CERT_NAME.fullmatch(path[len(path_prefix):])
    ):
        raise _rejected("certificate URL is not an allowed PayPal URL")
    if path_prefix is None and (not path.startswith("/") or "/../" in f"{path}/" or "%" in path):
        raise _rejected("issuer URL is not allowed")
    return f"{parts.scheme}://{host}{path}"


def load_trust_store(source: str | None) -> list[x509.Certificate]:
    """CA certificates from ``source`` (a PEM file path or PEM text), or the system's bundle.

    Raises ``ValueError`` (the caller names the setting) when nothing usable is found.
    """
    if source is not None and "-----BEGIN CERTIFICATE-----" in source:
        return _certificates_from_pem(source.encode(), strict=True)
    if source is not None:
        return _certificates_from_pem(Path(source).read_bytes(), strict=True)
    for candidate in _system_bundles():
        if candidate.is_file():
            return _certificates_from_pem(candidate.read_bytes(), strict=False)
    raise ValueError("no system CA bundle found; set trust_store to a PEM bundle")


def _system_bundles() -> list[Path]:
    paths = [ssl.get_default_verify_paths().cafile, *SYSTEM_CA_BUNDLES]
    with contextlib.suppress(ImportError):
        import certifi  # noqa: PLC0415 - optional: present wherever httpx is

        paths.append(certifi.where())
    return [Path(p) for p in paths if p]


def _certificates_from_pem(data: bytes, *, strict: bool) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle; a block that does not parse is an error when
    ``strict``, else skipped (system bundles carry a few certificates cryptography dislikes)."""
    blocks = re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", data, re.S)
    certs: list[x509.Certificate] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. a root with a negative serial number
        for block in blocks:
            try:
                certs.append(x509.load_pem_x509_certificate(block))
            except ValueError:
                if strict:
                    raise
    if not certs:
        raise ValueError("holds no PEM certificate")
    return certs


@dataclass(frozen=True, slots=True)
class SigningKey:
    """PayPal's verified public key and until when it may be used without a new check."""

    public_key: rsa.RSAPublicKey
    valid_until: float


@dataclass(frozen=True, slots=True)
class CertPolicy:
    """The pure part: which URLs are allowed and what a served certificate must satisfy."""

    trust_anchors: tuple[x509.Certificate, ...]
    hosts: frozenset[str] = frozenset(PAYPAL_CERT_HOSTS)
    subjects: frozenset[str] = frozenset(PAYPAL_CERT_SUBJECTS)
    ca_issuer_hosts: frozenset[str] = frozenset(CA_ISSUER_HOSTS)
    store: Store = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "store", Store(list(self.trust_anchors)))

    def cert_url(self, url: str) -> str:
        return allowed_url(url, self.hosts)

    def issuer_url(self, leaf: x509.Certificate) -> str | None:
        """The leaf's first AIA caIssuers URL on an allowed host, if any."""
        try:
            aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        except x509.ExtensionNotFound:
            return None
        for description in aia:
            location = description.access_location
            if (description.access_method == AuthorityInformationAccessOID.CA_ISSUERS
                    and isinstance(location, x509.UniformResourceIdentifier)):
                with contextlib.suppress(VerificationFailed):
                    return allowed_url(location.value, self.ca_issuer_hosts, path_prefix=None,
                                       schemes=frozenset({"http", "https"}))
        return None

    def signing_key(self, certs: list[x509.Certificate], now: float) -> SigningKey:
        """Validate ``certs`` (leaf first, then untrusted intermediates) at ``now``.

        Raises ``certificate_rejected``: as :class:`UntrustedChain` when the leaf itself is fine
        but no path to the trust store was found (a missing intermediate may still be fetched).
        """
        leaf, intermediates = certs[0], certs[1:]
        if not dns_names(leaf) & self.subjects:
            raise _rejected("certificate does not name PayPal's signing service")
        at = dt.datetime.fromtimestamp(now, dt.UTC)
        if not leaf.not_valid_before_utc <= at <= leaf.not_valid_after_utc:
            raise _rejected("certificate is expired or not yet valid")
        public_key = leaf.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey) or public_key.key_size < 2048:
            raise _rejected("certificate key is not RSA of at least 2048 bits")
        verifier = (
            PolicyBuilder()
            .store(self.store)
            .time(at)
            .max_chain_depth(MAX_CHAIN_CERTS)
            # PayPal's signing cert is a TLS server cert (EKU serverAuth, clientAuth): its EKU
            # says nothing about signing messages, so any EKU is accepted; the rest is Web PKI
            .extension_policies(
                ca_policy=ExtensionPolicy.webpki_defaults_ca(),
                ee_policy=ExtensionPolicy.webpki_defaults_ee().may_be_present(
                    x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None),
            )
            .build_client_verifier()
        )
        try:
            verified = verifier.verify(leaf, intermediates)
        except VerificationError:
            raise UntrustedChain("certificate chain does not verify to the trust store") from None
        expiry = min(cert.not_valid_after_utc for cert in verified.chain)
        return SigningKey(public_key, expiry.timestamp())


def dns_names(cert: x509.Certificate) -> frozenset[str]:
    """The SAN dNSNames of ``cert``, lower-cased (the CN is not consulted, as in RFC 6125)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return frozenset()
    return frozenset(name.lower() for name in san.get_values_for_type(x509.DNSName))


def parse_certificates(data: bytes) -> list[x509.Certificate]:
    """A served bundle: PEM (one or more, leaf first) or a single DER certificate."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise _rejected("certificate response is not a certificate") from None
    if len(certs) > MAX_CHAIN_CERTS:
        raise _rejected("certificate response holds too many certificates")
    return certs


@dataclass(frozen=True, slots=True)
class _Entry:
    """A cache entry: a usable key, or the detail of a recent failure, until ``until``."""

    key: rsa.RSAPublicKey | None
    until: float
    detail: str = ""
    unavailable: bool = False  # the failure was the fetch's, not the certificate's

    def unwrap(self) -> rsa.RSAPublicKey:
        if self.key is not None:
            return self.key
        if self.unavailable:
            raise CertificateUnavailable(self.detail)
        raise _rejected(self.detail)


class SigningCertificates:
    """Validated PayPal signing keys per certificate URL, fetched once and shared.

    Not thread-safe: one instance per event loop (the receiver runs one).
    """

    def __init__(
        self,
        policy: CertPolicy,
        fetcher: CertFetcher,
        *,
        fetch_timeout_seconds: float = FETCH_TIMEOUT_SECONDS,
        max_bytes: int = MAX_CERT_BYTES,
        max_entries: int = MAX_CACHED_URLS,
        failure_ttl_seconds: float = FAILURE_TTL_SECONDS,
        max_concurrent_fetches: int = MAX_CONCURRENT_FETCHES,
    ) -> None:
        self.policy = policy
        self.fetcher = fetcher
        self.fetch_timeout_seconds = fetch_timeout_seconds
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.failure_ttl_seconds = failure_ttl_seconds
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._pending: dict[str, asyncio.Future[_Entry]] = {}
        self._fetch_slots = asyncio.Semaphore(max_concurrent_fetches)

    async def public_key(self, cert_url: str, now: float) -> rsa.RSAPublicKey:
        """PayPal's key for the certificate at ``cert_url`` (already allowed); else
        ``certificate_rejected``, or CertificateUnavailable when it could not be fetched."""
        entry = self._entries.get(cert_url)
        if entry is not None and now < entry.until:
            self._entries.move_to_end(cert_url)
            return entry.unwrap()
        pending = self._pending.get(cert_url)
        if pending is not None:
            # shield: a follower that is cancelled must not cancel the leader's fetch
            return (await asyncio.shield(pending)).unwrap()
        pending = asyncio.get_running_loop().create_future()
        self._pending[cert_url] = pending
        try:
            entry = await self._load(cert_url, now)
        except BaseException:
            # cancelled, or a fetcher bug: followers get a failure now instead of waiting forever;
            # their requests were fine, so they may retry
            pending.set_result(_Entry(None, now, "certificate fetch was interrupted",
                                      unavailable=True))
            raise
        finally:
            del self._pending[cert_url]
        pending.set_result(entry)
        self._remember(cert_url, entry)
        return entry.unwrap()

    async def _load(self, cert_url: str, now: float) -> _Entry:
        try:
            certs = parse_certificates(await self._fetch(cert_url))
            try:
                found = self.policy.signing_key(certs, now)
            except UntrustedChain:
                issuer_url = self.policy.issuer_url(certs[0])
                if issuer_url is None:
                    raise
                issuer = parse_certificates(await self._fetch(issuer_url))
                found = self.policy.signing_key([*certs, *issuer], now)
        except VerificationFailed as exc:
            return _Entry(None, now + self.failure_ttl_seconds, exc.detail)
        except CertificateUnavailable as exc:
            return _Entry(None, now + self.failure_ttl_seconds, exc.detail, unavailable=True)
        return _Entry(found.public_key, found.valid_until)

    async def _fetch(self, url: str) -> bytes:
        try:
            async with asyncio.timeout(self.fetch_timeout_seconds), self._fetch_slots:
                body = await self.fetcher.fetch(url)
        except TimeoutError:  # also: no fetch slot came free in time
            raise CertificateUnavailable("certificate fetch timed out") from None
        except CertSourceUnavailable as exc:
            raise CertificateUnavailable(str(exc)) from None
        except CertFetchError as exc:
            raise _rejected(str(exc)) from None
        if len(body) > self.max_bytes:
            raise _rejected("certificate response is too large")
        return body

    def _remember(self, cert_url: str, entry: _Entry) -> None:
        self._entries[cert_url] = entry
        self._entries.move_to_end(cert_url)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
