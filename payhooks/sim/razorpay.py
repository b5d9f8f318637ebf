"""Simulated Razorpay traffic: payment, refund and dispute lifecycles, signed by
ingest.schemes.razorpay."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import orjson

from ingest.schemes import razorpay
from payhooks.config import EndpointSettings
from payhooks.sim.base import SignedRequest, SimEvent, token


def lifecycle(rng: random.Random, now: int) -> list[SimEvent]:
    """One Razorpay payment's events in the order Razorpay emits them.

    Shapes: authorized -> captured (sometimes a partial refund), authorized -> captured -> dispute
    won or lost, a failed payment, or an authorized payment never captured and refunded in full
    (Razorpay's auto-refund: a cancel). Amounts are integer paise; the payment entity carries the
    running ``amount_refunded``. The event id travels in a header, not in the body.
    """
    account_id = f"acc_{token(rng, 14)}"
    payment_id = f"pay_{token(rng, 14)}"
    order_id = f"order_{token(rng, 14)}"
    amount = rng.choice([49900, 100000, 125050, 250000, 999900])
    card_id = f"card_{token(rng, 14)}"
    created = now - rng.randint(0, 120)
    shape = rng.choices(["captured", "refunded", "disputed", "failed", "auto_refunded"],
                        [4, 3, 1, 1, 1])[0]

    def payment(status: str, *, captured: bool, refunded: int = 0, **extra: Any
                ) -> dict[str, Any]:
        refund_status = None if refunded == 0 else ("full" if refunded == amount else "partial")
        return {
            "id": payment_id, "entity": "payment", "amount": amount, "currency": "INR",
            "status": status, "order_id": order_id, "invoice_id": None, "international": False,
            "method": "card", "amount_refunded": refunded, "refund_status": refund_status,
            "captured": captured, "description": "payhooks simulated order",
            "card_id": card_id, "bank": None, "wallet": None, "vpa": None,
            "email": "customer@example.com", "contact": "+910000000000", "notes": [],
            "fee": 0 if not captured else amount * 2 // 100,
            "tax": 0 if not captured else amount * 2 * 18 // 10000,
            "error_code": None, "error_description": None, "error_source": None,
            "error_step": None, "error_reason": None,
            "acquirer_data": {"auth_code": token(rng, 6).upper()}, "created_at": created,
            **extra,
        }

    def event(kind: str, at: int, **entities: dict[str, Any]) -> SimEvent:
        event_id = token(rng, 14)
        body = {
            "entity": "event", "account_id": account_id, "event": kind,
            "contains": list(entities),
            "payload": {name: {"entity": entity} for name, entity in entities.items()},
            "created_at": at,
        }
        return SimEvent(payment_ref=payment_id, event_id=event_id, kind=kind, event=body)

    def refund(part: int, at: int) -> dict[str, Any]:
        return {
            "id": f"rfnd_{token(rng, 14)}", "entity": "refund", "amount": part, "currency": "INR",
            "payment_id": payment_id, "notes": {}, "receipt": None,
            "acquirer_data": {"arn": None}, "created_at": at, "batch_id": None,
            "status": "processed", "speed_processed": "normal", "speed_requested": "optimum",
        }

    if shape == "failed":
        failed = payment("failed", captured=False, error_code="BAD_REQUEST_ERROR",
                         error_description="Payment failed due to insufficient funds",
                         error_source="customer", error_step="payment_authorization",
                         error_reason="insufficient_funds")
        return [event("payment.failed", created + 5, payment=failed)]
    events = [event("payment.authorized", created + 5,
                    payment=payment("authorized", captured=False))]
    if shape == "auto_refunded":
        at = created + 300  # in reality days later, when the capture window closes
        events.append(event("refund.processed", at, refund=refund(amount, at),
                            payment=payment("refunded", captured=False, refunded=amount)))
        return events
    captured_at = created + 30
    events.append(event("payment.captured", captured_at,
                        payment=payment("captured", captured=True)))
    if shape == "refunded":
        part = rng.choice([amount // 4, amount // 2])
        at = captured_at + 3600
        events.append(event("refund.processed", at, refund=refund(part, at),
                            payment=payment("captured", captured=True, refunded=part)))
    elif shape == "disputed":
        dispute_id = f"disp_{token(rng, 14)}"
        opened = captured_at + 600  # in reality days or weeks later
        outcome = rng.choice(["won", "lost"])

        def dispute(status: str) -> dict[str, Any]:
            return {
                "id": dispute_id, "entity": "dispute", "payment_id": payment_id,
                "amount": amount, "currency": "INR",
                "amount_deducted": amount if status == "lost" else 0,
                "reason_code": "chargeback", "respond_by": opened + 10 * 24 * 3600,
                "status": status, "phase": "chargeback", "created_at": opened,
            }

        events.append(event("payment.dispute.created", opened,
                            payment=payment("captured", captured=True),
                            dispute=dispute("open")))
        events.append(event(f"payment.dispute.{outcome}", opened + 600,
                            payment=payment("captured", captured=True),
                            dispute=dispute(outcome)))
    return events


def sign(events: Sequence[SimEvent], endpoint: EndpointSettings, now: int) -> SignedRequest:
    """Razorpay sends one event per request; its id in ``X-Razorpay-Event-Id``."""
    [only] = events
    body = orjson.dumps(only.event)
    return SignedRequest(body, {
        "content-type": "application/json",
        "x-razorpay-signature": razorpay.signature(body, endpoint.secrets[0].value),
        "x-razorpay-event-id": only.event_id,
        "user-agent": "Razorpay-Webhook/v1",
    })
