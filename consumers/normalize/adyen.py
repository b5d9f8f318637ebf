"""Adyen notification items to canonical payment events, amounts per operation.

Each envelope holds one ``NotificationRequestItem`` (the receiver splits batches). The payment is
``originalReference``, else ``pspReference`` (the envelope's ``payment_ref``, so ``payment_id``
always equals the record key). Captures, refunds and disputes carry their own ``pspReference``,
which is the ``operation_id``; their ``amount`` is that operation alone (scope "operation").

=====================================  =============================  ==========================
eventCode (success)                    canonical type                 amount, scope, operation
=====================================  =============================  ==========================
AUTHORISATION (true)                   payment.authorized             authorised, total, -
AUTHORISATION (false)                  payment.authorization_failed   -
AUTHORISATION_ADJUSTMENT (true)        payment.authorized             new authorised total, total
CAPTURE (true)                         payment.captured               capture, operation, psp
CAPTURE (false), CAPTURE_FAILED        payment.capture_failed         -, -, the capture's psp
CANCELLATION, TECHNICAL_CANCEL (true)  payment.canceled               -
EXPIRE (true)                          payment.canceled               -
CANCEL_OR_REFUND (true)                by ``modification.action``: ``cancel`` -> payment.canceled,
                                       ``refund`` -> payment.refunded (operation, psp)
CANCEL_OR_REFUND (false)               ``refund`` -> payment.refund_failed (psp), else None
REFUND (true)                          payment.refunded               refund, operation, psp
REFUND (false), REFUND_FAILED          payment.refund_failed          -, -, the refund's psp
NOTIFICATION_OF_CHARGEBACK, CHARGEBACK dispute.opened                 dispute, operation, psp
CHARGEBACK_REVERSED, PREARBITRATION_WON,
SCHEME_ARBITRATION_WON                 dispute.won                    dispute, operation, psp
SECOND_CHARGEBACK, PREARBITRATION_LOST,
SCHEME_ARBITRATION_LOST                dispute.lost                   dispute, operation, psp
anything else (and a failed            None
CANCELLATION/EXPIRE/ADJUSTMENT)
=====================================  =============================  ==========================

Decisions (sources: Adyen's Webhooks OpenAPI spec ``Adyen/adyen-openapi`` json/Webhooks-v1.json,
docs.adyen.com "Cancel or refund", "Currency codes", "CAPTURE_FAILED and REFUND_FAILED reasons"):

- ``CANCEL_OR_REFUND``: Adyen decides; ``additionalData["modification.action"]`` says what it did
  (``cancel`` or ``refund``; read the same way by Saleor's and commercetools' Adyen integrations).
  An item without it cannot be told apart and raises NormalizeError (to the DLQ, not guessed).
- ``EXPIRE`` is "the remaining uncaptured amount expired": for an uncaptured payment that is a
  cancel; after a partial capture only the rest is released, so the state machine must treat a
  ``payment.canceled`` that arrives after a capture as a no-op.
- ``CAPTURE_FAILED`` / ``REFUND_FAILED`` come after a successful CAPTURE / REFUND, which the scheme
  later rejected: their ``operation_id`` is the failed operation's pspReference, so the state
  machine can take that operation back out. Failure events carry no amount.
- ``CHARGEBACK_REVERSED`` is not final (a SECOND_CHARGEBACK can follow); pre-arbitration and scheme
  arbitration outcomes are won/lost as their names say. Every dispute item carries the dispute's
  own pspReference, so opened/won/lost of one dispute share one ``operation_id``.
- ``REFUNDED_REVERSED`` stays unmapped: its references are not documented in a form we could
  verify (third-party fixtures show ``originalReference`` naming the refund, not the payment).
- Amounts are Adyen's minor units, which differ from ISO 4217 for CLP, ISK (2 at Adyen, 0 in ISO),
  CVE and IDR (0 at Adyen, 2 in ISO); they are converted to ISO minor units exactly (an amount
  with a fraction of an ISO unit raises NormalizeError rather than being rounded).
- ``success`` is Adyen's string ``"true"``/``"false"``; a JSON boolean is read the same way.
"""

from __future__ import annotations

from typing import Any, Final

from consumers.errors import NormalizeError
from consumers.normalize import fields
from schemas import money
from schemas.envelope import Envelope
from schemas.event import PaymentEvent

PROVIDER = "adyen"

#: minor-unit exponents where Adyen differs from ISO 4217 (docs.adyen.com currency codes)
ADYEN_EXPONENTS: Final[dict[str, int]] = {"CLP": 2, "ISK": 2, "CVE": 0, "IDR": 0}

