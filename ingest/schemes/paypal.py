"""PayPal: RSA-SHA256 with PayPal's certificate over ``id|time|webhook_id|crc32(body)``; its signer.

Facts (PSP_NOTES; PayPal's Java, .NET and Python SDKs; a real 2024 delivery as test vector):

- headers ``PAYPAL-TRANSMISSION-ID``, ``PAYPAL-TRANSMISSION-TIME`` (RFC 3339, per transmission:
  a retry carries a new id and time), ``PAYPAL-TRANSMISSION-SIG`` (base64), ``PAYPAL-CERT-URL``,
  ``PAYPAL-AUTH-ALGO`` (only ``SHA256withRSA`` is accepted; 2014-era deliveries used SHA1);
- the signed text is ``transmission_id|transmission_time|webhook_id|crc32`` where ``crc32`` is the
  unsigned decimal CRC-32 of the raw body, signed RSASSA-PKCS1-v1_5 with SHA-256 by the key of the
  certificate at ``PAYPAL-CERT-URL`` (see :mod:`ingest.schemes.paypal_certs` for how that URL and
  certificate are checked);
- ``webhook_id`` binds a delivery to *our* subscription: PayPal signs events of every merchant's
  webhooks with the same key, so the id comes from configuration, never from the request. PayPal's
  webhook simulator signs with the literal id ``WEBHOOK_ID`` for anyone who asks, so that id is
  refused as configuration.

Settings of ``[endpoints.<name>]`` (an unknown option is a ConfigError naming it). There is no
shared secret: ``secrets``, which the configuration requires of every endpoint, is not used.

- ``webhook_id`` (required): the key ring, i.e. the accepted webhook ids, as one id, a
  comma-separated string or a list (several while deliveries move from an old PayPal app to a new
  one); ``Verified.key_index`` says which one matched;
- ``trust_store``: path of a PEM bundle of trusted CAs (or its text, via ``trust_store_file``);
  default: the system CA bundle;
- ``cert_hosts``, ``cert_subjects``, ``ca_issuer_hosts``: PayPal's certificate hosts, the SAN
  names its signing certificate must carry, the hosts an intermediate may be fetched from
  (defaults in :mod:`ingest.schemes.paypal_certs`);
- ``cert_files``: ``{ "<cert URL>" = "<PEM path>" }``, certificates served from disk instead of
  the network (still fully validated);
- ``sim_signing_key_file`` / ``sim_signing_key``, ``sim_cert_url``: read by
  :mod:`payhooks.sim.paypal` only, ignored here.

Checks run cheapest first and nothing touches the network before the headers, the algorithm, the
certificate URL and the transmission time (both ways, ``tolerance_seconds``) have passed; Basic
auth, when configured, is checked before all of them (``build_scheme``). The payment reference
is the order id (``resource.supplementary_data.related_ids.order_id``), else ``resource.id``.
Refund and dispute resources name no order (a refund links to its capture, a dispute lists
captures), so their reference is the refund id, or none.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ingest.errors import MalformedRequest, VerificationFailed
from ingest.schemes import ProviderEvent, RawRequest, Verified, signing
from ingest.schemes.json_body import dig, json_object, text
from ingest.schemes.options import Options
from ingest.schemes.paypal_certs import (
    CA_ISSUER_HOSTS,
    PAYPAL_CERT_HOSTS,
    PAYPAL_CERT_SUBJECTS,
    CertFetcher,
    CertPolicy,
    HttpxCertFetcher,
    PreloadedCertFetcher,
    SigningCertificates,
    load_trust_store,
)
from payhooks.config import ConfigError, EndpointSettings

PROVIDER = "paypal"
HEADER_TRANSMISSION_ID = "paypal-transmission-id"
HEADER_TRANSMISSION_TIME = "paypal-transmission-time"
HEADER_TRANSMISSION_SIG = "paypal-transmission-sig"
HEADER_CERT_URL = "paypal-cert-url"
HEADER_AUTH_ALGO = "paypal-auth-algo"
AUTH_ALGO = "SHA256withRSA"
#: what PayPal's webhook simulator signs as webhook id, for any account: never a real endpoint's
SIMULATOR_WEBHOOK_ID = "WEBHOOK_ID"

#: every option this scheme reads; the ``sim_*`` options belong to payhooks.sim.paypal and are
#: let through by :class:`~ingest.schemes.options.Options`
OPTIONS = frozenset({
    "webhook_id", "cert_hosts", "cert_subjects", "trust_store", "ca_issuer_hosts", "cert_files",
})

# a header token: printable ASCII without '|' (the separator of the signed text)
_TOKEN = re.compile(r"[\x21-\x7b\x7d\x7e]{1,128}")
_WEBHOOK_ID = re.compile(r"[A-Za-z0-9_-]{1,50}")
_MAX_SIGNATURE_CHARS = 1024  # base64 of a 4096-bit RSA signature is 684


def crc32_decimal(body: bytes) -> str:
    """CRC-32 of the raw body as PayPal writes it: unsigned, decimal."""
    return str(zlib.crc32(body) & 0xFFFFFFFF)


def signed_text(transmission_id: str, transmission_time: str, webhook_id: str, body: bytes
                ) -> bytes:
    """The bytes PayPal signs for one transmission."""
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{crc32_decimal(body)}".encode()


def sign_transmission(private_key: rsa.RSAPrivateKey, transmission_id: str, time: str,
                      webhook_id: str, body: bytes) -> str:
    """``PAYPAL-TRANSMISSION-SIG`` for a transmission, as PayPal computes it."""
    signature = private_key.sign(signed_text(transmission_id, time, webhook_id, body),
                                 padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def signature_holds(public_key: rsa.RSAPublicKey, signature: bytes, text: bytes) -> bool:
    try:
        public_key.verify(signature, text, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def format_transmission_time(unix: float) -> str:
    """``PAYPAL-TRANSMISSION-TIME`` as PayPal writes it: ``2024-08-02T19:34:57Z``."""
    return dt.datetime.fromtimestamp(int(unix), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def webhook_ids(endpoint: EndpointSettings) -> tuple[str, ...]:
    """The accepted webhook ids of an endpoint (its key ring), first one the current."""
    options = Options(endpoint, OPTIONS)
    key = options.key("webhook_id")
    ids = _strings(options, "webhook_id")
    if not ids:
        raise ConfigError(key, "is required: the id PayPal shows for this webhook")
    for webhook_id in ids:
        if not _WEBHOOK_ID.fullmatch(webhook_id):
            raise ConfigError(key, "must be PayPal webhook ids (letters, digits, - or _; <= 50)")
        if webhook_id == SIMULATOR_WEBHOOK_ID:
            raise ConfigError(key, "WEBHOOK_ID is what PayPal's simulator signs for any account; "
                                   "use this webhook's own id")
    return ids


@dataclass(frozen=True, slots=True)
class PayPalScheme:
    webhook_ids: tuple[str, ...]
    certificates: SigningCertificates
    tolerance_seconds: int = 300
    provider: str = PROVIDER
    content_types: frozenset[str] = frozenset({"application/json"})
    success_body: bytes = b'{"received":true}'
    success_media_type: str = "application/json"

    @classmethod
    def from_settings(cls, endpoint: EndpointSettings, *, fetcher: CertFetcher | None = None
                      ) -> PayPalScheme:
        """Build from ``[endpoints.<name>]``; ``fetcher`` replaces the network (tests)."""
        options = Options(endpoint, OPTIONS)
        trust_store = options.optional_text("trust_store")
        try:
            anchors = load_trust_store(trust_store)
        except (OSError, ValueError) as exc:
            raise ConfigError(options.key("trust_store"), f"unusable CA bundle ({exc})") from None
        policy = CertPolicy(
            trust_anchors=tuple(anchors),
            hosts=_hosts(options, "cert_hosts", PAYPAL_CERT_HOSTS),
            subjects=_hosts(options, "cert_subjects", PAYPAL_CERT_SUBJECTS),
            ca_issuer_hosts=_hosts(options, "ca_issuer_hosts", CA_ISSUER_HOSTS),
        )
        source = fetcher or HttpxCertFetcher()
        files = _cert_files(options.values.get("cert_files"), policy, options.key("cert_files"))
        if files:
            source = PreloadedCertFetcher(files, source)
        return cls(
            webhook_ids=webhook_ids(endpoint),
            certificates=SigningCertificates(policy, source),
            tolerance_seconds=endpoint.tolerance_seconds,
        )

    async def verify(self, request: RawRequest, now: float) -> Verified:
        headers = request.headers
        transmission_id, transmission_time, signature, cert_url = _read_headers(headers)
        # offline checks first (headers, URL, clock); the certificate fetch comes last
        fetch_url = self.certificates.policy.cert_url(cert_url)
        self._check_time(transmission_time, now)
        public_key = await self.certificates.public_key(fetch_url, now)
        key_index = None
        for index, webhook_id in enumerate(self.webhook_ids):
            text = signed_text(transmission_id, transmission_time, webhook_id, request.body)
            if signature_holds(public_key, signature, text) and key_index is None:
                key_index = index
        if key_index is None:
            raise VerificationFailed("signature_mismatch",
                                     "signature does not match a configured webhook id")
        return Verified(key_index=key_index, events=(_event(request.body),))

    def _check_time(self, transmission_time: str, now: float) -> None:
        sent = _parse_time(transmission_time)
        age = now - sent
        if age > self.tolerance_seconds:
            raise VerificationFailed("timestamp_too_old", "transmission time is too old")
        if -age > self.tolerance_seconds:
            raise VerificationFailed("timestamp_in_future", "transmission time is in the future")


def _read_headers(headers: Mapping[str, str]) -> tuple[str, str, bytes, str]:
    names = (HEADER_TRANSMISSION_ID, HEADER_TRANSMISSION_TIME, HEADER_TRANSMISSION_SIG,
             HEADER_CERT_URL, HEADER_AUTH_ALGO)
    values = [headers.get(name) for name in names]
    for name, value in zip(names, values, strict=True):
        if not value:
            raise VerificationFailed("missing_header", f"{name.upper()} header is missing")
    transmission_id, transmission_time, signature, cert_url, algo = (str(v) for v in values)
    if algo != AUTH_ALGO:
        raise VerificationFailed("malformed_header", f"PAYPAL-AUTH-ALGO must be {AUTH_ALGO}")
    if not _TOKEN.fullmatch(transmission_id):
        raise VerificationFailed("malformed_header", "PAYPAL-TRANSMISSION-ID is malformed")
    if not _TOKEN.fullmatch(transmission_time):
        raise VerificationFailed("malformed_header", "PAYPAL-TRANSMISSION-TIME is malformed")
    decoded = (signing.b64decode_or_none(signature)
               if len(signature) <= _MAX_SIGNATURE_CHARS and signature.isascii() else None)
    if not decoded:
        raise VerificationFailed("malformed_header", "PAYPAL-TRANSMISSION-SIG is not base64")
    return transmission_id, transmission_time, decoded, cert_url


def _parse_time(value: str) -> float:
    """An RFC 3339 time with an offset (``Z`` or ``+hh:mm``) as unix seconds."""
    try:
        parsed = dt.datetime.fromisoformat(value)
        if parsed.tzinfo is not None:
            return parsed.timestamp()
    except (ValueError, OverflowError):
        pass
    raise VerificationFailed("malformed_header", "PAYPAL-TRANSMISSION-TIME is not RFC 3339")


def _strings(options: Options, name: str) -> tuple[str, ...]:
    """A list option without its empty parts; () when it is not set."""
    return tuple(v for v in options.strings(name) or () if v)


def _hosts(options: Options, name: str, default: tuple[str, ...]) -> frozenset[str]:
    """A set of DNS names; only ``ca_issuer_hosts`` may be empty (no intermediate fetching)."""
    if name not in options.values:
        return frozenset(default)
    names = frozenset(h.lower() for h in _strings(options, name))
    if not names and name != "ca_issuer_hosts":
        raise ConfigError(options.key(name), "must name at least one host")
    return names


def _cert_files(value: Any, policy: CertPolicy, key: str) -> dict[str, Path]:
    """``cert_files = { "<cert URL>" = "<PEM path>" }``: certificates served from disk."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ConfigError(key, "expected a table of certificate URL = PEM file path")
    files: dict[str, Path] = {}
    for url, path in value.items():
        try:
            files[policy.cert_url(url)] = Path(path)
        except VerificationFailed:
            raise ConfigError(key, f"{url!r} is not an allowed certificate URL") from None
    return files


def _event(body: bytes) -> ProviderEvent:
    event = json_object(body, "a PayPal event object")
    event_id, event_type = text(event.get("id")), event.get("event_type")
    if event_id is None or not isinstance(event_type, str):
        raise MalformedRequest("PayPal event lacks id or event_type")
    return ProviderEvent(
        event_id=event_id,
        event_type=event_type,
        payment_ref=payment_ref(event),
        payload=body,
    )


def payment_ref(event: Mapping[str, Any]) -> str | None:
    """The order a PayPal event is about (``related_ids.order_id``), else the resource's id."""
    return (text(dig(event, "resource", "supplementary_data", "related_ids", "order_id"))
            or text(dig(event, "resource", "id")))
