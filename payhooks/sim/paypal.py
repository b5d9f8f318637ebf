"""Simulated PayPal traffic: Orders v2 payment lifecycles, signed by ingest.schemes.paypal.

PayPal signs with its certificate's private key, which we do not have. The simulator signs with a
self-made key instead, named by two endpoint options that exist only for local demos and tests:

- ``sim_signing_key_file``: a PEM private key (the configuration turns it into
  ``sim_signing_key``, its content);
- ``sim_cert_url``: the ``PAYPAL-CERT-URL`` to send, where the receiver finds the matching
  certificate.

Such traffic verifies only at a receiver told to trust that self-made certificate: ``trust_store``
naming its CA, ``cert_hosts`` holding the URL's host (or ``cert_files`` mapping the URL to the
certificate file), and a certificate naming ``messageverificationcerts.paypal.com``. A receiver
configured for PayPal refuses it, as it should.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ingest.schemes import paypal
from payhooks.config import ConfigError, EndpointSettings
from payhooks.sim.base import SignedRequest, SimEvent

API = "https://api.sandbox.paypal.com"
#: ISO 4217 minor-unit exponents of the currencies simulated
EXPONENTS = {"EUR": 2, "USD": 2, "GBP": 2, "JPY": 0}
AMOUNTS = {2: [500, 1299, 2500, 4999, 10000, 123456], 0: [500, 1500, 9800, 120000]}
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def money(minor: int, currency: str) -> dict[str, str]:
    """PayPal's amount object: a decimal string in major units (``"12.34"``, ``"1500"`` for JPY)."""
    exponent = EXPONENTS[currency]
    if exponent == 0:
        return {"currency_code": currency, "value": str(minor)}
    whole, fraction = divmod(minor, 10**exponent)
    return {"currency_code": currency, "value": f"{whole}.{fraction:0{exponent}d}"}


def _pp_id(rng: random.Random) -> str:
    """A PayPal resource id: 17 upper-case letters and digits (``5O190127TN364715T``)."""
    return "".join(rng.choice(_ID_ALPHABET) for _ in range(17))


