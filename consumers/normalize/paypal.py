"""PayPal (Orders v2 / Payments v2, Disputes v1) webhook events to canonical payment events.

The payment is the order (``resource.supplementary_data.related_ids.order_id``, the envelope's
``payment_ref``). Captures and refunds carry their own ``resource.id`` and the amount of that
operation alone (scope "operation"); amounts are decimal strings in major units, converted to
minor units exactly with ``schemas.money.to_minor``.

==========================  ============================  =========================================
event_type                  canonical type                amount, scope, operation
==========================  ============================  =========================================
PAYMENT.AUTHORIZATION       payment.authorized            resource.amount, total, -
.CREATED
PAYMENT.AUTHORIZATION       payment.canceled              -
.VOIDED
PAYMENT.CAPTURE.COMPLETED   payment.captured              resource.amount, operation, capture id
PAYMENT.CAPTURE.DENIED,     payment.capture_failed        -, -, capture id
PAYMENT.CAPTURE.DECLINED
PAYMENT.CAPTURE.REFUNDED    payment.refunded              resource.amount, operation, refund id
CUSTOMER.DISPUTE.CREATED    dispute.opened                dispute_amount if sent, operation,
                                                          dispute_id
CUSTOMER.DISPUTE.RESOLVED   dispute.won / dispute.lost    (same), by dispute_outcome.outcome_code
anything else               None  (CAPTURE.PENDING, CAPTURE.REVERSED, CHECKOUT.ORDER.*, ...)
==========================  ============================  =========================================

**The capture alias.** A refund names no order, only its capture (link ``rel: up`` to
``/v2/payments/captures/{id}``), and a dispute lists its captures
(``disputed_transactions[].seller_transaction_id``). For those events, when the resource names no
order, ``payment_id`` is ``"paypal:capture:{capture id}"`` (the first disputed transaction's, for a
dispute over several) and it differs from the envelope's partition key (the refund id, or the
event id for disputes). The worker must resolve that alias to ``"paypal:{order id}"`` (the order
whose PAYMENT.CAPTURE.COMPLETED had that capture id) before the state machine and before the
record is keyed; until it is resolved the event is not ordered with its payment. A refund or
dispute that names neither an order nor a capture raises NormalizeError.

Decisions (sources: PayPal webhook event names, developer.paypal.com; the Disputes API
``dispute_outcome`` definition):

- outcome codes: RESOLVED_SELLER_FAVOUR, CANCELED_BY_BUYER, DENIED (the claim was denied) and
  RESOLVED_WITH_PAYOUT (PayPal paid out under its protection; the merchant keeps the funds) are
  dispute.won; RESOLVED_BUYER_FAVOUR and ACCEPTED (the merchant accepted the claim) are
  dispute.lost; NONE maps to nothing. A missing or unknown code raises NormalizeError.
- PAYMENT.CAPTURE.REVERSED ("PayPal reverses a payment capture", e.g. after a chargeback) stays
  unmapped: its money is already told by the dispute events, and counting it as a refund too
  would count it twice.
- PAYMENT.AUTHORIZATION.VOIDED after a partial capture releases only the rest of the
  authorisation: the state machine must treat a cancel after a capture as a no-op.
- With intent CAPTURE there is no authorization event: a capture then implies the authorisation.
- Event time is the event's ``create_time``.
"""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import urlsplit

from consumers.errors import NormalizeError
from consumers.normalize import fields
from schemas.envelope import Envelope
from schemas.event import PaymentEvent

PROVIDER = "paypal"
#: payment reference of a capture alias, to be resolved to its order by the worker
_CAPTURE_ALIAS = "capture:"
#: prefix of a payment_id that names a capture
CAPTURE_ALIAS_PREFIX = f"{PROVIDER}:{_CAPTURE_ALIAS}"

_TYPES: Final[dict[str, str]] = {
    "PAYMENT.AUTHORIZATION.CREATED": "payment.authorized",
    "PAYMENT.AUTHORIZATION.VOIDED": "payment.canceled",
    "PAYMENT.CAPTURE.COMPLETED": "payment.captured",
    "PAYMENT.CAPTURE.DENIED": "payment.capture_failed",
    "PAYMENT.CAPTURE.DECLINED": "payment.capture_failed",
    "PAYMENT.CAPTURE.REFUNDED": "payment.refunded",
    "CUSTOMER.DISPUTE.CREATED": "dispute.opened",
    "CUSTOMER.DISPUTE.RESOLVED": "dispute.won",  # or lost: see _OUTCOMES
}
#: dispute_outcome.outcome_code -> canonical type; None = no outcome to tell
_OUTCOMES: Final[dict[str, str | None]] = {
    "RESOLVED_SELLER_FAVOUR": "dispute.won",
    "CANCELED_BY_BUYER": "dispute.won",
    "DENIED": "dispute.won",
    "RESOLVED_WITH_PAYOUT": "dispute.won",
    "RESOLVED_BUYER_FAVOUR": "dispute.lost",
    "ACCEPTED": "dispute.lost",
    "NONE": None,
}
_REFUND = "PAYMENT.CAPTURE.REFUNDED"
_DISPUTES: Final = frozenset({"dispute.opened", "dispute.won", "dispute.lost"})
# PayPal's money value: digits, optionally a fraction (no sign, exponent or spaces)
_VALUE = re.compile(r"[0-9]{1,32}(?:\.[0-9]{1,16})?")


