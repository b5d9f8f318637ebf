"""Simulated Checkout.com traffic: one payment's webhook events, signed by
ingest.schemes.checkout."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from ingest.schemes import checkout
from payhooks.config import EndpointSettings
from payhooks.sim.base import SignedRequest, SimEvent

API = "https://api.sandbox.checkout.com"
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # Checkout.com ids are base32, lower case


@dataclass(frozen=True, slots=True)
class _Payment:
    """What every event of one simulated payment shares."""

    id: str
    amount: int  # minor units
    currency: str  # upper case
    reference: str

    def event(self, rng: random.Random, kind: str, at: int, data: dict[str, Any]) -> SimEvent:
        event_id = _id(rng, "evt_")
        body = {
            "id": event_id,
            "type": kind,
            "version": "1.0.33",
            "created_on": _timestamp(at),
            "data": data,
            "_links": {"self": {"href": f"{API}/events/{event_id}"},
                       "payment": {"href": f"{API}/payments/{self.id}"}},
        }
        return SimEvent(payment_ref=self.id, event_id=event_id, kind=kind, event=body)

    def action(self, rng: random.Random, at: int, amount: int, **extra: Any) -> dict[str, Any]:
        """``data`` of a payment action (approval, capture, refund, void): its own action_id."""
        return {
            "id": self.id,
            "action_id": _id(rng, "act_"),
            "amount": amount,
            "currency": self.currency,
            "reference": self.reference,
            "processed_on": _timestamp(at),
            "response_code": "10000",
            "response_summary": "Approved",
            **extra,
        }

    def balances(self, *, captured: int = 0, refunded: int = 0, voided: int = 0
                 ) -> dict[str, int]:
        return {
            "total_authorized": self.amount,
            "total_voided": voided,
            "available_to_void": 0 if captured or voided else self.amount,
            "total_captured": captured,
            "available_to_capture": 0 if voided else self.amount - captured,
            "total_refunded": refunded,
            "available_to_refund": captured - refunded,
        }


def lifecycle(rng: random.Random, now: int) -> list[SimEvent]:
    """One payment's events in the order Checkout.com sends them.

    Shapes: approve -> capture (whole, or two partial captures), maybe then a partial refund;
    approve -> void; a declined payment; approve -> capture -> dispute won or lost. Each capture
    and refund has its own ``action_id`` and the amount of that action.
    """
    payment = _Payment(
        id=_id(rng, "pay_"),
        amount=rng.choice([500, 1299, 2500, 4999, 10000, 123456]),
        currency=rng.choice(["EUR", "USD", "GBP"]),
        reference=f"ORD-{rng.randint(1000, 9999)}-{rng.randint(0, 0xFFFF):04X}",
    )
    at = now - rng.randint(60, 300)
    shape = rng.choices(
        ["captured", "partial_captures", "refunded", "voided", "declined", "disputed"],
        [3, 2, 3, 2, 1, 2],
    )[0]
    card = {"type": "card", "id": _id(rng, "src_"), "scheme": "Visa", "last4": "4242",
            "bin": "424242", "expiry_month": 3, "expiry_year": 2030}
    if shape == "declined":
        return [payment.event(rng, "payment_declined", at, payment.action(
            rng, at, payment.amount, approved=False, status="Declined", source=card,
            response_code="20051", response_summary="Insufficient Funds"))]
    events = [payment.event(rng, "payment_approved", at, payment.action(
        rng, at, payment.amount, approved=True, status="Authorized", source=card,
        auth_code=f"{rng.randint(0, 999999):06d}"))]
    if shape == "voided":
        events.append(payment.event(rng, "payment_voided", at + 40, payment.action(
            rng, at + 40, payment.amount, balances=payment.balances(voided=payment.amount))))
        return events
    first = payment.amount // 2 if shape == "partial_captures" else payment.amount
    capture = payment.action(rng, at + 20, first, balances=payment.balances(captured=first))
    events.append(payment.event(rng, "payment_captured", at + 20, capture))
    if shape == "partial_captures":
        events.append(payment.event(rng, "payment_captured", at + 50, payment.action(
            rng, at + 50, payment.amount - first,
            balances=payment.balances(captured=payment.amount))))
    elif shape == "refunded":
        refund = payment.amount // 3 or payment.amount
        events.append(payment.event(rng, "payment_refunded", at + 60, payment.action(
            rng, at + 60, refund,
            balances=payment.balances(captured=payment.amount, refunded=refund))))
    elif shape == "disputed":
        events.extend(_dispute(rng, payment, capture["action_id"], at + 90))
    return events


def _dispute(rng: random.Random, payment: _Payment, capture_action: str, at: int
             ) -> list[SimEvent]:
    """dispute_evidence_required -> dispute_won or dispute_lost; ``data.id`` is the dispute,
    ``data.payment_id`` the payment."""
    dispute_id = _id(rng, "dsp_", 20)

    def data(status: str, when: int) -> dict[str, Any]:
        return {
            "id": dispute_id,
            "category": "fraudulent",
            "status": status,
            "amount": payment.amount,
            "currency": payment.currency,
            "reason_code": "10.4",
            "payment_id": payment.id,
            "payment_action_id": capture_action,
            "payment_reference": payment.reference,
            "payment_method": "VISA",
            "evidence_required_by": _timestamp(at + 14 * 86400),
            "date": _timestamp(when),
        }

    outcome = rng.choice(["won", "lost"])
    return [
        payment.event(rng, "dispute_evidence_required", at, data("evidence_required", at)),
        payment.event(rng, f"dispute_{outcome}", at + 120, data(outcome, at + 120)),
    ]


def sign(events: Sequence[SimEvent], endpoint: EndpointSettings, now: int) -> SignedRequest:
    """Checkout.com sends one event per request."""
    [only] = events
    body = orjson.dumps(only.event)
    headers = {
        "content-type": "application/json",
        "cko-signature": checkout.signature(body, endpoint.secrets[0].value),
    }
    authorization = endpoint.options.get("authorization")
    if isinstance(authorization, str) and authorization:
        headers["authorization"] = authorization
    return SignedRequest(body, headers)


def _id(rng: random.Random, prefix: str, length: int = 26) -> str:
    return prefix + "".join(rng.choice(_ID_ALPHABET) for _ in range(length))


def _timestamp(at: int) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
