"""Helpers every scheme shares: HMAC digests, constant-time comparison on bytes, base64."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Sequence


def hmac_digest(key: bytes, message: bytes, digest: str = "sha256") -> bytes:
    return hmac.new(key, message, getattr(hashlib, digest)).digest()


def hmac_hex(key: bytes, message: bytes, digest: str = "sha256") -> bytes:
    """Lower-case hex digest, as bytes (ready for :func:`equal`)."""
    return hmac.new(key, message, getattr(hashlib, digest)).hexdigest().encode("ascii")


def hmac_b64(key: bytes, message: bytes, digest: str = "sha256") -> bytes:
    """Standard base64 of the digest, as bytes."""
    return base64.b64encode(hmac_digest(key, message, digest))


def header_bytes(value: str) -> bytes:
    """A header value as the bytes that came over the wire; never raises.

    Starlette decodes header bytes as latin-1, so encoding back as latin-1 restores them exactly;
    a str from elsewhere with characters above U+00FF falls back to UTF-8.
    """
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape")


def equal(expected: bytes, candidate: bytes) -> bool:
    """Constant-time comparison of bytes (``compare_digest`` on ``str`` raises on non-ASCII)."""
    return hmac.compare_digest(expected, candidate)


def first_match(expected_per_key: Iterable[bytes], candidates: Sequence[bytes]) -> int | None:
    """Index of the first key whose expected signature equals any candidate, else None.

    Every candidate is compared for a key, so which candidate matched does not change the time.
    """
    for index, expected in enumerate(expected_per_key):
        matched = False
        for candidate in candidates:
            matched |= equal(expected, candidate)
        if matched:
            return index
    return None


def b64decode_or_none(text: str | bytes) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None

