"""Simulated Mollie next-gen webhook traffic: payment and refund events with full payloads,
signed by ingest.schemes.mollie."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from ingest.schemes import mollie
from payhooks.config import EndpointSettings
from payhooks.sim.base import SignedRequest, SimEvent, token

API = "https://api.mollie.com/v2"
#: decimals Mollie expects in ``amount.value`` per currency (ISO 4217 exponent)
_DECIMALS = {"EUR": 2, "GBP": 2, "USD": 2, "CHF": 2, "JPY": 0}


def decimal_amount(minor: int, currency: str) -> str:
    """Mollie's ``amount.value``: a decimal string in major units (``1234, EUR`` -> ``"12.34"``)."""
    decimals = _DECIMALS[currency]
    if decimals == 0:
        return str(minor)
    whole, fraction = divmod(minor, 10**decimals)
    return f"{whole}.{fraction:0{decimals}d}"


def _stamp(seconds: int) -> str:
    """Mollie's resource timestamps: ``2024-03-20T09:13:37+00:00``."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def lifecycle(rng: random.Random, now: int) -> list[SimEvent]:
    """One Mollie payment's next-gen events in the order Mollie emits them.

    Shapes: pending -> paid (sometimes refunded, fully or in part), authorized -> paid (a captured
    pay-later or manual-capture card payment), canceled, expired, or failed. Every event has the
    full payload: ``_embedded.entity`` is the resource snapshot, with decimal-string amounts.
    """
    payment_id = f"tr_{token(rng, 10)}"
    profile_id = f"pfl_{token(rng, 10)}"
    currency = rng.choice(["EUR", "EUR", "EUR", "GBP", "CHF", "JPY"])
    minor = rng.choice([995, 1250, 2495, 4999, 12000]) if currency != "JPY" else rng.choice(
        [500, 1200, 9800])
    created = now - rng.randint(0, 120)
    shape = rng.choices(["paid", "refunded", "authorized", "canceled", "expired", "failed"],
                        [4, 3, 2, 1, 1, 1])[0]
    method = "creditcard" if shape == "authorized" else rng.choice(["ideal", "creditcard",
                                                                      "bancontact"])

    def money(value: int) -> dict[str, str]:
        return {"value": decimal_amount(value, currency), "currency": currency}

    def payment(status: str, **extra: Any) -> dict[str, Any]:
        return {
            "resource": "payment", "id": payment_id, "mode": "test", "createdAt": _stamp(created),
            "amount": money(minor), "description": f"Order {payment_id[-6:]}", "method": method,
            "metadata": {"order_id": payment_id[-6:]}, "status": status,
            "profileId": profile_id, "sequenceType": "oneoff",
            "redirectUrl": "https://webshop.example.org/order/return",
            **extra,
            "_links": {"self": {"href": f"{API}/payments/{payment_id}",
                                "type": "application/hal+json"}},
        }

    def event(kind: str, at: int, entity: dict[str, Any]) -> SimEvent:
        event_id = f"event_{token(rng, 21)}"
        body = {
            "resource": "event", "id": event_id, "type": kind, "entityId": entity["id"],
            "createdAt": datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "_embedded": {"entity": entity},
            "_links": {
                "self": {"href": f"{API}/events/{event_id}", "type": "application/hal+json"},
                "documentation": {"href": "https://docs.mollie.com/guides/webhooks",
                                  "type": "text/html"},
            },
        }
        return SimEvent(payment_ref=payment_id, event_id=event_id, kind=kind, event=body)

    if shape in {"failed", "canceled", "expired"}:
        at = created + {"failed": 40, "canceled": 60, "expired": 900}[shape]
        return [event(f"payment.{shape}", at, payment(shape, **{f"{shape}At": _stamp(at)}))]
    events = []
    if shape == "authorized":
        authorized = created + 20
        events.append(event("payment.authorized", authorized,
                            payment("authorized", authorizedAt=_stamp(authorized),
                                    amountCaptured=money(0))))
        paid_at = authorized + 60
    else:
        events.append(event("payment.pending", created + 10, payment("pending")))
        paid_at = created + 40
    events.append(event("payment.paid", paid_at, payment(
        "paid", paidAt=_stamp(paid_at), amountCaptured=money(minor),
        amountRefunded=money(0), amountRemaining=money(minor), settlementAmount=money(minor))))
    if shape == "refunded":
        part = minor if rng.random() < 0.5 else minor // 2
        refund_id = f"re_{token(rng, 10)}"
        requested = paid_at + 120

        def refund(status: str) -> dict[str, Any]:
            return {
                "resource": "refund", "id": refund_id, "mode": "test", "amount": money(part),
                "status": status, "description": "Customer request", "metadata": None,
                "paymentId": payment_id, "createdAt": _stamp(requested),
                "settlementAmount": {"value": "-" + decimal_amount(part, currency),
                                     "currency": currency},
                "_links": {
                    "self": {"href": f"{API}/payments/{payment_id}/refunds/{refund_id}",
                             "type": "application/hal+json"},
                    "payment": {"href": f"{API}/payments/{payment_id}",
                                "type": "application/hal+json"},
                },
            }

        events.append(event("refund.queued", requested, refund("queued")))
        events.append(event("refund.pending", requested + 60, refund("pending")))
        events.append(event("refund.refunded", requested + 3600, refund("refunded")))
    return events


def sign(events: Sequence[SimEvent], endpoint: EndpointSettings, now: int) -> SignedRequest:
    """Mollie sends one event per request, ``X-Mollie-Signature: sha256=<hex>``."""
    [only] = events
    body = orjson.dumps(only.event)
    return SignedRequest(body, {
        "content-type": "application/json",
        "x-mollie-signature": mollie.signature(body, endpoint.secrets[0].value),
        "user-agent": "Mollie HTTP client/1.0",
    })
