"""Braintree webhook notifications to canonical payment events (amounts: decimal major units).

The envelope's payload is the whole verified form body (``bt_signature``, ``bt_payload``); the
notification is read back with the receiver's own :func:`ingest.schemes.braintree.read_notification`
and :func:`~ingest.schemes.braintree.parse_xml` (base64, then XML with every DOCTYPE and entity
refused), never as JSON. The time is the notification's ``timestamp``; the payment is the
envelope's reference, a transaction id: a refund's ``refunded-transaction-id`` (the sale it
refunds), else the transaction's ``id``; a dispute's or local payment's nested transaction.
Amounts are decimal strings in major units (``"25.00"``), converted exactly with the
transaction's or dispute's ``currency-iso-code`` by :func:`schemas.money.to_minor`.

kind                              subject                  canonical type           amount, scope
--------------------------------  -----------------------  -----------------------  -------------
transaction_settled               a sale                   payment.captured         amount, total
transaction_settled               a refund (credit)        payment.refunded         amount,
                                                                                    operation
                                                                                    (refund id)
transaction_settlement_declined   a sale                   payment.capture_failed   -
transaction_settlement_declined   a refund (credit)        payment.refund_failed    - (refund id)
refund_failed                     a refund                 payment.refund_failed    - (refund id)
local_payment_completed           its transaction          payment.authorized       amount, total
local_payment_funded              its transaction          payment.captured         amount, total
dispute_opened                    chargeback,              dispute.opened           amount-disputed,
dispute_won                         pre-arbitration        dispute.won              operation
dispute_lost / _accepted /                                 dispute.lost             (dispute id)
  _auto_accepted / _expired

Everything else is None: retrieval disputes (below), ``dispute_disputed`` and
``dispute_under_review`` (evidence in progress), local payments that name no transaction
(``local_payment_expired``, ``local_payment_reversed``: no transaction was ever made, or there is
none to name), credits that refund no sale, and the kinds about no payment's state:
``transaction_disbursed``, ``transaction_retried``, ``transaction_reviewed``, ``disbursement*``,
``subscription_*`` (a subscription's charge is a transaction, submitted for settlement, whose
webhook is its ``transaction_settled``), ``check``, account, merchant and payment-method kinds.

Decisions:

- **Braintree sends no authorisation or capture webhooks for cards** (PSP_NOTES, docs/providers.md):
  a card payment's first canonical event is typically its dispute, and an ACH sale's its
  settlement. ``payment.captured`` therefore arrives with no ``payment.authorized`` before it;
  the state machine parks it and, when the window passes, applies it with the authorisation it
  proves marked ``inferred``. Braintree's ``settled`` is money moved for good, so it is the
  capture; the settled amount is the sale's total (a partial settlement is a new transaction with
  its own id, so it is its own payment here).
- **Refunds are Braintree credit transactions**, ``type`` ``credit`` with a
  ``refunded-transaction-id``; each counts once by its own transaction id. A credit that refunds
  no sale (a detached credit) is a payout to a customer, not a payment's refund: None.
- **Retrievals are not disputes** (``kind`` ``retrieval``): a request for information whose
  ``amount-disputed`` is 0 and which moves no money; if the bank escalates, Braintree opens a
  chargeback with its own ``dispute_opened``.
- **Accepted, auto-accepted and expired disputes are lost**: accepting concedes the chargeback,
  and an expired one is (our reading; Braintree documents only "a dispute is expired") a
  chargeback not answered by its reply-by date, which is decided for the cardholder, the money
  staying with them; it ends the dispute either way, and ``dispute_won`` is the only kind that
  returns money. The disputed amount is ``amount-disputed`` (``amount`` in older payloads),
  counted once per dispute id.
- **Local payments** (iDEAL, Bancontact, ...): ``local_payment_completed`` is the customer's
  approval at their bank, an authorisation; ``local_payment_funded`` is the money arriving, the
  capture. Their nested transaction is a summary that may lack ``currency-iso-code`` (as in the
  SDK's samples); an amount without a currency cannot be read, so those events are reported
  without an amount, as GoCardless's are, rather than refused. Full transaction notifications
  (``transaction_*``) always carry the currency, and an amount without one there is poison.

Sources: Braintree developer docs (Webhooks: Transaction, Dispute and Local Payment notification
kinds; Dispute statuses and kinds: Accepted, AutoAccepted, Disputed, Expired, Lost, Open,
UnderReview, Won; chargeback, pre-arbitration, retrieval), the ``braintree`` SDK's
``WebhookNotification.Kind``, ``Dispute.Status`` and ``WebhookTesting`` sample payloads,
``shared/PSP_NOTES.md``, ``docs/providers.md``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from consumers.errors import NormalizeError
from consumers.normalize import fields
from consumers.normalize.fields import Mapped
from ingest.schemes.braintree import UnreadableNotification, parse_xml, read_notification
from schemas.envelope import Envelope
from schemas.event import PaymentEvent

PROVIDER = "braintree"

#: dispute kinds -> canonical type (``dispute_disputed``, ``dispute_under_review``: nothing)
_DISPUTE_KINDS: dict[str, str] = {
    "dispute_opened": "dispute.opened",
    "dispute_won": "dispute.won",
    "dispute_lost": "dispute.lost",
    "dispute_accepted": "dispute.lost",
    "dispute_auto_accepted": "dispute.lost",
    "dispute_expired": "dispute.lost",
}
#: local payment kinds -> canonical type of their transaction
_LOCAL_PAYMENT_KINDS: dict[str, str] = {
    "local_payment_completed": "payment.authorized",
    "local_payment_funded": "payment.captured",
}
_TRANSACTION_KINDS = frozenset({
    "transaction_settled", "transaction_settlement_declined", "refund_failed"})
#: a plain decimal amount in major units, as Braintree writes them ("25.00")
_DECIMAL = re.compile(r"[0-9]{1,18}(?:\.[0-9]{1,4})?")


def normalize(envelope: Envelope) -> PaymentEvent | None:
    kind = envelope.event_type
    if (kind not in _TRANSACTION_KINDS and kind not in _DISPUTE_KINDS
            and kind not in _LOCAL_PAYMENT_KINDS):
        return None
    try:
        notification = read_notification(envelope.payload)
        root = parse_xml(notification.xml)
    except UnreadableNotification as exc:
        raise NormalizeError(f"Braintree {kind}: {exc}") from None
    if notification.kind != kind:
        raise NormalizeError(f"Braintree payload is a {notification.kind!r}, not a {kind}")
    subject = _subject(root)
    if kind in _TRANSACTION_KINDS:
        mapped = _transaction(kind, subject)
    elif kind in _DISPUTE_KINDS:
        mapped = _dispute(kind, subject)
    else:
        mapped = _local_payment(kind, subject)
    if mapped is None:
        return None
    if envelope.payment_ref is None:
        raise NormalizeError(f"Braintree {kind} names no transaction")
    fields.printable_ids(envelope, "Braintree")
    return fields.payment_event(
        envelope, PROVIDER, canonical=mapped.type, operation_id=mapped.operation_id,
        amount=mapped.amount, amount_scope=mapped.scope, currency=mapped.currency,
        occurred_at=fields.wire_time(notification.timestamp, "Braintree timestamp"),
        # Braintree never sends an authorization webhook: a settlement is a payment's first event
        authorization_expected=mapped.type != "payment.captured")


def _transaction(kind: str, transaction: ET.Element) -> Mapped | None:
    if transaction.tag != "transaction":
        raise NormalizeError(f"Braintree {kind} is not about a transaction")
    transaction_id = _required_text(transaction, "id", "transaction")
    refunded_sale = _text(transaction, "refunded-transaction-id")
    is_credit = _text(transaction, "type") == "credit"
    if kind == "refund_failed" or (kind == "transaction_settlement_declined" and is_credit):
        if refunded_sale is None:
            return None  # the failed refund names no sale: there is no payment to note it on
        return Mapped("payment.refund_failed", operation_id=transaction_id)
    if kind == "transaction_settlement_declined":
        return Mapped("payment.capture_failed")
    if is_credit or refunded_sale is not None:
        if refunded_sale is None:
            return None  # a detached credit refunds no sale
        amount, currency = _money(transaction, "transaction")
        return Mapped("payment.refunded", amount, currency, "operation", transaction_id)
    amount, currency = _money(transaction, "transaction")
    return Mapped("payment.captured", amount, currency, "total")


def _dispute(kind: str, dispute: ET.Element) -> Mapped | None:
    if dispute.tag != "dispute":
        raise NormalizeError(f"Braintree {kind} is not about a dispute")
    if _text(dispute, "kind") == "retrieval":
        return None  # a request for information moves no money
    dispute_id = _required_text(dispute, "id", "dispute")
    field = "amount-disputed" if _text(dispute, "amount-disputed") is not None else "amount"
    amount, currency = _money(dispute, "dispute", field)
    return Mapped(_DISPUTE_KINDS[kind], amount, currency, "operation", dispute_id)


def _local_payment(kind: str, local_payment: ET.Element) -> Mapped | None:
    transaction = local_payment.find("transaction")
    if transaction is None:
        return None  # nothing to attach it to
    canonical = _LOCAL_PAYMENT_KINDS[kind]
    if _text(transaction, "amount") is None or _text(transaction, "currency-iso-code") is None:
        return Mapped(canonical)
    amount, currency = _money(transaction, "transaction")
    return Mapped(canonical, amount, currency, "total")


def _subject(root: ET.Element) -> ET.Element:
    """The object the notification is about: the first element of ``subject`` (or of its
    ``api-error-response`` wrapper) other than an error's ``errors``, ``message``, ``params``."""
    container = root.find("subject")
    if container is not None and (wrapped := container.find("api-error-response")) is not None:
        container = wrapped
    for child in () if container is None else container:
        if child.tag not in {"errors", "message", "params"}:
            return child
    raise NormalizeError("Braintree notification has no subject")


def _text(element: ET.Element, name: str) -> str | None:
    value = (element.findtext(name) or "").strip()
    return value or None


def _required_text(element: ET.Element, name: str, what: str) -> str:
    value = _text(element, name)
    if value is None:
        raise NormalizeError(f"Braintree {what} lacks {name}")
    return value


def _money(element: ET.Element, what: str, field: str = "amount") -> tuple[int, str]:
    """The decimal ``field`` and ``currency-iso-code`` of ``element`` as integer minor units."""
    text = _required_text(element, field, what)
    code = _text(element, "currency-iso-code")
    if code is None:
        raise NormalizeError(f"Braintree {what} has an amount but no currency-iso-code")
    if not _DECIMAL.fullmatch(text):
        raise NormalizeError(f"Braintree {what} {field} is not a plain decimal amount")
    currency = fields.currency_code(code, f"Braintree {what} currency-iso-code")
    # no upper bound on Braintree amounts, as before the readers were shared
    return fields.decimal_minor(text, currency, f"Braintree {what} {field}", at_most=None), currency
