"""A throwaway PKI for PayPal tests: a root, an intermediate and signing certificates shaped like
PayPal's (``CN``/SAN ``messageverificationcerts.paypal.com``, RSA 2048, EKU serverAuth+clientAuth).

Keys are made once per test session (RSA generation is the slow part) and shared.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

PAYPAL_NAME = "messageverificationcerts.paypal.com"
DAY = dt.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate and the private key of its subject."""

    cert: x509.Certificate
    key: rsa.RSAPrivateKey

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


@functools.cache
def rsa_key(label: str) -> rsa.RSAPrivateKey:
    """One 2048-bit key per label, made once per process."""
    del label  # only the cache key
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "payhooks test PKI"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _builder(subject: x509.Name, key: rsa.RSAPrivateKey, issuer: Issued | None,
             not_before: dt.datetime, not_after: dt.datetime) -> x509.CertificateBuilder:
    issuer_key = issuer.key if issuer else key
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )


def ca(common_name: str, *, issuer: Issued | None = None, key_label: str | None = None,
       at: dt.datetime, days: int = 3650) -> Issued:
    """A root (no issuer) or an intermediate CA valid from a day before ``at``."""
    key = rsa_key(key_label or common_name)
    cert = (
        _builder(_name(common_name), key, issuer, at - DAY, at + days * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None if issuer is None else 0),
                       critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True,
                          crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True,
        )
        .sign((issuer.key if issuer else key), hashes.SHA256())
    )
    return Issued(cert, key)


def signing_cert(issuer: Issued | None, *, at: dt.datetime, dns_name: str = PAYPAL_NAME,
                 key_label: str = "paypal-signing", not_before: dt.datetime | None = None,
                 not_after: dt.datetime | None = None, ca_issuers_url: str | None = None
                 ) -> Issued:
    """A leaf like PayPal's message-verification certificate, valid around ``at``; with no
    ``issuer`` it signs itself (what a forger can make without any CA)."""
    key = rsa_key(key_label)
    builder = (
        _builder(_name(dns_name), key, issuer, not_before or at - DAY, not_after or at + 365 * DAY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                          data_encipherment=False, key_agreement=False, key_cert_sign=False,
                          crl_sign=False, encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                   ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
    )
    if ca_issuers_url is not None:
        builder = builder.add_extension(
            x509.AuthorityInformationAccess([x509.AccessDescription(
                AuthorityInformationAccessOID.CA_ISSUERS,
                x509.UniformResourceIdentifier(ca_issuers_url),
            )]),
            critical=False,
        )
    return Issued(builder.sign(issuer.key if issuer else key, hashes.SHA256()), key)
