"""Simulated Standard Webhooks traffic: generic payment lifecycles, signed by
ingest.schemes.standard.

Payloads follow the spec's convention ``{"type", "timestamp", "data"}``; ``data`` holds
``payment_id``, ``amount`` (integer minor units), ``currency`` (ISO 4217, upper case) and, for
captures, refunds and disputes, ``operation_id`` (each capture and refund counts once). An endpoint
receiving this traffic sets ``payment_ref_field = "data.payment_id"``.

Signing uses the endpoint's first key: a ``whsec_`` secret signs ``v1``; a ``whpk_`` public key
needs the matching private key in option ``sim_signing_key`` (``whsk_`` + base64 of the 32-byte
Ed25519 seed) and signs ``v1a``. The receiver ignores ``sim_*`` options.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ingest.schemes import standard
from payhooks.config import ConfigError, EndpointSettings
from payhooks.sim.base import SignedRequest, SimEvent, token
from schemas import timefmt

#: option holding the ``whsk_`` private key that signs for a ``whpk_`` ring (simulator only)
SIGNING_KEY_OPTION = "sim_signing_key"


@dataclass(frozen=True, slots=True)
class Step:
    """One event of a generic payment lifecycle, before a provider's framing."""

    kind: str  # payment.authorized, payment.captured, ..., dispute.lost
    at: int  # unix seconds the event occurred
    data: dict[str, Any]


def steps(rng: random.Random, now: int) -> list[Step]:
    """One payment's events in emission order.

    Shapes: captured in full, captured in parts, captured then refunded (fully or partly),
    canceled, declined, and captured then disputed (won or lost).
    """
    payment_id = f"pay_{token(rng, 24)}"
    currency = rng.choice(["EUR", "USD", "GBP", "JPY"])
    amount = rng.choice([500, 1299, 2500, 4999, 10000, 123456])
    created = now - rng.randint(0, 120)
    shape = rng.choices(
        ["captured", "partial_captures", "refunded", "canceled", "declined", "disputed"],
        [3, 2, 3, 2, 1, 1],
    )[0]

    def step(kind: str, offset: int, value: int, **extra: str) -> Step:
        data = {"payment_id": payment_id, "amount": value, "currency": currency, **extra}
        return Step(kind, created + offset, data)

    if shape == "declined":
        return [step("payment.authorization_failed", 0, amount, reason="card_declined")]
    events = [step("payment.authorized", 0, amount)]
    if shape == "canceled":
        return [*events, step("payment.canceled", 30, amount)]
    if shape == "partial_captures":
        first = amount // 2
        second = rng.choice([amount - first, (amount - first) // 2])  # all, or part of the rest
        return [*events,
                step("payment.captured", 20, first, operation_id=f"cap_{token(rng, 16)}"),
                step("payment.captured", 40, second, operation_id=f"cap_{token(rng, 16)}")]
    events.append(step("payment.captured", 20, amount, operation_id=f"cap_{token(rng, 16)}"))
    if shape == "refunded":
        refund = rng.choice([amount, amount // 2])
        events.append(step("payment.refunded", 60, refund, operation_id=f"re_{token(rng, 16)}"))
    elif shape == "disputed":
        dispute = f"dp_{token(rng, 16)}"
        outcome = rng.choice(["dispute.won", "dispute.lost"])
        events += [step("dispute.opened", 3600, amount, operation_id=dispute),
                   step(outcome, 7200, amount, operation_id=dispute)]
    return events


def lifecycle(rng: random.Random, now: int) -> list[SimEvent]:
    """One payment's events as Standard Webhooks messages; the event id is the ``webhook-id``."""
    return [
        SimEvent(
            payment_ref=s.data["payment_id"],
            event_id=f"msg_{token(rng, 27)}",
            kind=s.kind,
            event={"type": s.kind, "timestamp": timefmt.from_unix(s.at), "data": s.data},
        )
        for s in steps(rng, now)
    ]


def sign(events: Sequence[SimEvent], endpoint: EndpointSettings, now: int) -> SignedRequest:
    """One message per request, signed with the endpoint's first key (see the module docstring)."""
    [only] = events
    body = orjson.dumps(only.event)
    return SignedRequest(body, {
        "content-type": "application/json",
        **standard.webhook_headers(only.event_id, now, [_signature(only.event_id, now, body,
                                                                   endpoint)]),
        "user-agent": "payhooks-sim (Standard Webhooks)",
    })


def _signature(msg_id: str, now: int, body: bytes, endpoint: EndpointSettings) -> str:
    first = endpoint.secrets[0].value
    if not first.startswith(standard.PUBLIC_KEY_PREFIX):
        return standard.sign_v1(msg_id, now, body, first)
    key = f"endpoints.{endpoint.name}.{SIGNING_KEY_OPTION}"
    text = endpoint.options.get(SIGNING_KEY_OPTION)
    if not isinstance(text, str):
        raise ConfigError(key, "the first key is a whpk_ public key: set its whsk_ private key "
                               "for the simulator to sign v1a")
    try:
        private_key = standard.private_key(text)
    except ValueError as exc:
        raise ConfigError(key, str(exc)) from None
    if standard.parse_key(standard.public_key_text(private_key)) != standard.parse_key(first):
        raise ConfigError(key, "is not the private key of the endpoint's first whpk_ key")
    return standard.sign_v1a(msg_id, now, body, private_key)
