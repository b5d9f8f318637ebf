"""Square webhooks to canonical payment events (amounts are integer minor units already).

Square sends ``{"type", "event_id", "created_at", "data": {"type", "id", "object": {...}}}`` with
the whole Payment, Refund or Dispute in ``data.object.payment`` (``.refund``, ``.dispute``). The
time is the event's ``created_at``; the payment is the envelope's reference (``data.id`` of payment
events, the refund's ``payment_id``, the dispute's ``disputed_payment.payment_id``). Money is
``{"amount": 1234, "currency": "USD"}``: the amount an integer, never a float.

event                       when                       canonical type                amount, scope
--------------------------  -------------------------  ----------------------------  -------------
payment.created / .updated  refunded_money > 0         payment.refunded              refunded_money,
                                                                                     total
payment.created / .updated  status APPROVED            payment.authorized            total_money,
payment.created / .updated  status COMPLETED           payment.captured              total
payment.created / .updated  status CANCELED            payment.canceled              -
payment.created / .updated  status FAILED              payment.authorization_failed  -
refund.created / .updated   status FAILED or REJECTED  payment.refund_failed         - (refund id)
dispute.created             not an INQUIRY_* state     dispute.opened                amount_money,
dispute.state.updated       EVIDENCE_REQUIRED          dispute.opened                operation
  (and .changed)            WON                        dispute.won                   (the dispute
                            LOST or ACCEPTED           dispute.lost                  id)

``total_money`` falls back to ``amount_money`` when absent.

Everything else is None: PENDING payments, PENDING and COMPLETED refunds, inquiries
(``INQUIRY_EVIDENCE_REQUIRED``, ``INQUIRY_PROCESSING``, ``INQUIRY_CLOSED``), ``PROCESSING``
disputes, ``dispute.evidence.*`` and every other type.

Decisions:

- **One source for refunds: the payment's running ``refunded_money``.** Square's PaymentRefund
  ``amount_money`` is that refund alone and its ``payment.updated`` that follows carries the
  payment's "total amount of the payment refunded to date" (Square API reference, Payment and
  PaymentRefund objects). Counting both would double every refund, so refunds are counted from
  ``payment.updated`` as a running total (applied as a maximum, so repeats and reordering are
  harmless), and ``refund.*`` maps only its failures (no amount: a failed refund moves no money).
  A refund that fails after Square counted it in ``refunded_money`` leaves the maximum where it
  was; ``payment.refund_failed`` with the refund id is what tells.
- **A ``payment.updated`` with ``refunded_money`` > 0 is ``payment.refunded``**, whatever else it
  says. Only COMPLETED payments are refunded, and COMPLETED is terminal ("a terminal state
  (COMPLETED, CANCELED, or FAILED)", Payment ``delay_duration``), so such an event cannot also be
  the capture (that came in its own, earlier event) and a refund proves the capture anyway. An
  event is never split in two.
- **``total_money`` is the amount authorised and captured**: it is ``amount_money`` plus the tip,
  what completing the payment charges and what refunds are bounded by (refunds can return a tip).
  ``approved_money`` is not used: Square changes it when it re-authorises (a tip added before
  completion), and an authorised total below the captured one would make a genuine capture
  impossible for the state machine. Square re-reports APPROVED after a re-authorisation; that
  second ``payment.authorized`` is stale for the state machine.
- **Disputes count once per dispute id** (a payment can be disputed more than once, for part of
  its amount). Inquiries move no money and may close without a chargeback, so they map to nothing;
  an inquiry that escalates reaches ``EVIDENCE_REQUIRED`` through ``dispute.state.updated``, which
  opens the dispute then (a repeat for an open dispute is stale). ``ACCEPTED`` is a loss: "Square
  returns the disputed amount to the cardholder" (Disputes API, AcceptDispute).
  ``dispute.state.changed`` is the older name of ``dispute.state.updated``; both are read.

Sources: Square API reference (Payment, PaymentRefund, Dispute, DisputeState objects;
``payment.updated``, ``refund.updated``, ``dispute.created``, ``dispute.state.updated`` webhooks),
the ``squareup`` SDK's event models (``DisputeStateChangedEvent``, ``DisputeStateUpdatedEvent``),
``shared/PSP_NOTES.md`` and ``docs/providers.md`` (refund events carry only their own amount).
"""

from __future__ import annotations

from typing import Any

from consumers.errors import NormalizeError
from consumers.normalize import fields
from consumers.normalize.fields import Mapped
from schemas.envelope import Envelope
from schemas.event import PaymentEvent

PROVIDER = "square"