def normalize(envelope: Envelope) -> PaymentEvent | None:
    canonical = _TYPES.get(envelope.event_type)
    if canonical is None:
        return None
    fields.expect_provider(envelope, PROVIDER)
    event = fields.json_object(envelope)
    resource = fields.dig(event, "resource", where="event")
    if canonical == "dispute.won":
        canonical = _outcome(resource)
        if canonical is None:
            return None
    payment_ref = _payment_ref(envelope, canonical, resource)
    amount: int | None = None
    scope: str | None = None
    operation_id: str | None = None
    currency: str | None = None
    if canonical in _DISPUTES:
        operation_id = fields.text(resource, "dispute_id", "resource")
        if resource.get("dispute_amount") is not None:
            amount, currency = _money(resource, "dispute_amount")
            scope = "operation"
    elif canonical == "payment.authorized":
        (amount, currency), scope = _money(resource, "amount"), "total"
    elif canonical in ("payment.captured", "payment.refunded"):
        operation_id = fields.text(resource, "id", "resource")
        (amount, currency), scope = _money(resource, "amount"), "operation"
    else:  # canceled, capture_failed: no amount; the operation and currency when sent
        if canonical == "payment.capture_failed":
            operation_id = fields.text(resource, "id", "resource")
        if resource.get("amount") is not None:
            currency = _money(resource, "amount")[1]
    # an order captured at once (intent CAPTURE) has no authorization: its capture names none
    automatic = canonical == "payment.captured" and _related(resource, "authorization_id") is None
    return fields.payment_event(envelope, PROVIDER, canonical=canonical, payment_ref=payment_ref,
                                operation_id=operation_id, amount=amount, amount_scope=scope,
                                currency=currency,
                                occurred_at=fields.iso_time(event, "create_time", "event"),
                                authorization_expected=not automatic)


def _payment_ref(envelope: Envelope, canonical: str, resource: dict[str, Any]) -> str:
    """The order, or for refunds and disputes that name none, the capture alias."""
    names_a_capture_only = envelope.event_type == _REFUND or canonical in _DISPUTES
    if not names_a_capture_only or _order_id(resource) is not None:
        if not envelope.payment_ref:
            raise NormalizeError(f"{envelope.event_type} names no order")
        return envelope.payment_ref
    if envelope.event_type == _REFUND:
        capture_id = _refunded_capture(resource)
    else:
        capture_id = _disputed_capture(resource)
    return f"{_CAPTURE_ALIAS}{capture_id}"


def _order_id(resource: dict[str, Any]) -> str | None:
    return _related(resource, "order_id")


def _related(resource: dict[str, Any], name: str) -> str | None:
    """``resource.supplementary_data.related_ids.<name>``, when it is a non-empty string."""
    supplementary = resource.get("supplementary_data")
    related = supplementary.get("related_ids") if isinstance(supplementary, dict) else None
    value = related.get(name) if isinstance(related, dict) else None
    return value if isinstance(value, str) and value else None


def _refunded_capture(resource: dict[str, Any]) -> str:
    """The capture a refund links to as ``up``: ``.../v2/payments/captures/{id}``."""
    links = resource.get("links")
    for link in links if isinstance(links, list) else ():
        if not isinstance(link, dict) or link.get("rel") != "up":
            continue
        href = link.get("href")
        try:
            parts = urlsplit(href).path.rstrip("/").split("/") if isinstance(href, str) else []
        except ValueError:  # a malformed URL (bad IPv6 host, ...)
            continue
        if len(parts) >= 2 and parts[-2] == "captures" and parts[-1]:
            return parts[-1]
    raise NormalizeError("refund names neither an order nor its capture (link rel 'up')")


def _disputed_capture(resource: dict[str, Any]) -> str:
    transactions = resource.get("disputed_transactions")
    for transaction in transactions if isinstance(transactions, list) else ():
        capture_id = transaction.get("seller_transaction_id") if isinstance(
            transaction, dict) else None
        if isinstance(capture_id, str) and capture_id:
            return capture_id
    raise NormalizeError("dispute names neither an order nor a disputed_transactions[]"
                         ".seller_transaction_id")


def _outcome(resource: dict[str, Any]) -> str | None:
    outcome = resource.get("dispute_outcome")
    code = outcome.get("outcome_code") if isinstance(outcome, dict) else None
    if not isinstance(code, str) or code not in _OUTCOMES:
        shown = code[:40] if isinstance(code, str) else None
        raise NormalizeError(f"resolved dispute has no known dispute_outcome.outcome_code "
                             f"({shown!r})")
    return _OUTCOMES[code]


def _money(obj: dict[str, Any], name: str) -> tuple[int, str]:
    """PayPal's ``{"currency_code": "EUR", "value": "12.34"}`` at ``name`` in minor units."""
    amount = fields.dig(obj, name, where="resource")
    code = fields.currency(amount, "currency_code", name)
    value = amount.get("value")
    if not isinstance(value, str) or not _VALUE.fullmatch(value):
        raise NormalizeError(f"{name}.value is not a decimal string in major units")
    return fields.decimal_minor(value, code, f"{name}.value"), code
