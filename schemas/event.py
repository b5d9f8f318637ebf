"""The ``payments.events`` record value: one canonical payment event, amounts in minor units."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Final

import orjson

from schemas import wire

#: the canonical event types of SPEC
EVENT_TYPES: Final = frozenset(
    {
        "payment.authorized",
        "payment.authorization_failed",
        "payment.captured",
        "payment.capture_failed",
        "payment.canceled",
        "payment.refunded",
        "payment.refund_failed",
        "dispute.opened",
        "dispute.won",
        "dispute.lost",
    }
)


#: the largest amount a record may carry: a signed 64-bit integer, what every consumer can hold
MAX_AMOUNT: Final = 2**63 - 1


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    event_id: str  # "{provider}:{provider event id}"
    provider: str
    endpoint: str
    provider_event_id: str
    provider_event_type: str
    type: str  # one of EVENT_TYPES
    payment_id: str  # "{provider}:{payment reference}"; the record key
    operation_id: str | None  # capture / refund id where the provider has one
    amount: int | None  # minor units; None where the provider sends none
    #: how the state machine counts ``amount``: "operation" = this capture/refund/dispute alone
    #: (counted once per operation_id), "total" = the payment's running total for this kind
    #: (applied as a maximum, never summed); None when there is no amount
    amount_scope: str | None
    currency: str | None  # ISO 4217, upper case
    occurred_at: str  # RFC 3339 UTC
    received_at: str
    delivery_id: str
    #: False when the provider reports this capture as the payment's first event (an automatic
    #: capture: Stripe's automatic capture_method, a Braintree settlement, a direct debit): no
    #: authorization event will ever come, so the state machine applies it at once, with the
    #: authorization it proves marked inferred, instead of parking it for the window.
    #: Written to the wire only when False (``payhooks.event.v1`` marks it optional).
    authorization_expected: bool = True

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown canonical event type {self.type!r}")
        if self.amount is not None and (
            not isinstance(self.amount, int) or isinstance(self.amount, bool)
        ):
            raise TypeError("amount must be an integer number of minor units")
        if self.amount is not None and not 0 <= self.amount <= MAX_AMOUNT:
            raise ValueError(f"amount must be 0 .. {MAX_AMOUNT} minor units")
        if (self.amount is None) != (self.amount_scope is None):
            raise ValueError("amount_scope is set exactly when amount is")
        if self.amount_scope not in (None, "operation", "total"):
            raise ValueError(f"unknown amount_scope {self.amount_scope!r}")
        if self.amount_scope == "operation" and not self.operation_id:
            raise ValueError("an operation-scoped amount needs its operation_id")
        if self.currency is not None and not (len(self.currency) == 3 and self.currency.isupper()):
            raise ValueError(f"currency {self.currency!r} is not an upper-case ISO 4217 code")

    def to_json(self) -> bytes:
        return orjson.dumps({"schema": wire.SCHEMA_EVENT_V1, **self.as_dict()})

    def as_dict(self) -> dict[str, Any]:
        # every field is a str, int, bool or None: a flat copy (dataclasses.asdict recurses and
        # deep-copies, and cost ~15% of a worker's CPU per record)
        doc = {name: getattr(self, name) for name in _FIELD_NAMES}
        if self.authorization_expected:
            del doc["authorization_expected"]  # the default: not written
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> PaymentEvent:
        """The inverse of :meth:`as_dict` (a ``schema`` key, if present, is ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in names})


_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(PaymentEvent))