#: Payment ``status`` -> canonical type (PENDING maps to nothing)
_PAYMENT_STATUS: dict[str, str] = {
    "APPROVED": "payment.authorized",
    "COMPLETED": "payment.captured",
    "CANCELED": "payment.canceled",
    "FAILED": "payment.authorization_failed",
}
#: statuses whose event carries the payment's total (``total_money``, else ``amount_money``)
_WITH_TOTAL = frozenset({"APPROVED", "COMPLETED"})
_PAYMENT_EVENTS = frozenset({"payment.created", "payment.updated"})
_REFUND_EVENTS = frozenset({"refund.created", "refund.updated"})
_REFUND_FAILED = frozenset({"FAILED", "REJECTED"})
_DISPUTE_STATE_EVENTS = frozenset({"dispute.state.updated", "dispute.state.changed"})
#: dispute state after a change -> canonical type (other states map to nothing)
_DISPUTE_STATE: dict[str, str] = {
    "EVIDENCE_REQUIRED": "dispute.opened",  # an inquiry escalated to a chargeback
    "WON": "dispute.won",
    "LOST": "dispute.lost",
    "ACCEPTED": "dispute.lost",
}


def normalize(envelope: Envelope) -> PaymentEvent | None:
    kind = envelope.event_type
    if kind in _PAYMENT_EVENTS:
        family = "payment"
    elif kind in _REFUND_EVENTS:
        family = "refund"
    elif kind == "dispute.created" or kind in _DISPUTE_STATE_EVENTS:
        family = "dispute"
    else:
        return None
    event = fields.json_object(envelope, "Square payload")
    # data.object.<family>: the Payment, Refund or Dispute the event is about
    obj = fields.dig(event, "data", "object", family, where="Square payload")
    if family == "payment":
        mapped = _payment(obj)
    elif family == "refund":
        mapped = _refund(obj)
    else:
        mapped = _dispute(kind, obj)
    if mapped is None:
        return None
    if envelope.payment_ref is None:
        raise NormalizeError(f"Square {kind} names no payment")
    fields.printable_ids(envelope, "Square")
    return fields.payment_event(
        envelope, PROVIDER, canonical=mapped.type, operation_id=mapped.operation_id,
        amount=mapped.amount, amount_scope=mapped.scope, currency=mapped.currency,
        occurred_at=fields.iso_time(event, "created_at", "Square event"),
        # a payment created already COMPLETED (autocomplete) was never APPROVED on its own
        authorization_expected=not (kind == "payment.created"
                                    and mapped.type == "payment.captured"))


def _payment(payment: dict[str, Any]) -> Mapped | None:
    status = payment.get("status")
    if not isinstance(status, str):
        raise NormalizeError("Square payment lacks a string status")
    refunded = _money(payment, "refunded_money")
    if refunded is not None and refunded[0] > 0:
        return Mapped("payment.refunded", *refunded, "total")
    canonical = _PAYMENT_STATUS.get(status)
    if canonical is None:
        return None
    if status not in _WITH_TOTAL:
        return Mapped(canonical)
    total = _money(payment, "total_money") or _money(payment, "amount_money")
    if total is None:
        raise NormalizeError(f"Square {status} payment lacks total_money and amount_money")
    return Mapped(canonical, *total, "total")


def _refund(refund: dict[str, Any]) -> Mapped | None:
    status = refund.get("status")
    if not isinstance(status, str):
        raise NormalizeError("Square refund lacks a string status")
    if status not in _REFUND_FAILED:
        return None  # counted from the payment's refunded_money, never from here
    return Mapped("payment.refund_failed", operation_id=_id(refund, "refund"))


def _dispute(kind: str, dispute: dict[str, Any]) -> Mapped | None:
    state = dispute.get("state")
    if not isinstance(state, str):
        raise NormalizeError("Square dispute lacks a string state")
    if kind == "dispute.created":
        canonical = None if state.startswith("INQUIRY_") else "dispute.opened"
    else:
        canonical = _DISPUTE_STATE.get(state)
    if canonical is None:
        return None
    amount = _money(dispute, "amount_money")
    if amount is None:
        if canonical == "dispute.opened":
            raise NormalizeError("Square dispute lacks amount_money")
        return Mapped(canonical, operation_id=_id(dispute, "dispute"))
    return Mapped(canonical, *amount, "operation", _id(dispute, "dispute"))


def _id(obj: dict[str, Any], what: str) -> str:
    """The object's ``id`` (disputes also carry it as ``dispute_id``)."""
    value = obj.get("id") or obj.get("dispute_id")
    if not isinstance(value, str) or not value:
        raise NormalizeError(f"Square {what} lacks a string id")
    return value


def _money(obj: dict[str, Any], field: str) -> tuple[int, str] | None:
    """``{"amount": 1234, "currency": "USD"}`` as ``(1234, "USD")``; None when absent."""
    node = obj.get(field)
    if node is None:
        return None
    if not isinstance(node, dict):
        raise NormalizeError(f"Square {field} is not a money object")
    where = f"Square {field}"
    # no upper bound on Square amounts, as before the readers were shared
    return (fields.minor(node, "amount", where, at_most=None),
            fields.currency(node, "currency", where))
