"""Stripe events to canonical payment events (amounts are already integer minor units)."""

from __future__ import annotations

from typing import Any

from consumers.errors import NormalizeError
from schemas import timefmt
from schemas.envelope import Envelope, EnvelopeError
from schemas.event import PaymentEvent

# Stripe event type -> (canonical type, field of data.object holding the amount)
_MAPPING: dict[str, tuple[str, str | None]] = {
    "payment_intent.amount_capturable_updated": ("payment.authorized", "amount_capturable"),
    "payment_intent.succeeded": ("payment.captured", "amount_received"),
    "charge.captured": ("payment.captured", "amount_captured"),
    "charge.refunded": ("payment.refunded", "amount_refunded"),  # a running total
    "payment_intent.canceled": ("payment.canceled", None),
    "charge.expired": ("payment.canceled", None),
    "payment_intent.payment_failed": ("payment.authorization_failed", None),
    "charge.failed": ("payment.authorization_failed", None),
    "charge.dispute.created": ("dispute.opened", "amount"),
}


def normalize(envelope: Envelope) -> PaymentEvent | None:
    try:
        event = envelope.payload_json()
    except EnvelopeError as exc:
        raise NormalizeError(str(exc)) from None
    obj = _data_object(event)
    kind = _canonical_type(envelope.event_type, obj)
    if kind is None:
        return None
    canonical, amount_field = kind
    if envelope.payment_ref is None:
        raise NormalizeError(f"{envelope.event_type} names no PaymentIntent")
    created = event.get("created")
    if not isinstance(created, int):
        raise NormalizeError("event lacks an integer 'created' time")
    amount = obj.get(amount_field) if amount_field else None
    if amount is not None and (not isinstance(amount, int) or isinstance(amount, bool)):
        raise NormalizeError(f"data.object.{amount_field} is not an integer")
    currency = obj.get("currency")
    if currency is not None and not isinstance(currency, str):
        raise NormalizeError("data.object.currency is not a string")
    return PaymentEvent(
        event_id=f"stripe:{envelope.event_id}",
        provider="stripe",
        endpoint=envelope.endpoint,
        provider_event_id=envelope.event_id,
        provider_event_type=envelope.event_type,
        type=canonical,
        payment_id=f"stripe:{envelope.payment_ref}",
        operation_id=None,
        amount=amount,
        amount_scope=None if amount is None else "total",  # Stripe sends running totals
        currency=currency.upper() if currency else None,
        occurred_at=timefmt.from_unix(created),
        received_at=envelope.received_at,
        delivery_id=envelope.delivery_id,
    )


def _data_object(event: Any) -> dict[str, Any]:
    if not isinstance(event, dict):
        raise NormalizeError("payload is not a JSON object")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        raise NormalizeError("payload has no data.object")
    return obj


def _canonical_type(event_type: str, obj: dict[str, Any]) -> tuple[str, str | None] | None:
    if event_type == "charge.dispute.closed":
        status = obj.get("status")
        if status == "won":
            return ("dispute.won", "amount")
        if status == "lost":
            return ("dispute.lost", "amount")
        return None
    return _MAPPING.get(event_type)
