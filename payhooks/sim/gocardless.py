"""Simulated GoCardless traffic: Direct Debit payment lifecycles, batched and signed by
ingest.schemes.gocardless."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from typing import Any

import orjson

from ingest.schemes import gocardless
from payhooks.config import EndpointSettings
from payhooks.sim.base import SignedRequest, SimEvent, token
from schemas.timefmt import from_unix

#: action -> (origin, cause, description) as GoCardless describes each payment event
_DETAILS: dict[str, tuple[str, str, str]] = {
    "created": ("api", "payment_created", "Payment created via the API."),
    "submitted": ("gocardless", "payment_submitted",
                  "Payment submitted to the banks. As a result, it can no longer be cancelled."),
    "confirmed": ("gocardless", "payment_confirmed",
                  "Enough time has passed since the payment was submitted for the banks to return "
                  "an error, so this payment is now confirmed."),
    "paid_out": ("gocardless", "payment_paid_out",
                 "The payment has been paid out by GoCardless."),
    "failed": ("bank", "insufficient_funds",
               "The customer's account had insufficient funds to make this payment."),
    "cancelled": ("api", "payment_cancelled", "The payment was cancelled."),
    "charged_back": ("bank", "payment_charged_back",
                     "The customer asked their bank to refund this payment."),
}


def _gc_id(rng: random.Random, prefix: str) -> str:
    """A GoCardless id: two-letter prefix and twelve upper-case alphanumerics (``PM000ABC123``)."""
    return prefix + token(rng, 12).upper()


def lifecycle(rng: random.Random, now: int) -> list[SimEvent]:
    """One Direct Debit payment's events in the order GoCardless emits them.

    Shapes: created -> submitted -> confirmed -> paid_out (sometimes then charged_back),
    created -> submitted -> failed, or created -> cancelled. Events carry no amounts: the amount is
    on the payment resource, which GoCardless expects you to fetch.
    """
    payment_id = _gc_id(rng, "PM")
    mandate_id = _gc_id(rng, "MD")
    creditor_id = _gc_id(rng, "CR")
    payout_id = _gc_id(rng, "PO")
    scheme = rng.choice(["bacs", "sepa_core", "ach", "becs"])
    created = now - rng.randint(0, 120)
    shape = rng.choices(["paid_out", "charged_back", "failed", "cancelled"], [5, 1, 2, 2])[0]
    order_ref = f"order-{token(rng, 8)}"

    def event(action: str, at: int) -> SimEvent:
        event_id = _gc_id(rng, "EV")
        origin, cause, description = _DETAILS[action]
        details: dict[str, Any] = {"origin": origin, "cause": cause, "description": description}
        if origin == "bank":
            details |= {"scheme": scheme, "reason_code": "ARUDD-0" if scheme == "bacs" else "AM04",
                        "will_attempt_retry": False}
        links = {"payment": payment_id, "mandate": mandate_id, "creditor": creditor_id}
        if action == "paid_out":
            links["payout"] = payout_id
        body = {
            "id": event_id, "created_at": from_unix(at), "resource_type": "payments",
            "action": action, "links": links, "details": details, "metadata": {},
            "resource_metadata": {"order_ref": order_ref},
        }
        return SimEvent(payment_ref=payment_id, event_id=event_id,
                        kind=f"payments.{action}", event=body)

    events = [event("created", created)]
    if shape == "cancelled":
        events.append(event("cancelled", created + 90))
        return events
    events.append(event("submitted", created + 60))
    if shape == "failed":
        events.append(event("failed", created + 180))
        return events
    events.append(event("confirmed", created + 120))
    events.append(event("paid_out", created + 240))
    if shape == "charged_back":
        events.append(event("charged_back", created + 600))
    return events


def sign(events: Sequence[SimEvent], endpoint: EndpointSettings, now: int) -> SignedRequest:
    """All ``events`` in one ``{"events": [...]}`` batch, as GoCardless delivers them.

    The webhook id derives from the events, so a re-sent batch keeps its id as a retry does.
    """
    digest = hashlib.sha256("|".join(e.event_id for e in events).encode()).hexdigest()
    body = orjson.dumps({
        "events": [e.event for e in events],
        "meta": {"webhook_id": "WB" + digest[:12].upper()},
    })
    return SignedRequest(body, {
        "content-type": "application/json",
        "webhook-signature": gocardless.signature(body, endpoint.secrets[0].value),
        "origin": "https://api.gocardless.com",
        "user-agent": "gocardless-webhook-service/1.1",
    })
