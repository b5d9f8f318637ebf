"""HTTP Basic auth in front of any provider's scheme, checked before the scheme sees the request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ingest.errors import VerificationFailed
from ingest.schemes import signing
from payhooks.config import BasicAuth, EndpointSettings

if TYPE_CHECKING:  # ingest.schemes imports this module while it is being initialised
    from ingest.schemes import RawRequest, Scheme, Verified


def guarded(endpoint: EndpointSettings, scheme: Scheme) -> Scheme:
    """``scheme`` behind a :class:`BasicAuthGuard` when the endpoint configures Basic auth."""
    if endpoint.basic_auth is None:
        return scheme
    return BasicAuthGuard(scheme, endpoint.basic_auth)


@dataclass(frozen=True, slots=True)
class BasicAuthGuard:
    """A scheme whose requests must carry the endpoint's Basic credentials.

    The credentials are checked first, so a request without them is refused before anything is
    parsed, fetched (PayPal's certificate) or HMACed, whatever the provider.
    """

    scheme: Scheme
    basic_auth: BasicAuth  # its password is a Secret: the repr shows no credential

    @property
    def provider(self) -> str:
        return self.scheme.provider

    @property
    def content_types(self) -> frozenset[str]:
        return self.scheme.content_types

    @property
    def success_body(self) -> bytes:
        return self.scheme.success_body

    @property
    def success_media_type(self) -> str:
        return self.scheme.success_media_type

    async def verify(self, request: RawRequest, now: float) -> Verified:
        check_basic_auth(request.headers, self.basic_auth)
        return await self.scheme.verify(request, now)


def check_basic_auth(headers: Mapping[str, str], expected: BasicAuth) -> None:
    """Raise ``basic_auth_failed`` unless the Authorization header carries ``expected``."""
    header = headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    decoded = signing.b64decode_or_none(encoded.strip()) if scheme.lower() == "basic" else None
    wanted = f"{expected.username}:{expected.password.value}".encode()
    # compare even when the header is missing or garbage, so timing says nothing either way
    if not signing.equal(wanted, decoded or b"") or decoded is None:
        raise VerificationFailed("basic_auth_failed", "Basic authentication failed")
