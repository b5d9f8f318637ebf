"""GoCardless events to canonical payment events (Direct Debit; events carry no amounts).

The receiver splits GoCardless's ``{"events": [...]}`` batch and publishes each event on its own:
``{"id": "EV...", "created_at", "resource_type", "action", "links": {...}, "details": {...}}``.
The envelope's type is ``{resource_type}.{action}``; the time is the event's ``created_at`` (ISO
8601); the payment is the envelope's reference, ``links.payment`` (``PM...``). GoCardless events
never carry an amount ("you should fetch the resource"), so every canonical event has amount,
currency and scope None: the state machine moves state and leaves the totals as they are.

event                              canonical type                operation id
---------------------------------  ----------------------------  --------------------
payments.created                   payment.authorized            -
payments.customer_approval_denied  payment.canceled              -
payments.confirmed                 payment.captured              -
payments.failed                    payment.capture_failed        -
payments.cancelled                 payment.canceled              -
payments.charged_back              dispute.lost                  -
payments.chargeback_cancelled      dispute.won                   -
refunds.created                    payment.refunded              links.refund (RF...)
refunds.failed / .bounced /        payment.refund_failed         links.refund (RF...)
  .funds_returned

Everything else is None: ``payments.submitted`` and ``.customer_approval_granted`` (on its way),
``.paid_out``, ``.late_failure_settled``, ``.chargeback_settled``, ``.surcharge_fee_*`` (payout
accounting for what already happened), ``.resubmission_requested`` (a retry: its ``confirmed`` or
``failed`` follows), ``refunds.paid`` and ``.refund_settled`` (the created refund arriving),
mandates, payouts, subscriptions and instalment schedules (their payments send their own events),
and every other resource. A refund event that links no payment is None too (see below).

Decisions:

- **A created payment is an authorisation without an amount.** A Direct Debit payment is created
  against a mandate the customer has already authorised; no funds are reserved, but from then on
  GoCardless will collect it unless it is cancelled. Mapping it gives every later event its
  predecessor (no parking) and lets a cancel move ``authorized -> canceled``.
- **``failed`` is a failed collection (``payment.capture_failed``), which moves no state**: a
  failed payment can be retried (automatically when ``details.will_attempt_retry``, or through the
  retry endpoint, ``resubmission_requested``) and then be ``confirmed`` after all; a terminal
  ``failed`` state would make that real collection impossible to record. GoCardless also reports
  *late* failures (a ``failed`` after ``confirmed``: "payments can fail after being confirmed if
  the failure message is sent late by the banks"); it maps the same, and the money it takes back
  is visible only as that ``payment.capture_failed`` after the capture.
- **``customer_approval_denied`` is a cancel**: the customer refused a payment that needed their
  approval; it will never be collected, and from ``authorized`` the state for "never collected"
  is ``canceled`` (``payment.authorization_failed`` would be stale after the authorisation).
- **``charged_back`` is a lost dispute**: the customer's bank has already returned the money under
  the Direct Debit Guarantee (Bacs) or the SEPA refund right, which the merchant cannot contest;
  there is no "opened" step. ``chargeback_cancelled`` (the customer's bank withdrew the
  chargeback, typically after the merchant disputed it with the customer) maps to
  ``dispute.won`` for the record; after the terminal ``dispute_lost`` it is stale for the state
  machine, and the payment needs a human.
- **Refunds come from ``refunds.created``** (``paid`` and ``refund_settled`` follow for the same
  refund; ``failed``, ``bounced`` and ``funds_returned`` undo it), with the refund id as
  operation.
  GoCardless's refund events link the refund and often no payment (its documented example has
  ``"links": {"refund": "RF123"}``): such an event cannot be placed on a payment without fetching
  the refund, which a pure normaliser does not do, so it is None (counted, kept on
  ``webhooks.raw``), never forced onto the wrong payment.

Sources: GoCardless API reference (Events: payment and refund actions and their descriptions;
payment statuses), GoCardless support "Overview of payment statuses", GoCardless's event examples
(``refunds.created`` linking only the refund; ``payments.failed`` with ``will_attempt_retry``),
``shared/PSP_NOTES.md``.
"""

from __future__ import annotations

from consumers.errors import NormalizeError
from consumers.normalize import fields
from schemas.envelope import Envelope
from schemas.event import PaymentEvent

PROVIDER = "gocardless"

#: ``payments`` actions -> canonical type
_PAYMENT_ACTIONS: dict[str, str] = {
    "created": "payment.authorized",
    "customer_approval_denied": "payment.canceled",
    "confirmed": "payment.captured",
    "failed": "payment.capture_failed",
    "cancelled": "payment.canceled",
    "charged_back": "dispute.lost",
    "chargeback_cancelled": "dispute.won",
}
#: ``refunds`` actions -> canonical type (the refund id is the operation)
_REFUND_ACTIONS: dict[str, str] = {
    "created": "payment.refunded",
    "failed": "payment.refund_failed",
    "bounced": "payment.refund_failed",
    "funds_returned": "payment.refund_failed",
}
_RESOURCES: dict[str, dict[str, str]] = {"payments": _PAYMENT_ACTIONS, "refunds": _REFUND_ACTIONS}


def normalize(envelope: Envelope) -> PaymentEvent | None:
    resource_type, _, action = envelope.event_type.partition(".")
    canonical = _RESOURCES.get(resource_type, {}).get(action)
    if canonical is None:
        return None
    event = fields.json_object(envelope, "GoCardless payload")
    links = fields.dig(event, "links", where=f"GoCardless {envelope.event_type}")
    operation_id = None
    if resource_type == "refunds":
        operation_id = fields.text(links, "refund", "GoCardless event links")
        if links.get("payment") is None:
            return None  # the refund names no payment: see the module's decisions
    if envelope.payment_ref is None:
        raise NormalizeError(f"GoCardless {envelope.event_type} links no payment")
    fields.printable_ids(envelope, "GoCardless")
    return fields.payment_event(
        envelope, PROVIDER, canonical=canonical, operation_id=operation_id,
        amount=None, amount_scope=None, currency=None,  # GoCardless events carry no amounts
        occurred_at=fields.iso_time(event, "created_at", "GoCardless event"),
        # a direct debit is never authorized first: its confirmation is its first money event
        authorization_expected=canonical != "payment.captured")
