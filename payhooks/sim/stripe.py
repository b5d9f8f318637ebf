"""Simulated Stripe traffic: PaymentIntent lifecycles, signed by ingest.schemes.stripe."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import orjson

from ingest.schemes import stripe
from payhooks.config import EndpointSettings
from payhooks.sim.base import SignedRequest, SimEvent, token


def lifecycle(rng: random.Random, now: int) -> list[SimEvent]:
    """One PaymentIntent's events in the order Stripe emits them.

    Shapes: authorize -> capture -> (partial) refund, authorize -> cancel, or a failed payment.
    """
    pi = f"pi_{token(rng, 24)}"
    charge = f"ch_{token(rng, 24)}"
    amount = rng.choice([500, 1299, 2500, 4999, 10000, 123456])
    currency = rng.choice(["eur", "usd", "gbp"])
    created = now - rng.randint(0, 120)
    shape = rng.choices(["captured", "refunded", "canceled", "failed"], [4, 3, 2, 1])[0]

    def intent(status: str, **extra: Any) -> dict[str, Any]:
        return {"id": pi, "object": "payment_intent", "amount": amount, "currency": currency,
                "capture_method": "manual", "status": status, "latest_charge": charge, **extra}

    def charge_obj(**extra: Any) -> dict[str, Any]:
        return {"id": charge, "object": "charge", "payment_intent": pi, "amount": amount,
                "currency": currency, **extra}

    def event(kind: str, at: int, obj: dict[str, Any]) -> SimEvent:
        event_id = f"evt_{token(rng, 24)}"
        body = {
            "id": event_id, "object": "event", "api_version": "2024-06-20",
            "created": at, "livemode": False, "pending_webhooks": 1,
            "request": {"id": f"req_{token(rng, 14)}", "idempotency_key": None},
            "type": kind, "data": {"object": obj},
        }
        return SimEvent(payment_ref=pi, event_id=event_id, kind=kind, event=body)

    if shape == "failed":
        return [event("payment_intent.payment_failed", created,
                      intent("requires_payment_method", amount_received=0))]
    events = [event("payment_intent.amount_capturable_updated", created,
                    intent("requires_capture", amount_capturable=amount, amount_received=0))]
    if shape == "canceled":
        events.append(event("payment_intent.canceled", created + 30,
                            intent("canceled", amount_capturable=0, amount_received=0)))
        return events
    events.append(event("payment_intent.succeeded", created + 20,
                        intent("succeeded", amount_capturable=0, amount_received=amount)))
    if shape == "refunded":
        refunded = rng.choice([amount, amount // 2])
        events.append(event("charge.refunded", created + 60,
                            charge_obj(amount_captured=amount, amount_refunded=refunded,
                                       refunded=refunded == amount)))
    return events


def sign(events: Sequence[SimEvent], endpoint: EndpointSettings, now: int) -> SignedRequest:
    """Stripe sends one event per request."""
    [only] = events
    body = orjson.dumps(only.event)
    return SignedRequest(body, {
        "content-type": "application/json; charset=utf-8",
        "stripe-signature": stripe.signature_header(body, [endpoint.secrets[0].value], now),
        "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    })
