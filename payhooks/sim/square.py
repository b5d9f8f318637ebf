"""Simulated Square traffic: Payment and Refund lifecycles, signed by ingest.schemes.square."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from ingest.schemes import square
from payhooks.config import EndpointSettings
from payhooks.sim.base import SignedRequest, SimEvent, token
from schemas.timefmt import from_unix


def lifecycle(rng: random.Random, now: int) -> list[SimEvent]:
    """One Square Payment's events in the order Square emits them.

    Shapes: approve (delayed capture) -> complete -> one or two refunds, approve -> cancel, or a
    declined card. Each refund is ``refund.created`` (PENDING), ``payment.updated`` with the
    payment's running ``refunded_money``, then ``refund.updated`` (COMPLETED). Amounts are integer
    minor units in ``{"amount": 1234, "currency": "USD"}``.
    """
    payment_id = token(rng, 29)
    order_id = token(rng, 29)
    merchant_id = token(rng, 13).upper()
    location_id = token(rng, 13).upper()
    amount = rng.choice([500, 1234, 2599, 4999, 10000, 87650])
    currency = rng.choice(["USD", "USD", "CAD", "GBP", "AUD"])
    created = now - rng.randint(0, 120)
    shape = rng.choices(["completed", "refunded", "canceled", "failed"], [4, 3, 2, 1])[0]
    version = 0

    def money(value: int) -> dict[str, Any]:
        return {"amount": value, "currency": currency}

    def payment(status: str, card_status: str, at: int, **extra: Any) -> dict[str, Any]:
        nonlocal version
        version += 1
        return {
            "id": payment_id, "created_at": from_unix(created), "updated_at": from_unix(at),
            "amount_money": money(amount), "total_money": money(amount),
            "approved_money": money(0 if status == "FAILED" else amount),
            "status": status, "delay_duration": "PT168H", "delay_action": "CANCEL",
            "source_type": "CARD",
            "card_details": {
                "status": card_status, "entry_method": "KEYED", "cvv_status": "CVV_ACCEPTED",
                "avs_status": "AVS_ACCEPTED", "statement_description": "SQ *PAYHOOKS SIM",
                "card": {"card_brand": rng.choice(["VISA", "MASTERCARD", "AMERICAN_EXPRESS"]),
                         "last_4": "1111", "exp_month": 11, "exp_year": 2030,
                         "fingerprint": f"sq-1-{token(rng, 40)}", "card_type": "CREDIT"},
            },
            "location_id": location_id, "order_id": order_id,
            "risk_evaluation": {"created_at": from_unix(created), "risk_level": "NORMAL"},
            "receipt_number": payment_id[:4], "application_details": {
                "square_product": "ECOMMERCE_API", "application_id": "sq0idp-payhooks-sim"},
            "version": version, **extra,
        }

    def refund(refund_id: str, part: int, status: str, at: int, updated: int) -> dict[str, Any]:
        return {"id": refund_id, "status": status, "amount_money": money(part),
                "payment_id": payment_id, "order_id": order_id, "location_id": location_id,
                "reason": "Customer request", "created_at": from_unix(at),
                "updated_at": from_unix(updated)}

    def event(kind: str, at: int, obj_type: str, obj_id: str, obj: dict[str, Any]) -> SimEvent:
        event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        body = {
            "merchant_id": merchant_id, "type": kind, "event_id": event_id,
            "created_at": from_unix(at),
            "data": {"type": obj_type, "id": obj_id, "object": {obj_type: obj}},
        }
        return SimEvent(payment_ref=payment_id, event_id=event_id, kind=kind, event=body)

    if shape == "failed":
        return [event("payment.created", created, "payment", payment_id,
                      payment("FAILED", "FAILED", created))]
    events = [event("payment.created", created, "payment", payment_id,
                    payment("APPROVED", "AUTHORIZED", created))]
    if shape == "canceled":
        events.append(event("payment.updated", created + 45, "payment", payment_id,
                            payment("CANCELED", "VOIDED", created + 45)))
        return events
    completed = created + 20
    events.append(event("payment.updated", completed, "payment", payment_id,
                        payment("COMPLETED", "CAPTURED", completed)))
    if shape == "refunded":
        parts = [amount] if rng.random() < 0.5 else [amount // 2, amount - amount // 2]
        refunded, refund_ids = 0, []
        for number, part in enumerate(parts, start=1):
            at = completed + 60 * number
            refund_id = f"{payment_id}_{token(rng, 40)}"
            refund_ids.append(refund_id)
            refunded += part
            events.append(event("refund.created", at, "refund", refund_id,
                                refund(refund_id, part, "PENDING", at, at)))
            events.append(event("payment.updated", at + 1, "payment", payment_id,
                                payment("COMPLETED", "CAPTURED", at + 1,
                                        refunded_money=money(refunded),
                                        refund_ids=list(refund_ids))))
            events.append(event("refund.updated", at + 30, "refund", refund_id,
                                refund(refund_id, part, "COMPLETED", at, at + 30)))
    return events


def sign(events: Sequence[SimEvent], endpoint: EndpointSettings, now: int) -> SignedRequest:
    """Square sends one event per request, signed over the subscription's URL and the body."""
    [only] = events
    body = orjson.dumps(only.event)
    url = square.notification_url(endpoint)
    return SignedRequest(body, {
        "content-type": "application/json",
        square.HEADER: square.signature(body, endpoint.secrets[0].value, url),
        "user-agent": "Square Connect v2",
    })
