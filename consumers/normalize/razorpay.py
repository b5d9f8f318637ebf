"""Razorpay webhooks to canonical payment events (amounts are integer subunits: paise for INR).

Razorpay sends ``{"entity": "event", "event", "contains": [...], "payload": {<name>: {"entity":
{...}}}, "created_at"}``: the entities the event is about (``payment``, ``refund``, ``dispute``),
each whole. The event id travels in the unsigned ``X-Razorpay-Event-Id`` header and is the
envelope's; the time is the event's ``created_at`` (unix seconds); the payment is the envelope's
reference (the refund's or dispute's ``payment_id``, else ``payload.payment.entity.id``).

event                        canonical type                amount, scope (operation id)
---------------------------  ----------------------------  -------------------------------------
payment.authorized           payment.authorized            payment ``amount``, total
payment.captured             payment.captured              payment ``amount``, total
payment.failed               payment.authorization_failed  -
refund.processed             payment.refunded              payment ``amount_refunded``, total;
                                                           without the payment entity: the
                                                           refund's ``amount``, operation (rfnd_)
refund.processed of a        payment.canceled              -
  payment never captured
refund.failed                payment.refund_failed         - (rfnd_ id)
payment.dispute.created      dispute.opened                dispute ``amount``, operation (disp_)
payment.dispute.won          dispute.won                   dispute ``amount``, operation (disp_)
payment.dispute.lost         dispute.lost                  dispute ``amount``, operation (disp_)
payment.dispute.closed       dispute.won if nothing was    dispute ``amount``, operation (disp_)
                             deducted, else dispute.lost

Everything else is None: ``refund.created`` (the same refund's ``refund.processed`` follows),
``refund.speed_changed``, ``payment.dispute.under_review`` and ``.action_required`` (evidence in
progress), ``order.*`` (its payment sends its own events) and every other type.

Decisions:

- **Refunds are the payment's running ``amount_refunded``**: every refund event embeds the payment
  (``"contains": ["refund", "payment"]``), whose ``amount_refunded`` is the total refunded so far,
  this refund included; applied as a maximum it makes repeats, reorderings and a replayed body
  under a new (unsigned) event id harmless (docs/providers.md). Only a refund event without the
  payment entity falls back to counting the refund alone, once per ``rfnd_`` id.
- **A refund of a payment never captured is a cancel**: Razorpay auto-refunds authorised payments
  that are not captured in time, and "Refunds webhook events are also triggered for auto-refunds
  ... check ``payload.payment.entity.captured`` ... The value is false for an auto-refund"
  (Razorpay docs, Refunds webhook events). The authorisation was released; nothing was captured.
- **Disputes count once per ``disp_`` id.** ``payment.dispute.closed`` ends a dispute without the
  bank's won/lost verdict (a fraud-phase dispute closed after the business answered or refunded);
  the dispute's ``amount_deducted`` "will be 0 unless the status of dispute is updated to lost"
  (Razorpay docs, Disputes entity), so nothing deducted is a win for the payment and anything
  deducted a loss. A refund made to settle it arrives as its own ``refund.processed``.

Sources: Razorpay docs (Payments, Refunds and Disputes webhook events and sample payloads; the
Payment, Refund and Dispute entities; Accept a Dispute), ``shared/PSP_NOTES.md``,
``docs/providers.md``.
"""

from __future__ import annotations

from typing import Any

from consumers.errors import NormalizeError
from consumers.normalize import fields
from consumers.normalize.fields import Mapped
from schemas.envelope import Envelope
from schemas.event import PaymentEvent

PROVIDER = "razorpay"

#: payment events: Razorpay type -> (canonical type, whether the payment's amount is reported)
_PAYMENT_EVENTS: dict[str, tuple[str, bool]] = {
    "payment.authorized": ("payment.authorized", True),
    "payment.captured": ("payment.captured", True),
    "payment.failed": ("payment.authorization_failed", False),
}
#: dispute events -> canonical type (``closed`` is decided by the amount deducted)
_DISPUTE_EVENTS: dict[str, str | None] = {
    "payment.dispute.created": "dispute.opened",
    "payment.dispute.won": "dispute.won",
    "payment.dispute.lost": "dispute.lost",
    "payment.dispute.closed": None,
}
_REFUND_EVENTS = frozenset({"refund.processed", "refund.failed"})


