"""Readers for provider payload fields that every normaliser shares; each raises NormalizeError
naming the field.

Messages name the field (``where`` is the path of the object read, ``name`` the field in it) and
never echo the value: a payload may carry card numbers or secrets in the wrong place.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

from consumers.errors import NormalizeError
from schemas import money, timefmt
from schemas.envelope import Envelope, EnvelopeError
from schemas.event import PaymentEvent

#: the largest amount a record carries: a signed 64-bit integer, what every consumer can hold
MAX_MINOR: Final = 2**63 - 1


class Mapped(NamedTuple):
    """What a provider event maps to: the canonical type and, where it has them, its amount,
    currency, amount scope and operation id."""

    type: str
    amount: int | None = None
    currency: str | None = None
    scope: str | None = None
    operation_id: str | None = None


def expect_provider(envelope: Envelope, provider: str) -> None:
    """A normaliser only reads its own provider's envelopes."""
    if envelope.provider != provider:
        raise NormalizeError(f"a {envelope.provider!r} envelope reached the {provider} normaliser")


def printable_ids(envelope: Envelope, label: str) -> None:
    """The event id and payment reference are printable text (no line breaks or controls)."""
    if not ((envelope.payment_ref or "").isprintable() and envelope.event_id.isprintable()):
        raise NormalizeError(f"{label} event or payment id is not printable text")


def json_object(envelope: Envelope, label: str = "payload") -> dict[str, Any]:
    """The envelope's payload, which must be a JSON object."""
    try:
        document = envelope.payload_json()
    except EnvelopeError as exc:
        raise NormalizeError(str(exc)) from None
    if not isinstance(document, dict):
        raise NormalizeError(f"{label} is not a JSON object")
    return document


def dig(obj: dict[str, Any], *names: str, where: str) -> dict[str, Any]:
    """The object at ``obj[names[0]][names[1]]...``; NormalizeError when any step is no object."""
    node: Any = obj
    for name in names:
        node = node.get(name) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        raise NormalizeError(f"{where} has no {'.'.join(names)} object")
    return node


def text(obj: dict[str, Any], name: str, where: str) -> str:
    """A required non-empty string."""
    value = obj.get(name)
    if not isinstance(value, str) or not value:
        raise NormalizeError(f"{where} lacks a string {name!r}")
    return value


def optional_text(obj: dict[str, Any], name: str, where: str) -> str | None:
    """A non-empty string, or None when the field is absent or null."""
    return None if obj.get(name) is None else text(obj, name, where)


def minor(obj: dict[str, Any], name: str, where: str, *, at_most: int | None = MAX_MINOR) -> int:
    """An integer amount in minor units, 0 .. ``at_most`` (None: no upper bound)."""
    value = obj.get(name)
    if isinstance(value, float):
        raise NormalizeError(f"{where}.{name} is a float: send integer minor units")
    if not isinstance(value, int) or isinstance(value, bool):
        raise NormalizeError(f"{where}.{name} is not an integer of minor units")
    return _in_range(value, f"{where}.{name}", at_most)


def currency(obj: dict[str, Any], name: str, where: str) -> str:
    """A required ISO 4217 code, upper-cased."""
    value = obj.get(name)
    if not isinstance(value, str):
        raise NormalizeError(f"{where} lacks a string {name!r}")
    return currency_code(value, f"{where}.{name}")


def optional_currency(obj: dict[str, Any], name: str, where: str) -> str | None:
    """An ISO 4217 code, or None when the field is absent or null."""
    return None if obj.get(name) is None else currency(obj, name, where)


def currency_code(value: str, label: str) -> str:
    """``value`` as an upper-case ISO 4217 code."""
    try:
        return money.normalize_currency(value)
    except money.MoneyError:
        raise NormalizeError(f"{label} is not an ISO 4217 code") from None


def decimal_minor(value: str, code: str, label: str, *, at_most: int | None = MAX_MINOR) -> int:
    """A decimal string in major units (``"12.34"``) as exact minor units of ``code``."""
    try:
        amount = money.to_minor(value, code)
    except money.MoneyError:
        raise NormalizeError(f"{label} is not an exact decimal amount of {code}") from None
    return _in_range(amount, label, at_most)


def _in_range(amount: int, label: str, at_most: int | None) -> int:
    if amount < 0:
        raise NormalizeError(f"{label} is negative")
    if at_most is not None and amount > at_most:
        raise NormalizeError(f"{label} exceeds a signed 64-bit integer of minor units")
    return amount


def unix_time(obj: dict[str, Any], name: str, where: str) -> str:
    """Integer unix seconds as an RFC 3339 UTC time."""
    value = obj.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise NormalizeError(f"{where} lacks an integer {name!r} time")
    try:
        return timefmt.from_unix(value)
    except (ValueError, OverflowError, OSError):
        raise NormalizeError(f"{where}.{name} is not a representable unix time") from None


def iso_time(obj: dict[str, Any], name: str, where: str) -> str:
    """An ISO 8601 / RFC 3339 time with a zone as an RFC 3339 UTC time."""
    value = obj.get(name)
    if not isinstance(value, str):
        raise NormalizeError(f"{where} lacks a string {name!r} time")
    return wire_time(value, f"{where}.{name}")


def wire_time(value: str, label: str) -> str:
    """An ISO 8601 time with a zone as an RFC 3339 UTC time."""
    try:
        return timefmt.to_wire(timefmt.parse(value))
    except (ValueError, OverflowError):
        raise NormalizeError(f"{label} is not an ISO 8601 time with a zone") from None


def payment_event(envelope: Envelope, provider: str, *, canonical: str, operation_id: str | None,
                  amount: int | None, amount_scope: str | None, currency: str | None,
                  occurred_at: str, payment_ref: str | None = None,
                  authorization_expected: bool = True) -> PaymentEvent:
    """The canonical event: the envelope's common fields plus what the provider's payload said.

    ``payment_ref`` defaults to the envelope's (the record key's); PayPal's capture alias and the
    canonical payload, which may name it in the body, pass their own.
    """
    try:
        return PaymentEvent(
            event_id=f"{provider}:{envelope.event_id}",
            provider=provider,
            endpoint=envelope.endpoint,
            provider_event_id=envelope.event_id,
            provider_event_type=envelope.event_type,
            type=canonical,
            payment_id=f"{provider}:{envelope.payment_ref if payment_ref is None else payment_ref}",
            operation_id=operation_id,
            amount=amount,
            amount_scope=amount_scope,
            currency=currency,
            occurred_at=occurred_at,
            received_at=envelope.received_at,
            delivery_id=envelope.delivery_id,
            authorization_expected=authorization_expected,
        )
    except (ValueError, TypeError) as exc:  # a canonical value refused the provider's data
        raise NormalizeError(str(exc)) from None
