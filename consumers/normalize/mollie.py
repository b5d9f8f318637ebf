"""Mollie next-gen events to canonical payment events (amounts are decimal strings in major units).

Every mapped event is read from its full payload: ``_embedded.entity`` is the snapshot of the
payment, capture, refund or chargeback the event is about (``{"currency": "EUR", "value": "10.00"}``
amounts, converted exactly with :func:`schemas.money.to_minor`). A mapped event without a snapshot
(an endpoint subscribed with "simple" payloads) cannot be made canonical and is poison. The time is
the event's ``createdAt``; the payment is the envelope's reference (``entityId`` of payment events,
the snapshot's ``paymentId`` otherwise), which the snapshot must confirm.

Mollie event           canonical type                  amount (scope: operation id)
---------------------  ------------------------------  --------------------------------------------
payment.authorized     payment.authorized              amount (total)
payment.paid           payment.captured                amountCaptured, else amount (total)
payment.failed         payment.authorization_failed    amount (total)
payment.canceled       payment.canceled when the       amount (total)
payment.expired        snapshot has ``authorizedAt``
                       (a hold released or lapsed),
                       else payment.authorization_failed
                       (nothing was ever authorised)
capture.succeeded      payment.captured                the capture's amount (total: cpt_ id)
capture.failed         payment.capture_failed          the capture's amount (operation: cpt_ id)
refund.refunded        payment.refunded                the refund's amount (operation: re_ id)
refund.failed          payment.refund_failed           the refund's amount (operation: re_ id)
chargeback.received    dispute.opened                  the chargeback's amount (operation: chb_ id)
chargeback.reversed    dispute.won                     the chargeback's amount (operation: chb_ id)

Decisions:

- **Cancels and expiries are told apart by the snapshot's ``authorizedAt``.** Mollie cancels and
  expires payments that were never authorised (the customer canceled or abandoned the checkout, a
  bank transfer never arrived): nothing was authorised, so they are authorization failures, which
  apply at once to a new payment. With ``authorizedAt`` the hold was released (canceled) or lapsed
  uncaptured (expired): a cancel of that authorisation. (A cancel that claims an authorisation
  the payment never had would make the state machine infer one.)
- **A capture's amount is the payment's captured total**: Mollie allows one capture per payment,
  so ``capture.succeeded`` and the ``payment.paid`` that follows (``amountCaptured``) report the
  same running total, as maxima, and count once in any order. (As an operation, the capture would
  be added to the total ``payment.paid`` reported when it came second: counted twice.)
- The payment events' amount is the payment's: on ``payment.paid`` what was captured
  (``amountCaptured``: after a partial capture Mollie releases the rest and the payment is paid).

Not mapped (None): ``payment.pending``, ``refund.queued``, ``.pending``, ``.processing`` (a refund
on its way), ``refund.canceled`` (a refund withdrawn before it was processed changes nothing),
``payment-link.*`` (its payment sends its own events) and every other type. Mollie sends no
"chargeback lost": a received chargeback has already taken the money, and stays open unless
reversed. The amounts of failures and cancels are what was attempted or released; they move no
total.

Sources: docs.mollie.com reference pages "Webhooks for the Payments / Refunds / Captures /
Chargebacks API" (event lists and snapshot shapes), "Handling payment status" (expired: the customer
abandoned the payment), "Release payment authorization" (canceled without captures, paid after a
partial capture) and the Split Authorization and Capture guide (an expired authorisation releases
the hold; one capture per payment).
"""

from __future__ import annotations

from typing import Any

from consumers.errors import NormalizeError
from consumers.normalize import fields
from schemas.envelope import Envelope
from schemas.event import PaymentEvent

PROVIDER = "mollie"

