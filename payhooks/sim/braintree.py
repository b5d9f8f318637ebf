"""Simulated Braintree traffic: settlement, local payment and dispute notifications of one
transaction, signed by ingest.schemes.braintree."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from ingest.schemes import braintree
from payhooks.config import EndpointSettings
from payhooks.sim.base import SignedRequest, SimEvent, token

MERCHANT_ACCOUNT_ID = "payhooks_usd"
_LOWER = "abcdefghijklmnopqrstuvwxyz0123456789"


@dataclass(frozen=True, slots=True)
class _Transaction:
    """The sale every notification of one simulated payment is about."""

    id: str
    amount: str  # Braintree amounts are decimal strings in major units
    currency: str
    order_id: str
    created: int

    def xml(self, status: str, *, instrument: str = "us_bank_account") -> str:
        return f"""<transaction>
      <id>{self.id}</id>
      <status>{status}</status>
      <type>sale</type>
      <currency-iso-code>{self.currency}</currency-iso-code>
      <amount>{self.amount}</amount>
      <merchant-account-id>{MERCHANT_ACCOUNT_ID}</merchant-account-id>
      <order-id>{self.order_id}</order-id>
      <created-at type="datetime">{_datetime(self.created)}</created-at>
      <payment-instrument-type>{instrument}</payment-instrument-type>
      <refunded-transaction-id nil="true"/>
      <tax-amount nil="true"/>
    </transaction>"""


def lifecycle(rng: random.Random, now: int) -> list[SimEvent]:
    """One transaction's notifications in the order Braintree sends them.

    Braintree sends no card authorize or capture webhooks, so the shapes are: an ACH sale that
    settles, or whose settlement is declined; a settled sale that is disputed and then won or lost;
    a local payment (iDEAL, ...) completed and then funded.
    """
    cents = rng.choice([500, 1299, 2500, 4999, 10000, 123456])
    sale = _Transaction(
        id=_id(rng),
        amount=str(Decimal(cents).scaleb(-2)),
        currency=rng.choice(["USD", "EUR", "GBP"]),
        order_id=f"order-{token(rng, 10)}",
        created=now - rng.randint(120, 600),
    )
    shape = rng.choices(["settled", "declined", "disputed", "local_payment"], [3, 1, 2, 2])[0]
    at = sale.created + 60
    if shape == "declined":
        return [_event(sale, "transaction_settlement_declined", at,
                       sale.xml("settlement_declined"))]
    if shape == "local_payment":
        payment_id = f"PAYID-{token(rng, 24).upper()}"
        return [
            _event(sale, "local_payment_completed", at, _local_payment(
                "local-payment", payment_id, sale.xml("settling", instrument="local_payment"),
                f"<payment-method-nonce>{token(rng, 32)}</payment-method-nonce>")),
            _event(sale, "local_payment_funded", at + 90, _local_payment(
                "local-payment-funded", payment_id,
                sale.xml("settled", instrument="local_payment"))),
        ]
    events = [_event(sale, "transaction_settled", at, sale.xml("settled"))]
    if shape == "disputed":
        dispute_id = _id(rng)
        outcome = rng.choice(["won", "lost"])
        events += [
            _event(sale, "dispute_opened", at + 120,
                   _dispute(dispute_id, sale, "open", opened=at + 120, at=at + 120)),
            _event(sale, f"dispute_{outcome}", at + 240,
                   _dispute(dispute_id, sale, outcome, opened=at + 120, at=at + 240)),
        ]
    return events


def sign(events: Sequence[SimEvent], endpoint: EndpointSettings, now: int) -> SignedRequest:
    """Braintree sends one notification per request, signed with each API key's pair."""
    [only] = events
    payload = braintree.encode_payload(only.event["xml"].encode())
    public_key = braintree.public_keys(endpoint)[0]
    body = braintree.form_body(payload, [(public_key, endpoint.secrets[0].value)])
    return SignedRequest(body, {"content-type": "application/x-www-form-urlencoded"})


def _event(sale: _Transaction, kind: str, at: int, subject: str) -> SimEvent:
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<notification>
  <kind>{kind}</kind>
  <timestamp type="datetime">{_datetime(at)}</timestamp>
  <subject>
    {subject}
  </subject>
</notification>
"""
    parsed = braintree.notification(xml.encode())
    return SimEvent(payment_ref=sale.id, event_id=parsed.event_id, kind=kind,
                    event={"kind": kind, "timestamp": parsed.timestamp, "xml": xml})


def _local_payment(tag: str, payment_id: str, transaction: str, extra: str = "") -> str:
    return f"""<{tag}>
      <payment-id>{payment_id}</payment-id>
      <payer-id>{payment_id[-8:]}</payer-id>
      {extra}
      {transaction}
    </{tag}>"""


def _dispute(dispute_id: str, sale: _Transaction, status: str, *, opened: int, at: int) -> str:
    won = f'<date-won type="date">{_date(at)}</date-won>' if status == "won" else ""
    return f"""<dispute>
      <id>{dispute_id}</id>
      <amount>{sale.amount}</amount>
      <amount-disputed>{sale.amount}</amount-disputed>
      <amount-won>{sale.amount if status == "won" else "0.00"}</amount-won>
      <currency-iso-code>{sale.currency}</currency-iso-code>
      <kind>chargeback</kind>
      <reason>fraud</reason>
      <status>{status}</status>
      <merchant-account-id>{MERCHANT_ACCOUNT_ID}</merchant-account-id>
      <created-at type="datetime">{_datetime(opened)}</created-at>
      <updated-at type="datetime">{_datetime(at)}</updated-at>
      <received-date type="date">{_date(opened)}</received-date>
      <date-opened type="date">{_date(opened)}</date-opened>
      {won}
      <transaction>
        <id>{sale.id}</id>
        <amount>{sale.amount}</amount>
        <created-at>{_datetime(sale.created)}</created-at>
        <order-id>{sale.order_id}</order-id>
      </transaction>
    </dispute>"""


def _datetime(at: int) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _date(at: int) -> str:
    return datetime.fromtimestamp(at, UTC).date().isoformat()


def _id(rng: random.Random) -> str:
    """Braintree transaction and dispute ids: 8 lower-case letters and digits."""
    return "".join(rng.choice(_LOWER) for _ in range(8))
