"""The smallest valid endpoint of every provider, for tests that run through the scheme table."""

from __future__ import annotations

import base64
import types
from typing import Any

from payhooks.config import BasicAuth, EndpointSettings, Secret

#: provider -> (key ring, options) of an endpoint its scheme accepts
MINIMAL: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "stripe": (("whsec_minimal",), {}),
    "adyen": (("44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056",), {}),
    "braintree": (("private-key",), {"public_key": "public-key"}),
    "paypal": ((), {"webhook_id": "8PT597110X687430L"}),  # the system CA bundle as trust store
    "checkout": (("sk_minimal",), {}),
    "square": (("square-signature-key",), {"notification_url": "https://hooks.example.com/sq"}),
    "gocardless": (("gocardless-secret",), {}),
    "razorpay": (("razorpay-secret",), {}),
    "mollie": (("mollie-secret",), {}),
    "standard": (("whsec_" + base64.b64encode(b"standard-webhooks-key").decode(),), {}),
    "hmac": (("hmac-secret",), {"header": "X-Signature"}),
}


def minimal_endpoint(provider: str, *, secrets: tuple[str, ...] | None = None,
                     basic_auth: BasicAuth | None = None, **options: Any) -> EndpointSettings:
    """The minimal endpoint of ``provider``; ``secrets`` and ``options`` replace or add to it."""
    ring, base = MINIMAL[provider]
    return EndpointSettings(
        name=f"{provider}-test",
        provider=provider,
        secrets=tuple(Secret(s) for s in (ring if secrets is None else secrets)),
        basic_auth=basic_auth,
        options=types.MappingProxyType({**base, **options}),
    )
