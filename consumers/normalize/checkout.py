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

from typing import Any, Final

from consumers.errors import NormalizeError
from consumers.normalize import fields
from schemas.envelope import Envelope
from schemas.event import PaymentEvent

PROVIDER = "checkout"

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
    fields.expect_provider(envelope, PROVIDER)
    event = fields.json_object(envelope)
    data = fields.dig(event, "data", where="event")
    if envelope.event_type == _INCREMENTED and data.get("approved") is False:
        return None  # a declined increment leaves the authorisation as it was
    if not envelope.payment_ref:
        raise NormalizeError(f"{envelope.event_type} names no payment (data.payment_id / data.id)")
    amount: int | None = None
    scope: str | None = None
    operation_id: str | None = None
    currency = fields.optional_currency(data, "currency", "data")
    if canonical == "payment.authorized":
        amount, scope = _authorized(envelope.event_type, data), "total"
    elif canonical in _COUNTED_ACTIONS:
        operation_id = fields.text(data, "action_id", "data")
        amount, scope = fields.minor(data, "amount", "data"), "operation"
    elif canonical in _DECLINED_ACTIONS:  # its id when sent; it was never counted
        operation_id = fields.optional_text(data, "action_id", "data")
    elif canonical in _DISPUTES:  # older dispute events carry no amount
        operation_id = fields.text(data, "id", "data")
        if data.get("amount") is not None:
            amount, scope = fields.minor(data, "amount", "data"), "operation"
    if amount is not None and currency is None:
        raise NormalizeError("data has an amount but no currency")
    # current events carry ``timestamp`` instead of ``created_on``
    when = "created_on" if event.get("created_on") is not None else "timestamp"
    return fields.payment_event(envelope, PROVIDER, canonical=canonical,
                                operation_id=operation_id, amount=amount, amount_scope=scope,
                                currency=currency,
                                occurred_at=fields.iso_time(event, when, "event"))


def _authorized(event_type: str, data: dict[str, Any]) -> int:
    if event_type != _INCREMENTED:
        return fields.minor(data, "amount", "data")
    balances = fields.dig(data, "balances", where="authorization increment data")
    return fields.minor(balances, "total_authorized", "data.balances")
