"""Square: ``x-square-hmacsha256-signature`` over ``notification_url + body``, and its signer.

Facts (PSP_NOTES, Square's ``square.utils.webhooks_helper.verify_signature``): HMAC-SHA256, standard
base64, keyed with the subscription's signature key as UTF-8. The signed URL is the one the
subscription was created with, byte for byte, so it comes from the endpoint's ``notification_url``
option and never from the request (a proxy, a port or a trailing slash would change it). Nothing
time-bound is signed: replays are caught by deduplication on ``event_id``.

The payment reference is the Payment id: ``data.id`` on ``payment.*`` events,
``data.object.refund.payment_id`` on ``refund.*`` and
``data.object.dispute.disputed_payment.payment_id`` on ``dispute.*``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ingest.errors import MalformedRequest, VerificationFailed
from ingest.schemes import ProviderEvent, RawRequest, Verified, signing
from ingest.schemes.json_body import dig, json_object, text
from ingest.schemes.options import Options, key_ring
from payhooks.config import ConfigError, EndpointSettings

HEADER = "x-square-hmacsha256-signature"
PROVIDER = "square"
OPTIONS = frozenset({"notification_url"})

#: base64 of a 32-byte digest: 43 characters and one ``=``
_SIGNATURE = re.compile(r"[A-Za-z0-9+/]{43}=")


def signature(body: bytes, key: str, notification_url: str) -> str:
    """The ``x-square-hmacsha256-signature`` Square sends for ``body`` posted to the URL."""
    return signing.hmac_b64(key.encode(), notification_url.encode() + body).decode("ascii")


def notification_url(endpoint: EndpointSettings) -> str:
    """The endpoint's ``notification_url`` option, checked; ConfigError naming it otherwise."""
    key = f"endpoints.{endpoint.name}.notification_url"
    url = endpoint.options.get("notification_url")
    if not isinstance(url, str) or not url:
        raise ConfigError(key, "is required: the URL of the Square webhook subscription, exactly")
    try:
        parts = urlsplit(url)
        url.encode()
    except ValueError:  # also UnicodeEncodeError: a lone surrogate from the environment
        raise ConfigError(key, "is not a URL") from None
    if (
        parts.scheme not in {"https", "http"}
        or not parts.hostname
        or not url.isprintable()
        or any(ch.isspace() for ch in url)
    ):
        raise ConfigError(key, "must be the absolute http(s) URL the subscription posts to")
    return url


@dataclass(frozen=True, slots=True)
class SquareScheme:
    keys: tuple[bytes, ...]
    notification_url: bytes
    provider: str = PROVIDER
    content_types: frozenset[str] = frozenset({"application/json"})
    success_body: bytes = b'{"received":true}'
    success_media_type: str = "application/json"

    @classmethod
    def from_settings(cls, endpoint: EndpointSettings) -> SquareScheme:
        Options(endpoint, OPTIONS)
        return cls(
            keys=key_ring(endpoint),
            notification_url=notification_url(endpoint).encode(),
        )

    async def verify(self, request: RawRequest, now: float) -> Verified:
        candidate = _parse_header(request.headers.get(HEADER))
        signed = self.notification_url + request.body
        expected = (signing.hmac_b64(key, signed) for key in self.keys)
        key_index = signing.first_match(expected, [candidate])
        if key_index is None:
            raise VerificationFailed("signature_mismatch", "no signature matches a key of the ring")
        return Verified(key_index=key_index, events=(_event(request.body),))


def _parse_header(value: str | None) -> bytes:
    if not value:
        raise VerificationFailed("missing_header", "x-square-hmacsha256-signature is missing")
    if not _SIGNATURE.fullmatch(value):
        raise VerificationFailed(
            "malformed_header", "x-square-hmacsha256-signature is not a base64 SHA-256 digest"
        )
    return value.encode("ascii")


def _event(body: bytes) -> ProviderEvent:
    event = json_object(body, "a Square event object")
    event_id, event_type = text(event.get("event_id")), text(event.get("type"))
    if event_id is None:
        raise MalformedRequest("Square event lacks event_id")
    if event_type is None:
        raise MalformedRequest("Square event lacks type")
    return ProviderEvent(
        event_id=event_id, event_type=event_type, payment_ref=payment_ref(event), payload=body
    )


def payment_ref(event: Mapping[str, Any]) -> str | None:
    """The Payment id a Square event is about, or None when it names none."""
    event_type = event.get("type")
    data = event.get("data")
    if not isinstance(event_type, str) or not isinstance(data, dict):
        return None
    obj = data.get("object")
    if event_type.startswith("payment."):
        ref = data.get("id") or dig(obj, "payment", "id")
    elif event_type.startswith("refund."):
        ref = dig(obj, "refund", "payment_id")
    elif event_type.startswith("dispute."):
        ref = dig(obj, "dispute", "disputed_payment", "payment_id")
    else:
        ref = None
    return text(ref)