#: payment events: Mollie type -> canonical type (cancels and expiries: see _payment_type)
_PAYMENT_EVENTS: dict[str, str] = {
    "payment.authorized": "payment.authorized",
    "payment.paid": "payment.captured",
    "payment.failed": "payment.authorization_failed",
    "payment.expired": "payment.authorization_failed",  # payment.canceled when it was authorised
    "payment.canceled": "payment.authorization_failed",  # payment.canceled when it was authorised
}
#: payment events that release an authorisation, when there was one
_RELEASES = frozenset({"payment.canceled", "payment.expired"})
#: events of a payment's captures, refunds and chargebacks, each with its own id
_OPERATION_EVENTS: dict[str, str] = {
    "capture.succeeded": "payment.captured",
    "capture.failed": "payment.capture_failed",
    "refund.refunded": "payment.refunded",
    "refund.failed": "payment.refund_failed",
    "chargeback.received": "dispute.opened",
    "chargeback.reversed": "dispute.won",
}


def normalize(envelope: Envelope) -> PaymentEvent | None:
    kind = envelope.event_type
    if kind not in _PAYMENT_EVENTS and kind not in _OPERATION_EVENTS:
        return None
    event = fields.json_object(envelope, "Mollie payload")
    embedded = event.get("_embedded")
    entity = embedded.get("entity") if isinstance(embedded, dict) else None
    if not isinstance(entity, dict):
        raise NormalizeError(f"Mollie {kind} has no _embedded.entity snapshot "
                             "(subscribe the webhook with full payloads)")
    if envelope.payment_ref is None:
        raise NormalizeError(f"Mollie {kind} names no payment")
    if kind in _PAYMENT_EVENTS:
        canonical, operation_id = _payment_type(kind, entity), None
        _expect(entity, "id", envelope.payment_ref)
        captured = kind == "payment.paid" and entity.get("amountCaptured") is not None
        field, scope = ("amountCaptured" if captured else "amount"), "total"
    else:
        canonical = _OPERATION_EVENTS[kind]
        operation_id = fields.text(entity, "id", "Mollie snapshot")
        _expect(entity, "paymentId", envelope.payment_ref)
        # one capture per payment: its amount is the captured total (see the module docstring)
        field, scope = "amount", "total" if kind == "capture.succeeded" else "operation"
    amount, currency = _money(entity, field)
    return fields.payment_event(
        envelope, PROVIDER, canonical=canonical, operation_id=operation_id, amount=amount,
        amount_scope=scope, currency=currency,
        occurred_at=fields.iso_time(event, "createdAt", "Mollie event"),
        # a payment paid without ever being authorized (iDEAL, cards with automatic capture)
        # reports no authorization; one with authorizedAt had its payment.authorized
        authorization_expected=not (kind == "payment.paid"
                                     and entity.get("authorizedAt") is None))


def _payment_type(kind: str, payment: dict[str, Any]) -> str:
    """The canonical type of a payment event: a released authorisation is a cancel."""
    if kind in _RELEASES and payment.get("authorizedAt") is not None:
        return "payment.canceled"
    return _PAYMENT_EVENTS[kind]


def _expect(entity: dict[str, Any], name: str, payment_ref: str) -> None:
    """The snapshot must be about the payment the envelope (and so the partition key) names."""
    if entity.get(name) != payment_ref:
        raise NormalizeError(f"Mollie snapshot {name} does not name the event's payment")


def _money(entity: dict[str, Any], name: str) -> tuple[int, str]:
    """``{"currency": "EUR", "value": "10.00"}`` as ``(1000, "EUR")``, exactly."""
    node = fields.dig(entity, name, where="Mollie snapshot")
    value, currency = node.get("value"), node.get("currency")
    if not isinstance(value, str) or not isinstance(currency, str):
        raise NormalizeError(f"Mollie {name} is not a decimal string value with a currency")
    code = fields.currency_code(currency, f"Mollie {name}.currency")
    # no upper bound on Mollie amounts, as before the readers were shared
    return fields.decimal_minor(value, code, f"Mollie {name}.value", at_most=None), code