def _iso(unix: int) -> str:
    return dt.datetime.fromtimestamp(unix, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _link(href: str, rel: str, method: str = "GET") -> dict[str, str]:
    return {"href": href, "rel": rel, "method": method}


def lifecycle(rng: random.Random, now: int) -> list[SimEvent]:
    """One order's payment events in the order PayPal emits them (intent AUTHORIZE).

    Shapes: authorize -> capture; authorize -> partial capture -> final capture; capture ->
    (partial) refund(s); authorize -> void; authorize -> capture denied; capture -> dispute
    created -> dispute resolved for the buyer (lost) or the seller (won).
    """
    currency = rng.choice(sorted(EXPONENTS))
    order = _Order(
        rng=rng, order_id=_pp_id(rng), auth_id=_pp_id(rng), currency=currency,
        amount=rng.choice(AMOUNTS[EXPONENTS[currency]]),
        invoice_id=f"INV-{rng.randint(100000, 999999)}", created=now - rng.randint(0, 120),
    )
    shape = rng.choices(
        ["captured", "partially_captured", "refunded", "voided", "denied", "disputed"],
        [4, 2, 3, 2, 1, 2],
    )[0]
    amount, t0 = order.amount, order.created
    order.event("PAYMENT.AUTHORIZATION.CREATED", t0, "authorization",
                order.authorization("CREATED", t0), f"Payment authorized for {order.shown(amount)}")
    if shape == "voided":
        order.event("PAYMENT.AUTHORIZATION.VOIDED", t0 + 40, "authorization",
                    order.authorization("VOIDED", t0 + 40), "A payment authorization was voided")
        return order.events
    capture_id = _pp_id(rng)
    if shape == "denied":
        order.event("PAYMENT.CAPTURE.DENIED", t0 + 20, "capture",
                    order.capture(capture_id, amount, "DECLINED", t0 + 20, final=True),
                    f"A payment capture for {order.shown(amount)} was denied")
        return order.events
    first = amount // 2 if shape == "partially_captured" else amount
    order.event("PAYMENT.CAPTURE.COMPLETED", t0 + 20, "capture",
                order.capture(capture_id, first, "COMPLETED", t0 + 20, final=first == amount),
                f"Payment completed for {order.shown(first)}")
    if first < amount:
        order.event("PAYMENT.CAPTURE.COMPLETED", t0 + 50, "capture",
                    order.capture(_pp_id(rng), amount - first, "COMPLETED", t0 + 50, final=True),
                    f"Payment completed for {order.shown(amount - first)}")
    elif shape == "refunded":
        parts = rng.choice([[amount], [amount // 2], [amount // 2, amount - amount // 2]])
        refunded = 0
        for offset, part in enumerate(parts):
            refunded += part
            at = t0 + 60 + 30 * offset
            order.event("PAYMENT.CAPTURE.REFUNDED", at, "refund",
                        order.refund(capture_id, part, refunded, at),
                        f"A {order.shown(part)} capture payment was refunded")
    elif shape == "disputed":
        dispute_id = f"PP-D-{rng.randint(10000, 99999)}"
        outcome = rng.choice(["RESOLVED_BUYER_FAVOUR", "RESOLVED_SELLER_FAVOUR"])
        order.event("CUSTOMER.DISPUTE.CREATED", t0 + 3600, "dispute",
                    order.dispute(dispute_id, capture_id, t0 + 3600, None),
                    "A new dispute opened")
        order.event("CUSTOMER.DISPUTE.RESOLVED", t0 + 7200, "dispute",
                    order.dispute(dispute_id, capture_id, t0 + 7200, outcome),
                    "A dispute was resolved")
    return order.events


@dataclass(slots=True)
class _Order:
    """One simulated PayPal order and the webhook events emitted for it so far."""

    rng: random.Random
    order_id: str
    auth_id: str
    currency: str
    amount: int  # minor units
    invoice_id: str
    created: int
    events: list[SimEvent] = field(default_factory=list)

    def money(self, minor: int) -> dict[str, str]:
        return money(minor, self.currency)

    def shown(self, minor: int) -> str:
        return f"{self.money(minor)['value']} {self.currency}"

    def event(self, kind: str, at: int, resource_type: str, resource: dict[str, Any],
              summary: str) -> None:
        event_id = f"WH-{_pp_id(self.rng)}-{_pp_id(self.rng)}"
        body = {
            "id": event_id,
            "event_version": "1.0",
            "create_time": f"{_iso(at)[:-1]}.{self.rng.randint(0, 999):03d}Z",
            "resource_type": resource_type,
            "resource_version": "1.0" if resource_type == "dispute" else "2.0",
            "event_type": kind,
            "summary": summary,
            "resource": resource,
            "links": [
                _link(f"{API}/v1/notifications/webhooks-events/{event_id}", "self"),
                _link(f"{API}/v1/notifications/webhooks-events/{event_id}/resend", "resend",
                      "POST"),
            ],
        }
        self.events.append(SimEvent(payment_ref=self.order_id, event_id=event_id, kind=kind,
                                    event=body))

    def authorization(self, status: str, at: int) -> dict[str, Any]:
        href = f"{API}/v2/payments/authorizations/{self.auth_id}"
        return {
            "id": self.auth_id, "status": status, "amount": self.money(self.amount),
            "invoice_id": self.invoice_id, "seller_protection": _SELLER_PROTECTION,
            "expiration_time": _iso(self.created + 29 * 86400),
            "supplementary_data": {"related_ids": {"order_id": self.order_id}},
            "create_time": _iso(self.created), "update_time": _iso(at),
            "links": [_link(href, "self"), _link(f"{href}/capture", "capture", "POST"),
                      _link(f"{href}/void", "void", "POST"),
                      _link(f"{href}/reauthorize", "reauthorize", "POST"),
                      _link(f"{API}/v2/checkout/orders/{self.order_id}", "up")],
        }

    def capture(self, capture_id: str, minor: int, status: str, at: int, *, final: bool
                ) -> dict[str, Any]:
        href = f"{API}/v2/payments/captures/{capture_id}"
        resource: dict[str, Any] = {
            "id": capture_id, "status": status, "amount": self.money(minor),
            "final_capture": final, "invoice_id": self.invoice_id,
            "seller_protection": _SELLER_PROTECTION,
            "supplementary_data": {"related_ids": {"order_id": self.order_id,
                                                   "authorization_id": self.auth_id}},
            "create_time": _iso(at), "update_time": _iso(at),
            "links": [_link(href, "self"), _link(f"{href}/refund", "refund", "POST"),
                      _link(f"{API}/v2/payments/authorizations/{self.auth_id}", "up")],
        }
        if status == "COMPLETED":
            fixed = 49 if EXPONENTS[self.currency] else 40
            fee = min(minor - 1, minor * 349 // 10000 + fixed)
            resource["disbursement_mode"] = "INSTANT"
            resource["seller_receivable_breakdown"] = {
                "gross_amount": self.money(minor), "paypal_fee": self.money(fee),
                "net_amount": self.money(minor - fee)}
        else:
            resource["status_details"] = {"reason": "OTHER"}
        return resource

    def refund(self, capture_id: str, minor: int, refunded_total: int, at: int
               ) -> dict[str, Any]:
        # as at PayPal, a refund names its capture (link "up") but not the order
        refund_id = _pp_id(self.rng)
        return {
            "id": refund_id, "status": "COMPLETED", "amount": self.money(minor),
            "invoice_id": self.invoice_id,
            "seller_payable_breakdown": {
                "gross_amount": self.money(minor), "paypal_fee": self.money(0),
                "net_amount": self.money(minor),
                "total_refunded_amount": self.money(refunded_total)},
            "create_time": _iso(at), "update_time": _iso(at),
            "links": [_link(f"{API}/v2/payments/refunds/{refund_id}", "self"),
                      _link(f"{API}/v2/payments/captures/{capture_id}", "up")],
        }

    def dispute(self, dispute_id: str, capture_id: str, at: int, outcome: str | None
                ) -> dict[str, Any]:
        # as at PayPal, a dispute lists the disputed captures but not the order
        resource: dict[str, Any] = {
            "dispute_id": dispute_id,
            "create_time": _iso(self.created + 3600), "update_time": _iso(at),
            "disputed_transactions": [{
                "seller_transaction_id": capture_id,
                "create_time": _iso(self.created + 20),
                "transaction_status": "COMPLETED",
                "gross_amount": self.money(self.amount),
                "invoice_number": self.invoice_id,
                "seller": {"merchant_id": "QG3ECYYLJ2A48"},
            }],
            "reason": "MERCHANDISE_OR_SERVICE_NOT_RECEIVED",
            "status": "OPEN" if outcome is None else "RESOLVED",
            "dispute_amount": self.money(self.amount),
            "dispute_life_cycle_stage": "CHARGEBACK",
            "dispute_channel": "EXTERNAL",
            "links": [_link(f"{API}/v1/customer/disputes/{dispute_id}", "self")],
        }
        if outcome is not None:
            lost = outcome == "RESOLVED_BUYER_FAVOUR"
            resource["dispute_outcome"] = {
                "outcome_code": outcome,
                "amount_refunded": self.money(self.amount if lost else 0)}
        return resource


_SELLER_PROTECTION = {"status": "ELIGIBLE",
                      "dispute_categories": ["ITEM_NOT_RECEIVED", "UNAUTHORIZED_TRANSACTION"]}


def sign(events: Sequence[SimEvent], endpoint: EndpointSettings, now: int) -> SignedRequest:
    """PayPal sends one event per request, signed for the endpoint's first webhook id."""
    [only] = events
    body = orjson.dumps(only.event)
    transmission_id = str(uuid.uuid4())
    time = paypal.format_transmission_time(now)
    signature = paypal.sign_transmission(
        _signing_key(endpoint), transmission_id, time, paypal.webhook_ids(endpoint)[0], body)
    return SignedRequest(body, {
        "content-type": "application/json",
        "paypal-transmission-id": transmission_id,
        "paypal-transmission-time": time,
        "paypal-transmission-sig": signature,
        "paypal-cert-url": _option(endpoint, "sim_cert_url"),
        "paypal-auth-algo": paypal.AUTH_ALGO,
        "paypal-auth-version": "v2",
        "correlation-id": uuid.uuid4().hex[:13],
        "user-agent": "PayPal/AUHD-214.0-58391792",
    })


def _option(endpoint: EndpointSettings, name: str) -> str:
    value = endpoint.options.get(name)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"endpoints.{endpoint.name}.{name}",
                          "is required to simulate PayPal (see payhooks.sim.paypal)")
    return value


def _signing_key(endpoint: EndpointSettings) -> rsa.RSAPrivateKey:
    """``sim_signing_key`` (PEM text, from ``sim_signing_key_file`` via the configuration), or
    ``sim_signing_key_file`` read here when the settings were built by hand."""
    pem = endpoint.options.get("sim_signing_key")
    key_name = f"endpoints.{endpoint.name}.sim_signing_key_file"
    try:
        if not isinstance(pem, str):
            pem = Path(_option(endpoint, "sim_signing_key_file")).read_text(encoding="utf-8")
        return _load_key(pem)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(key_name, f"is not a readable PEM RSA private key ({exc})") from None


@functools.lru_cache(maxsize=8)
def _load_key(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("not an RSA key")
    return key
