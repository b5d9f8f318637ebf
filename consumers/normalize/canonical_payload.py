"""The canonical payload convention of generic senders (``standard``, ``hmac``) and its reader.

Generic senders' payloads are not ours to define, so only events that follow this convention map:

- the event type, as the endpoint's scheme extracted it (Standard Webhooks: the body's ``type``;
  ``hmac``: the configured ``event_type_header`` or ``event_type_field``), is one of the canonical
  types (``payment.authorized`` ... ``dispute.lost``, :data:`schemas.event.EVENT_TYPES`). Any other
  type, ``""`` included, maps to nothing (None: counted and kept on ``webhooks.raw``) and the body
  is not even read;
- the body is a JSON object; ``data``, when present, is an object holding:

  ``payment_id``    the payment (string, or integer). It must equal the envelope's payment reference
                    when the endpoint extracts one (``payment_ref_field = "data.payment_id"``,
                    recommended: it is what keeps a payment's events on one partition); without
                    one, ``data.payment_id`` names the payment. Neither is poison.
  ``amount``        integer minor units (``1050`` for EUR 10.50), not negative; absent or null when
                    the event has none. Floats, strings and booleans are poison.
  ``currency``      ISO 4217 code (upper-cased); required with an amount.
  ``operation_id``  the capture, refund or dispute id (string, or integer), when there is one.
  ``amount_scope``  ``"operation"`` (this capture/refund/dispute alone, counted once per
                    ``operation_id``) or ``"total"`` (the payment's running total of that kind,
                    applied as a maximum). Default: ``"operation"`` with an ``operation_id``, else
                    ``"total"``. Keep one scope per kind for a payment: a total after an operation
                    of the same money counts it twice.
  ``occurred_at``   when it happened (see below).

- the time is the first present of ``data.occurred_at``, the top-level ``timestamp`` (the
  Standard Webhooks convention) and ``created_at``: ISO 8601 with a zone, or unix seconds (a JSON
  number or a string of digits). A present but unreadable time is poison; with none of them the
  envelope's ``received_at`` is used.

The event id is ``"{provider}:{envelope event id}"`` (``webhook-id``, the configured id, or the
``sha256:`` body digest) and the payment id ``"{provider}:{payment}"``. Amounts of failures and
cancels are whatever the sender put there; they move no total.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from consumers.errors import NormalizeError
from consumers.normalize import fields
from schemas import timefmt
from schemas.envelope import Envelope
from schemas.event import EVENT_TYPES, PaymentEvent

#: where the time of an event is looked for, in order: (container, field)
_TIME_FIELDS = (("data", "occurred_at"), (None, "timestamp"), (None, "created_at"))
_SCOPES = frozenset({"operation", "total"})


def normalize(envelope: Envelope, provider: str) -> PaymentEvent | None:
    """The canonical event of a ``provider`` envelope that follows the convention, else None."""
    if envelope.event_type not in EVENT_TYPES:
        return None
    fields.expect_provider(envelope, provider)
    doc = fields.json_object(envelope)
    data = doc.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise NormalizeError("data is not a JSON object")
    amount = None
    if data.get("amount") is not None:  # no upper bound, as before the readers were shared
        amount = fields.minor(data, "amount", "data", at_most=None)
    currency = fields.optional_currency(data, "currency", "data")
    if amount is not None and currency is None:
        raise NormalizeError("data.amount has no data.currency")
    operation_id = _identifier(data, "operation_id")
    return fields.payment_event(
        envelope, provider, canonical=envelope.event_type, payment_ref=_payment(envelope, data),
        operation_id=operation_id, amount=amount,
        amount_scope=None if amount is None else _scope(data, operation_id), currency=currency,
        occurred_at=_occurred_at(doc, data, envelope.received_at))


def _payment(envelope: Envelope, data: dict[str, Any]) -> str:
    """The payment reference: the envelope's (the partition key's), confirmed by the body."""
    named = _identifier(data, "payment_id")
    if envelope.payment_ref is not None and named is not None and named != envelope.payment_ref:
        raise NormalizeError("data.payment_id differs from the envelope's payment reference")
    reference = envelope.payment_ref or named
    if reference is None:
        raise NormalizeError(f"{envelope.event_type} names no payment (data.payment_id)")
    return reference


def _identifier(data: dict[str, Any], name: str) -> str | None:
    """A non-empty string, or an integer as text (as the schemes read references); else poison."""
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value:
        return value
    raise NormalizeError(f"data.{name} is not a non-empty string")


def _scope(data: dict[str, Any], operation_id: str | None) -> str:
    scope = data.get("amount_scope")
    if scope is None:
        return "operation" if operation_id else "total"
    if scope not in _SCOPES:
        raise NormalizeError("data.amount_scope is neither 'operation' nor 'total'")
    if scope == "operation" and operation_id is None:
        raise NormalizeError("data.amount_scope 'operation' needs data.operation_id")
    return str(scope)


def _occurred_at(doc: dict[str, Any], data: dict[str, Any], received_at: str) -> str:
    for container, name in _TIME_FIELDS:
        value = (data if container else doc).get(name)
        if value is not None:
            label = f"{container}.{name}" if container else name
            return _moment(value, label)
    return received_at


def _moment(value: Any, label: str) -> str:
    """An ISO 8601 time with a zone, or unix seconds, on the wire; else poison."""
    try:
        if isinstance(value, str) and value.isascii() and value.isdigit():
            value = int(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return timefmt.to_wire(datetime.fromtimestamp(value, UTC))
        if isinstance(value, str):
            return timefmt.to_wire(timefmt.parse(value))
    except (ValueError, OverflowError, OSError) as exc:  # NaN and infinity raise ValueError
        raise NormalizeError(f"{label} is not a readable time ({exc})") from None
    raise NormalizeError(f"{label} is neither an ISO 8601 time nor unix seconds")
