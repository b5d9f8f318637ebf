"""Stripe events to canonical payment events: a PaymentIntent's running totals, per-dispute amounts.

The payment is the PaymentIntent (``data.object.id`` on ``payment_intent.*``, else
``data.object.payment_intent``): the envelope's ``payment_ref``, so ``payment_id`` always equals
the record key. Amounts are integer minor units already; currencies are lower case at Stripe and
upper-cased here. Event time is the event's ``created`` (unix seconds).

=====================================  =============================  ==========================
type                                   canonical type                 amount, scope, operation
=====================================  =============================  ==========================
payment_intent.amount_capturable       payment.authorized             amount_capturable, total
_updated
payment_intent.succeeded               payment.captured               amount_received, total
charge.captured                        payment.captured               amount_captured, total
charge.refunded                        payment.refunded               amount_refunded, total
refund.failed; refund.updated and      payment.refund_failed          -, -, refund id
charge.refund.updated with status
failed
payment_intent.canceled,               payment.canceled               -
charge.expired
payment_intent.payment_failed,         payment.authorization_failed   -
charge.failed
charge.dispute.created                 dispute.opened                 amount, operation, dispute id
charge.dispute.closed                  won / warning_closed ->        amount, operation, dispute id
                                       dispute.won; lost ->
                                       dispute.lost; else None
anything else (refund.created,         None
refund.updated, charge.succeeded, ...)
=====================================  =============================  ==========================

Decisions:

- **One source for refund amounts: ``charge.refunded``**, whose ``amount_refunded`` is the
  charge's running total (scope "total", applied as a maximum, so duplicates and reordering are
  harmless). ``refund.created`` / ``refund.updated`` / ``charge.refund.updated`` describe the same
  refunds one by one; counting them too would count every refund twice, so they map to nothing,
  except a refund whose ``status`` is ``failed``, which becomes a payment.refund_failed with the
  refund id and no amount. (A maximum never goes down: when a refund fails after
  ``charge.refunded`` counted it, the state machine must decide what the refund_failed means.)
- ``payment_intent.succeeded`` is the capture for manual and automatic capture alike. With
  automatic capture no ``amount_capturable_updated`` comes first: the event proves both the
  authorisation and the capture of ``amount_received``.
- ``charge.dispute.created`` also fires for inquiries (``warning_needs_response``): they open a
  dispute too, and ``warning_closed`` (the inquiry closed without a chargeback) is dispute.won.
  ``prevented`` (stopped before filing, e.g. Visa RDR) and the appeal states map to nothing.
- ``payment_intent.payment_failed`` is one failed attempt: the PaymentIntent stays usable and can
  still succeed with another payment method, so "failed" is not final for Stripe.
"""

from __future__ import annotations

from typing import Any, Final

from consumers.errors import NormalizeError
from consumers.normalize import fields
from schemas.envelope import Envelope
from schemas.event import PaymentEvent

PROVIDER = "stripe"

#: Stripe type -> (canonical type, data.object field holding the running total, or None)
_TOTALS: Final[dict[str, tuple[str, str | None]]] = {
    "payment_intent.amount_capturable_updated": ("payment.authorized", "amount_capturable"),
    "payment_intent.succeeded": ("payment.captured", "amount_received"),
    "charge.captured": ("payment.captured", "amount_captured"),
    "charge.refunded": ("payment.refunded", "amount_refunded"),  # the one refund amount source
    "payment_intent.canceled": ("payment.canceled", None),
    "charge.expired": ("payment.canceled", None),
    "payment_intent.payment_failed": ("payment.authorization_failed", None),
    "charge.failed": ("payment.authorization_failed", None),
}
_AUTOMATIC: Final = ("automatic", "automatic_async")  # capture_method values (a tuple: the
# payload value may be any JSON, unhashable included)
_REFUND_FAILED: Final = frozenset({"refund.failed", "refund.updated", "charge.refund.updated"})
_DISPUTES: Final = frozenset({"charge.dispute.created", "charge.dispute.closed"})
_OBJ = "data.object"  # where the fields of the object an event is about are read
_DISPUTE_OUTCOMES: Final[dict[str, str]] = {
    "won": "dispute.won", "warning_closed": "dispute.won", "lost": "dispute.lost",
}


def normalize(envelope: Envelope) -> PaymentEvent | None:
    kind = envelope.event_type
    if kind not in _TOTALS and kind not in _REFUND_FAILED and kind not in _DISPUTES:
        return None
    fields.expect_provider(envelope, PROVIDER)
    event = fields.json_object(envelope)
    obj = fields.dig(event, "data", "object", where="payload")
    canonical = _canonical_type(kind, obj)
    if canonical is None:
        return None
    if not envelope.payment_ref:
        raise NormalizeError(f"{kind} names no PaymentIntent")
    amount: int | None = None
    scope: str | None = None
    operation_id: str | None = None
    if kind in _TOTALS:
        field = _TOTALS[kind][1]
        if field is not None:
            amount, scope = fields.minor(obj, field, _OBJ), "total"
    elif canonical == "payment.refund_failed":
        operation_id = fields.text(obj, "id", _OBJ)
    else:  # disputes: this dispute's amount, counted once per dispute id
        amount, scope = fields.minor(obj, "amount", _OBJ), "operation"
        operation_id = fields.text(obj, "id", _OBJ)
    if amount is None:
        currency = fields.optional_currency(obj, "currency", _OBJ)
    else:
        currency = fields.currency(obj, "currency", _OBJ)
    # an automatically captured PaymentIntent never reports an authorization
    automatic = kind == "payment_intent.succeeded" and obj.get("capture_method") in _AUTOMATIC
    return fields.payment_event(envelope, PROVIDER, canonical=canonical,
                                operation_id=operation_id, amount=amount, amount_scope=scope,
                                currency=currency,
                                occurred_at=fields.unix_time(event, "created", "event"),
                                authorization_expected=not automatic)


def _canonical_type(kind: str, obj: dict[str, Any]) -> str | None:
    if kind in _TOTALS:
        return _TOTALS[kind][0]
    if kind in _REFUND_FAILED:
        failed = kind == "refund.failed" or obj.get("status") == "failed"
        return "payment.refund_failed" if failed else None
    if kind == "charge.dispute.created":
        return "dispute.opened"
    status = obj.get("status")  # charge.dispute.closed
    return _DISPUTE_OUTCOMES.get(status) if isinstance(status, str) else None