#: eventCode -> (type when success is true, type when false); None = no canonical type
_BY_SUCCESS: Final[dict[str, tuple[str | None, str | None]]] = {
    "AUTHORISATION": ("payment.authorized", "payment.authorization_failed"),
    "AUTHORISATION_ADJUSTMENT": ("payment.authorized", None),
    "CAPTURE": ("payment.captured", "payment.capture_failed"),
    "CAPTURE_FAILED": ("payment.capture_failed", "payment.capture_failed"),
    "CANCELLATION": ("payment.canceled", None),
    "TECHNICAL_CANCEL": ("payment.canceled", None),
    "EXPIRE": ("payment.canceled", None),
    "REFUND": ("payment.refunded", "payment.refund_failed"),
    "REFUND_FAILED": ("payment.refund_failed", "payment.refund_failed"),
    "NOTIFICATION_OF_CHARGEBACK": ("dispute.opened", "dispute.opened"),
    "CHARGEBACK": ("dispute.opened", "dispute.opened"),
    "CHARGEBACK_REVERSED": ("dispute.won", "dispute.won"),
    "PREARBITRATION_WON": ("dispute.won", "dispute.won"),
    "SCHEME_ARBITRATION_WON": ("dispute.won", "dispute.won"),
    "SECOND_CHARGEBACK": ("dispute.lost", "dispute.lost"),
    "PREARBITRATION_LOST": ("dispute.lost", "dispute.lost"),
    "SCHEME_ARBITRATION_LOST": ("dispute.lost", "dispute.lost"),
}
_CANCEL_OR_REFUND = "CANCEL_OR_REFUND"
#: canonical type -> how its amount counts: "total", "operation", or absent (no amount)
_SCOPES: Final[dict[str, str]] = {
    "payment.authorized": "total",
    "payment.captured": "operation",
    "payment.refunded": "operation",
    "dispute.opened": "operation",
    "dispute.won": "operation",
    "dispute.lost": "operation",
}
#: canonical types that name an operation (their own pspReference) even without an amount
_OPERATIONS: Final = frozenset({"payment.capture_failed", "payment.refund_failed",
                                *(t for t, s in _SCOPES.items() if s == "operation")})


def normalize(envelope: Envelope) -> PaymentEvent | None:
    code = envelope.event_type
    if code not in _BY_SUCCESS and code != _CANCEL_OR_REFUND:
        return None
    fields.expect_provider(envelope, PROVIDER)
    item = fields.json_object(envelope, "NotificationRequestItem payload")
    canonical = _canonical_type(code, _success(item), item)
    if canonical is None:
        return None
    if not envelope.payment_ref:
        raise NormalizeError(f"{code} item names no payment (no pspReference)")
    psp_reference = fields.text(item, "pspReference", "item")
    scope = _SCOPES.get(canonical)
    amount, currency = _amount(item, required=scope is not None)
    return fields.payment_event(
        envelope,
        PROVIDER,
        canonical=canonical,
        operation_id=psp_reference if canonical in _OPERATIONS else None,
        amount=amount if scope is not None else None,
        amount_scope=scope,
        currency=currency,
        occurred_at=fields.iso_time(item, "eventDate", "item"),
    )


def _canonical_type(code: str, success: bool, item: dict[str, Any]) -> str | None:
    if code != _CANCEL_OR_REFUND:
        when_true, when_false = _BY_SUCCESS[code]
        return when_true if success else when_false
    additional = item.get("additionalData")
    action = additional.get("modification.action") if isinstance(additional, dict) else None
    if action == "refund":
        return "payment.refunded" if success else "payment.refund_failed"
    if action == "cancel":
        return "payment.canceled" if success else None
    if not success:
        return None  # nothing happened, whichever it would have been
    raise NormalizeError("CANCEL_OR_REFUND item lacks additionalData.modification.action "
                         "(cancel or refund): cannot tell which one Adyen did")


def _success(item: dict[str, Any]) -> bool:
    value = item.get("success")
    if value in ("true", True):
        return True
    if value in ("false", False):
        return False
    raise NormalizeError("item 'success' is neither \"true\" nor \"false\"")


def _amount(item: dict[str, Any], *, required: bool) -> tuple[int | None, str | None]:
    """``amount`` in ISO 4217 minor units and its currency; (None, None) when absent and not
    ``required``."""
    if item.get("amount") is None and not required:
        return None, None
    amount = fields.dig(item, "amount", where="item")
    # Adyen's minor units: bounded only after shifting them to ISO 4217's, below
    value = fields.minor(amount, "value", "amount", at_most=None)
    code = fields.currency(amount, "currency", "amount")
    shift = ADYEN_EXPONENTS.get(code, money.exponent(code)) - money.exponent(code)
    if shift < 0:
        minor = value * 10**-shift
    else:
        minor, rest = divmod(value, 10**shift)
        if rest:
            raise NormalizeError(f"amount {value} (Adyen minor units) is not whole {code} "
                                 "minor units")
    if minor > fields.MAX_MINOR:
        raise NormalizeError("amount exceeds a signed 64-bit integer of minor units")
    return minor, code