def normalize(envelope: Envelope) -> PaymentEvent | None:
    kind = envelope.event_type
    if kind not in _PAYMENT_EVENTS and kind not in _DISPUTE_EVENTS and kind not in _REFUND_EVENTS:
        return None
    event = fields.json_object(envelope, "Razorpay payload")
    payload = fields.dig(event, "payload", where=f"Razorpay {kind}")
    if kind in _PAYMENT_EVENTS:
        mapped = _payment_event(kind, payload)
    elif kind in _REFUND_EVENTS:
        mapped = _refund_event(kind, payload)
    else:
        mapped = _dispute_event(kind, payload)
    if envelope.payment_ref is None:
        raise NormalizeError(f"Razorpay {kind} names no payment")
    fields.printable_ids(envelope, "Razorpay")
    return fields.payment_event(
        envelope, PROVIDER, canonical=mapped.type, operation_id=mapped.operation_id,
        amount=mapped.amount, amount_scope=mapped.scope, currency=mapped.currency,
        occurred_at=fields.unix_time(event, "created_at", "Razorpay event"))


def _payment_event(kind: str, payload: dict[str, Any]) -> Mapped:
    canonical, with_amount = _PAYMENT_EVENTS[kind]
    payment = _entity(payload, "payment")
    if not with_amount:
        return Mapped(canonical)
    return Mapped(canonical, *_money(payment, "payment", "amount"), "total")


def _refund_event(kind: str, payload: dict[str, Any]) -> Mapped:
    refund = _entity(payload, "refund")
    refund_id = fields.text(refund, "id", "Razorpay refund")
    if kind == "refund.failed":
        return Mapped("payment.refund_failed", operation_id=refund_id)
    payment = _optional_entity(payload, "payment")
    if payment is None:
        return Mapped("payment.refunded", *_money(refund, "refund", "amount"), "operation",
                       refund_id)
    captured = payment.get("captured")
    if not isinstance(captured, bool):
        raise NormalizeError("Razorpay payment.captured is not a boolean")
    if not captured:
        return Mapped("payment.canceled")  # an auto-refund: the authorisation was released
    return Mapped("payment.refunded", *_money(payment, "payment", "amount_refunded"), "total")


def _dispute_event(kind: str, payload: dict[str, Any]) -> Mapped:
    dispute = _entity(payload, "dispute")
    canonical = _DISPUTE_EVENTS[kind]
    if canonical is None:  # closed: won unless money was deducted
        deducted = fields.minor(dispute, "amount_deducted", "Razorpay dispute", at_most=None)
        canonical = "dispute.lost" if deducted > 0 else "dispute.won"
    return Mapped(canonical, *_money(dispute, "dispute", "amount"), "operation",
                   fields.text(dispute, "id", "Razorpay dispute"))


def _entity(payload: dict[str, Any], name: str) -> dict[str, Any]:
    """``payload.<name>.entity``; NormalizeError when absent or not an object."""
    entity = _optional_entity(payload, name)
    if entity is None:
        raise NormalizeError(f"Razorpay payload has no {name}.entity object")
    return entity


def _optional_entity(payload: dict[str, Any], name: str) -> dict[str, Any] | None:
    """``payload.<name>.entity``, None when the event does not contain ``name`` at all."""
    wrapper = payload.get(name)
    entity = wrapper.get("entity") if isinstance(wrapper, dict) else None
    if wrapper is not None and not isinstance(entity, dict):
        raise NormalizeError(f"Razorpay payload {name} has no entity object")
    return entity


def _money(entity: dict[str, Any], what: str, field: str) -> tuple[int, str]:
    """The integer ``field`` of ``entity`` and the entity's ``currency``."""
    where = f"Razorpay {what}"
    # no upper bound on Razorpay amounts, as before the readers were shared
    return (fields.minor(entity, field, where, at_most=None),
            fields.currency(entity, "currency", where))
