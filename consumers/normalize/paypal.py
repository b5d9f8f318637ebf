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
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit

from consumers.errors import NormalizeError
from schemas import money, timefmt
from schemas.envelope import Envelope, EnvelopeError
from schemas.event import PaymentEvent

PROVIDER = "paypal"
#: prefix of a payment_id that names a capture, to be resolved to its order by the worker
CAPTURE_ALIAS_PREFIX = f"{PROVIDER}:capture:"
#: the largest amount a record carries: a signed 64-bit integer, what every consumer can hold
MAX_MINOR: Final = 2**63 - 1

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
    if envelope.provider != PROVIDER:
        raise NormalizeError(f"a {envelope.provider!r} envelope reached the {PROVIDER} normaliser")
    event = _object(envelope)
    resource = event.get("resource")
    if not isinstance(resource, dict):
        raise NormalizeError("event has no 'resource' object")
    if canonical == "dispute.won":
        canonical = _outcome(resource)
        if canonical is None:
            return None
    payment_id = _payment_id(envelope, canonical, resource)
    amount: int | None = None
    scope: str | None = None
    operation_id: str | None = None
    currency: str | None = None
    if canonical in _DISPUTES:
        operation_id = _text(resource, "dispute_id")
        if resource.get("dispute_amount") is not None:
            amount, currency = _money(resource, "dispute_amount")
            scope = "operation"
    elif canonical == "payment.authorized":
        (amount, currency), scope = _money(resource, "amount"), "total"
    elif canonical in ("payment.captured", "payment.refunded"):
        operation_id = _text(resource, "id")
        (amount, currency), scope = _money(resource, "amount"), "operation"
    else:  # canceled, capture_failed: no amount; the operation and currency when sent
        operation_id = _text(resource, "id") if canonical == "payment.capture_failed" else None
        if resource.get("amount") is not None:
            currency = _money(resource, "amount")[1]
    return _event(envelope, canonical=canonical, payment_id=payment_id,
                  operation_id=operation_id, amount=amount, amount_scope=scope,
                  currency=currency, occurred_at=_occurred_at(event))


def _payment_id(envelope: Envelope, canonical: str, resource: dict[str, Any]) -> str:
    """The order, or for refunds and disputes that name none, the capture alias."""
    names_a_capture_only = envelope.event_type == _REFUND or canonical in _DISPUTES
    if not names_a_capture_only or _order_id(resource) is not None:
        if not envelope.payment_ref:
            raise NormalizeError(f"{envelope.event_type} names no order")
        return f"{PROVIDER}:{envelope.payment_ref}"
    if envelope.event_type == _REFUND:
        capture_id = _refunded_capture(resource)
    else:
        capture_id = _disputed_capture(resource)
    return f"{CAPTURE_ALIAS_PREFIX}{capture_id}"


def _order_id(resource: dict[str, Any]) -> str | None:
    supplementary = resource.get("supplementary_data")
    related = supplementary.get("related_ids") if isinstance(supplementary, dict) else None
    order_id = related.get("order_id") if isinstance(related, dict) else None
    return order_id if isinstance(order_id, str) and order_id else None


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
        raise NormalizeError(f"resource lacks a string {name!r}")
    return value


def _money(obj: dict[str, Any], name: str) -> tuple[int, str]:
    """PayPal's ``{"currency_code": "EUR", "value": "12.34"}`` at ``name`` in minor units."""
    amount = obj.get(name)
    if not isinstance(amount, dict):
        raise NormalizeError(f"resource lacks a {name!r} money object")
    value, currency = amount.get("value"), amount.get("currency_code")
    if not isinstance(currency, str):
        raise NormalizeError(f"{name}.currency_code is not a string")
    if not isinstance(value, str) or not _VALUE.fullmatch(value):
        raise NormalizeError(f"{name}.value is not a decimal string in major units")
    try:
        code = money.normalize_currency(currency)
        minor = money.to_minor(value, code)
    except money.MoneyError as exc:
        raise NormalizeError(str(exc)) from None
    if minor > MAX_MINOR:
        raise NormalizeError(f"{name} exceeds a signed 64-bit integer of minor units")
    return minor, code


def _occurred_at(event: dict[str, Any]) -> str:
    text = event.get("create_time")
    if not isinstance(text, str):
        raise NormalizeError("event lacks a string 'create_time'")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise NormalizeError(f"create_time {text!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise NormalizeError(f"create_time {text!r} has no UTC offset")
    try:
        return timefmt.to_wire(moment)
    except OverflowError:
        raise NormalizeError(f"create_time {text!r} is out of range") from None


def _event(envelope: Envelope, *, canonical: str, payment_id: str, operation_id: str | None,
           amount: int | None, amount_scope: str | None, currency: str | None,
           occurred_at: str) -> PaymentEvent:
    try:
        return PaymentEvent(
            event_id=f"{PROVIDER}:{envelope.event_id}",
            provider=PROVIDER,
            endpoint=envelope.endpoint,
            provider_event_id=envelope.event_id,
            provider_event_type=envelope.event_type,
            type=canonical,
            payment_id=payment_id,
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
