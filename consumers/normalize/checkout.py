"""Checkout.com webhook events to canonical payment events, amounts per action.

The payment is ``data.payment_id`` (dispute events, whose ``data.id`` is the dispute), else
``data.id`` (``pay_...``): the envelope's ``payment_ref``, so ``payment_id`` always equals the
record key. Captures and refunds carry their own ``data.action_id`` and the amount of that action
alone (scope "operation"); disputes use the dispute id ``data.id`` (``dsp_...``) as operation.

=======================================  =============================  ========================
type                                     canonical type                 amount, scope, operation
=======================================  =============================  ========================
payment_approved                         payment.authorized             data.amount, total, -
payment_authorization_incremented        payment.authorized             balances.total_authorized,
                                                                        total (None if declined)
payment_declined                         payment.authorization_failed   -
payment_captured                         payment.captured               data.amount, operation,
                                                                        action_id
payment_capture_declined                 payment.capture_failed         -, -, action_id
payment_voided, payment_canceled,
payment_expired                          payment.canceled               -
payment_refunded                         payment.refunded               data.amount, operation,
                                                                        action_id
payment_refund_declined                  payment.refund_failed          -, -, action_id
dispute_received, dispute_evidence_required
                                         dispute.opened                 data.amount if sent,
                                                                        operation, dispute id
dispute_won, dispute_arbitration_won,
dispute_canceled, dispute_resolved       dispute.won                    (same)
dispute_lost, dispute_arbitration_lost,
dispute_accepted, dispute_expired        dispute.lost                   (same)
anything else (pending, evidence          None
submitted, card verification, ...)
=======================================  =============================  ========================

Decisions (sources: checkout.com/docs webhook event types and their examples):

- ``dispute_canceled`` ("canceled by the issuing bank and your account is credited back") and
  ``dispute_resolved`` ("resolved automatically because it had already been refunded") leave the
  merchant with its money: dispute.won. ``dispute_expired`` ("you can no longer respond") and
  ``dispute_accepted`` leave the cardholder with it: dispute.lost.
- ``payment_authorization_incremented``'s ``data.amount`` is the increment; the new authorised
  total is ``data.balances.total_authorized``, applied as a total. A declined increment
  (``approved: false``) changes nothing.
- ``payment_expired`` (an authorisation or pending payment that lapsed) is a cancel, as at the
  other providers; the state machine must treat a cancel that arrives after a capture as a no-op.
- Older dispute examples carry no ``amount``/``currency``: dispute events take them when present.
- Event time is ``created_on``; current events carry ``timestamp`` instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from consumers.errors import NormalizeError
from schemas import money, timefmt
from schemas.envelope import Envelope, EnvelopeError
from schemas.event import PaymentEvent

PROVIDER = "checkout"
#: the largest amount a record carries: a signed 64-bit integer, what every consumer can hold
MAX_MINOR: Final = 2**63 - 1

#: Checkout.com type -> canonical type
_TYPES: Final[dict[str, str]] = {
    "payment_approved": "payment.authorized",
    "payment_authorization_incremented": "payment.authorized",
    "payment_declined": "payment.authorization_failed",
    "payment_captured": "payment.captured",
    "payment_capture_declined": "payment.capture_failed",
    "payment_voided": "payment.canceled",
    "payment_canceled": "payment.canceled",
    "payment_expired": "payment.canceled",
    "payment_refunded": "payment.refunded",
    "payment_refund_declined": "payment.refund_failed",
    "dispute_received": "dispute.opened",
    "dispute_evidence_required": "dispute.opened",
    "dispute_won": "dispute.won",
    "dispute_arbitration_won": "dispute.won",
    "dispute_canceled": "dispute.won",
    "dispute_resolved": "dispute.won",
    "dispute_lost": "dispute.lost",
    "dispute_arbitration_lost": "dispute.lost",
    "dispute_accepted": "dispute.lost",
    "dispute_expired": "dispute.lost",
}
_INCREMENTED = "payment_authorization_incremented"
_COUNTED_ACTIONS: Final = frozenset({"payment.captured", "payment.refunded"})
_DECLINED_ACTIONS: Final = frozenset({"payment.capture_failed", "payment.refund_failed"})
_DISPUTES: Final = frozenset({"dispute.opened", "dispute.won", "dispute.lost"})


def normalize(envelope: Envelope) -> PaymentEvent | None:
    canonical = _TYPES.get(envelope.event_type)
    if canonical is None:
        return None
    if envelope.provider != PROVIDER:
        raise NormalizeError(f"a {envelope.provider!r} envelope reached the {PROVIDER} normaliser")
    event = _object(envelope)
    data = event.get("data")
    if not isinstance(data, dict):
        raise NormalizeError("event has no 'data' object")
    if envelope.event_type == _INCREMENTED and data.get("approved") is False:
        return None  # a declined increment leaves the authorisation as it was
    if not envelope.payment_ref:
        raise NormalizeError(f"{envelope.event_type} names no payment (data.payment_id / data.id)")
    amount: int | None = None
    scope: str | None = None
    operation_id: str | None = None
    currency = _currency(data) if data.get("currency") is not None else None
    if canonical == "payment.authorized":
        amount, scope = _authorized(envelope.event_type, data), "total"
    elif canonical in _COUNTED_ACTIONS:
        operation_id = _text(data, "action_id")
        amount, scope = _minor(data, "amount"), "operation"
    elif canonical in _DECLINED_ACTIONS:  # its id when sent; it was never counted
        operation_id = _optional_text(data, "action_id")
    elif canonical in _DISPUTES:  # older dispute events carry no amount
        operation_id = _text(data, "id")
        if data.get("amount") is not None:
            amount, scope = _minor(data, "amount"), "operation"
    if amount is not None and currency is None:
        raise NormalizeError("data has an amount but no currency")
    return _event(envelope, canonical=canonical, operation_id=operation_id, amount=amount,
                  amount_scope=scope, currency=currency, occurred_at=_occurred_at(event))


def _authorized(event_type: str, data: dict[str, Any]) -> int:
    if event_type != _INCREMENTED:
        return _minor(data, "amount")
    balances = data.get("balances")
    if not isinstance(balances, dict):
        raise NormalizeError("authorization increment lacks data.balances (the new total)")
    return _minor(balances, "total_authorized")


def _object(envelope: Envelope) -> dict[str, Any]:
    try:
        event = envelope.payload_json()
    except EnvelopeError as exc:
        raise NormalizeError(str(exc)) from None
    if not isinstance(event, dict):
        raise NormalizeError("payload is not a JSON object")
    return event


def _text(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value:
        raise NormalizeError(f"data lacks a string {name!r}")
    return value


def _optional_text(obj: dict[str, Any], name: str) -> str | None:
    return _text(obj, name) if obj.get(name) is not None else None


def _minor(obj: dict[str, Any], name: str) -> int:
    value = obj.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise NormalizeError(f"{name} is not an integer of minor units")
    if not 0 <= value <= MAX_MINOR:
        raise NormalizeError(f"{name} is negative or beyond a signed 64-bit integer")
    return value


def _currency(data: dict[str, Any]) -> str:
    value = data.get("currency")
    if not isinstance(value, str):
        raise NormalizeError("data lacks a string 'currency'")
    try:
        return money.normalize_currency(value)
    except money.MoneyError as exc:
        raise NormalizeError(str(exc)) from None


def _occurred_at(event: dict[str, Any]) -> str:
    text = event.get("created_on")
    if text is None:
        text = event.get("timestamp")
    if not isinstance(text, str):
        raise NormalizeError("event lacks a string 'created_on' or 'timestamp'")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise NormalizeError(f"event time {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise NormalizeError(f"event time {text!r} has no UTC offset")
    try:
        return timefmt.to_wire(moment)
    except OverflowError:
        raise NormalizeError(f"event time {text!r} is out of range") from None


def _event(envelope: Envelope, *, canonical: str, operation_id: str | None, amount: int | None,
           amount_scope: str | None, currency: str | None, occurred_at: str) -> PaymentEvent:
    try:
        return PaymentEvent(
            event_id=f"{PROVIDER}:{envelope.event_id}",
            provider=PROVIDER,
            endpoint=envelope.endpoint,
            provider_event_id=envelope.event_id,
            provider_event_type=envelope.event_type,
            type=canonical,
            payment_id=f"{PROVIDER}:{envelope.payment_ref}",
            operation_id=operation_id,
            amount=amount,
            amount_scope=amount_scope,
            currency=currency,
            occurred_at=occurred_at,
            received_at=envelope.received_at,
            delivery_id=envelope.delivery_id,
        )
    except (ValueError, TypeError) as exc:
        raise NormalizeError(str(exc)) from None
