"""Simulated Adyen traffic: notification items of one payment, signed by ingest.schemes.adyen."""

from __future__ import annotations

import base64
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from ingest.schemes import adyen
from payhooks.config import EndpointSettings
from payhooks.sim.base import SignedRequest, SimEvent, token

MERCHANT_ACCOUNT = "PayhooksECOM"
CHARGEBACK_REASON = "Other Fraud-Card Absent Environment"


@dataclass(frozen=True, slots=True)
class _Payment:
    """What every notification item of one simulated payment shares."""

    psp_reference: str
    merchant_reference: str
    currency: str
    zone: timezone  # Adyen writes eventDate in the account's time zone
    payment_method: str

    def item(self, event_code: str, at: int, value: int, *, psp_reference: str | None = None,
             success: bool = True, reason: str = "", **extra: Any) -> SimEvent:
        """One item; ``psp_reference`` set means a modification or dispute of this payment."""
        body: dict[str, Any] = {
            "amount": {"currency": self.currency, "value": value},
            "eventCode": event_code,
            "eventDate": datetime.fromtimestamp(at, self.zone).isoformat(),
            "merchantAccountCode": MERCHANT_ACCOUNT,
            "merchantReference": self.merchant_reference,
            "paymentMethod": self.payment_method,
            "pspReference": psp_reference or self.psp_reference,
            "reason": reason,
            "success": "true" if success else "false",
            **extra,
        }
        if psp_reference is not None:
            body["originalReference"] = self.psp_reference
        return SimEvent(payment_ref=self.psp_reference, event_id=adyen.event_id(body),
                        kind=event_code, event=body)


def lifecycle(rng: random.Random, now: int) -> list[SimEvent]:
    """One payment's notification items in the order Adyen sends them.

    Shapes: authorise -> capture (whole, or two partial captures), then maybe a partial or full
    refund; authorise -> cancel; a refused authorisation; authorise -> capture -> chargeback that
    is reversed (won) or charged back a second time (lost). Amounts are minor units; each capture
    and refund carries its own amount and pspReference.
    """
    payment = _Payment(
        psp_reference=_psp_reference(rng),
        merchant_reference=f"order-{token(rng, 10)}",
        currency=rng.choice(["EUR", "USD", "GBP", "SEK"]),
        zone=timezone(timedelta(hours=rng.choice([0, 1, 2]))),
        payment_method=rng.choice(["visa", "mc", "amex"]),
    )
    amount = rng.choice([500, 1299, 2500, 4999, 10000, 123456])
    at = now - rng.randint(60, 300)
    shape = rng.choices(
        ["captured", "partial_captures", "refunded", "canceled", "refused", "disputed"],
        [3, 2, 3, 2, 1, 2],
    )[0]
    if shape == "refused":
        return [payment.item("AUTHORISATION", at, amount, success=False, reason="Refused",
                             additionalData={"refusalReasonRaw": "05 : Do not honor"})]
    auth_code = f"{rng.randint(0, 999999):06d}"
    events = [payment.item(
        "AUTHORISATION", at, amount, reason=f"{auth_code}:1111:03/2030",
        operations=["CANCEL", "CAPTURE", "REFUND"],
        additionalData={"authCode": auth_code, "cardSummary": "1111", "expiryDate": "03/2030"},
    )]
    if shape == "canceled":
        events.append(payment.item("CANCELLATION", at + 40, amount,
                                   psp_reference=_psp_reference(rng)))
        return events
    first = amount // 2 if shape == "partial_captures" else amount
    events.append(payment.item("CAPTURE", at + 20, first, psp_reference=_psp_reference(rng)))
    if shape == "partial_captures":
        events.append(payment.item("CAPTURE", at + 50, amount - first,
                                   psp_reference=_psp_reference(rng)))
    elif shape == "refunded":
        events.append(payment.item("REFUND", at + 60, rng.choice([amount, amount // 3]),
                                   psp_reference=_psp_reference(rng)))
    elif shape == "disputed":
        events.extend(_dispute(rng, payment, amount, at + 90))
    return events


def _dispute(rng: random.Random, payment: _Payment, amount: int, at: int) -> list[SimEvent]:
    """NOTIFICATION_OF_CHARGEBACK -> CHARGEBACK -> CHARGEBACK_REVERSED or SECOND_CHARGEBACK.

    Every item of a dispute has the dispute's own pspReference; originalReference is the payment.
    """
    dispute_psp = _psp_reference(rng)
    defense_ends = datetime.fromtimestamp(at + 14 * 86400, payment.zone).isoformat()
    won = rng.random() < 0.5
    steps = [
        ("NOTIFICATION_OF_CHARGEBACK", "Undefended"),
        ("CHARGEBACK", "Pending"),
        ("CHARGEBACK_REVERSED", "Won") if won else ("SECOND_CHARGEBACK", "Lost"),
    ]
    return [
        payment.item(code, at + 30 * n, amount, psp_reference=dispute_psp,
                     reason=CHARGEBACK_REASON,
                     additionalData={"chargebackReasonCode": "10.4",
                                     "chargebackSchemeCode": "visa",
                                     "defensePeriodEndsAt": defense_ends,
                                     "disputeStatus": status})
        for n, (code, status) in enumerate(steps)
    ]


def sign(events: Sequence[SimEvent], endpoint: EndpointSettings, now: int) -> SignedRequest:
    """One notification carrying every event of ``events`` (Adyen batches), each item signed."""
    body = adyen.notification_body([e.event for e in events], endpoint.secrets[0].value)
    headers = {"content-type": "application/json", "user-agent": "Adyen HttpClient 1.0"}
    if endpoint.basic_auth is not None:
        credentials = f"{endpoint.basic_auth.username}:{endpoint.basic_auth.password.value}"
        headers["authorization"] = f"Basic {base64.b64encode(credentials.encode()).decode()}"
    return SignedRequest(body, headers)


def _psp_reference(rng: random.Random) -> str:
    """Adyen PSP references are 16 upper-case letters and digits."""
    return token(rng, 16).upper()
