"""``payhooks sim``: realistic, correctly signed PSP traffic, with duplicates and reordering.

Events are built by pure functions of a seeded random source, then signed at send time with the
same signer module the receiver verifies with.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from ingest.schemes import stripe

PROVIDERS = ("stripe",)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One webhook to send: which payment, the provider event, and whether it is a duplicate."""

    payment_ref: str
    event: dict[str, Any]
    duplicate: bool = False

    @property
    def body(self) -> bytes:
        return orjson.dumps(self.event)


@dataclass(slots=True)
class Summary:
    payments: int = 0
    sent: int = 0
    duplicates: int = 0
    reordered: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def accepted(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    def as_dict(self) -> dict[str, Any]:
        return {
            "payments": self.payments,
            "sent": self.sent,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "reordered": self.reordered,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": dict(self.errors),
            "seconds": round(self.seconds, 3),
            "rate_per_second": round(self.sent / self.seconds, 1) if self.seconds else None,
        }


def stripe_lifecycle(rng: random.Random, now: int) -> list[dict[str, Any]]:
    """One PaymentIntent's events in the order Stripe emits them.

    Shapes: authorize -> capture -> (partial) refund, authorize -> cancel, or a failed payment.
    """
    pi = f"pi_{_token(rng, 24)}"
    charge = f"ch_{_token(rng, 24)}"
    amount = rng.choice([500, 1299, 2500, 4999, 10000, 123456])
    currency = rng.choice(["eur", "usd", "gbp"])
    created = now - rng.randint(0, 120)
    shape = rng.choices(["captured", "refunded", "canceled", "failed"], [4, 3, 2, 1])[0]

    def intent(status: str, **extra: Any) -> dict[str, Any]:
        return {"id": pi, "object": "payment_intent", "amount": amount, "currency": currency,
                "capture_method": "manual", "status": status, "latest_charge": charge, **extra}

    def charge_obj(**extra: Any) -> dict[str, Any]:
        return {"id": charge, "object": "charge", "payment_intent": pi, "amount": amount,
                "currency": currency, **extra}

    if shape == "failed":
        return [_stripe_event(rng, "payment_intent.payment_failed", created,
                              intent("requires_payment_method", amount_received=0))]
    events = [_stripe_event(rng, "payment_intent.amount_capturable_updated", created,
                            intent("requires_capture", amount_capturable=amount,
                                   amount_received=0))]
    if shape == "canceled":
        events.append(_stripe_event(rng, "payment_intent.canceled", created + 30,
                                    intent("canceled", amount_capturable=0, amount_received=0)))
        return events
    events.append(_stripe_event(rng, "payment_intent.succeeded", created + 20,
                                intent("succeeded", amount_capturable=0, amount_received=amount)))
    if shape == "refunded":
        refunded = rng.choice([amount, amount // 2])
        events.append(_stripe_event(rng, "charge.refunded", created + 60,
                                    charge_obj(amount_captured=amount, amount_refunded=refunded,
                                               refunded=refunded == amount)))
    return events


def _stripe_event(rng: random.Random, kind: str, created: int, obj: dict[str, Any]
                  ) -> dict[str, Any]:
    return {
        "id": f"evt_{_token(rng, 24)}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": f"req_{_token(rng, 14)}", "idempotency_key": None},
        "type": kind,
        "data": {"object": obj},
    }


def _token(rng: random.Random, length: int) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(rng.choice(alphabet) for _ in range(length))


def plan(
    provider: str,
    payments: int,
    *,
    duplicates: float = 0.0,
    reorder: float = 0.0,
    seed: int | None = None,
    now: int | None = None,
) -> tuple[list[Delivery], Summary]:
    """The deliveries of ``payments`` lifecycles, in send order.

    ``duplicates``: share of events sent a second time; ``reorder``: share of payments whose events
    are shuffled. Lifecycles of different payments interleave as they would in real traffic.
    """
    if provider not in PROVIDERS:
        raise ValueError(f"provider {provider!r} is not simulated yet; try: {', '.join(PROVIDERS)}")
    rng = random.Random(seed)
    clock = int(time.time()) if now is None else now
    summary = Summary(payments=payments)
    queues: list[list[Delivery]] = []
    for _ in range(payments):
        events = stripe_lifecycle(rng, clock)
        ref = stripe.payment_ref(events[0]) or events[0]["id"]
        deliveries = [Delivery(ref, e) for e in events]
        for original in list(deliveries):
            if rng.random() < duplicates:
                deliveries.insert(rng.randint(deliveries.index(original) + 1, len(deliveries)),
                                  Delivery(ref, original.event, duplicate=True))
                summary.duplicates += 1
        if len(deliveries) > 1 and rng.random() < reorder:
            rng.shuffle(deliveries)
            summary.reordered += 1
        queues.append(deliveries)
    ordered: list[Delivery] = []
    while queues:  # interleave: pick a random payment, send its next event
        queue = rng.choice(queues)
        ordered.append(queue.pop(0))
        if not queue:
            queues.remove(queue)
    return ordered, summary


def signed_request(provider: str, delivery: Delivery, secrets: Sequence[str], now: int
                   ) -> tuple[bytes, dict[str, str]]:
    """Body and headers of ``delivery``, signed as the provider signs them."""
    body = delivery.body
    if provider == "stripe":
        headers = {
            "content-type": "application/json; charset=utf-8",
            "stripe-signature": stripe.signature_header(body, secrets, now),
            "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        return body, headers
    raise ValueError(f"provider {provider!r} is not simulated yet")


async def send(
    url: str,
    provider: str,
    secrets: Sequence[str],
    deliveries: Sequence[Delivery],
    summary: Summary,
    *,
    rate: float | None = None,
    concurrency: int = 8,
    timeout: float = 10.0,
) -> Summary:
    """POST every delivery, ``concurrency`` at a time, at most ``rate`` per second overall.

    Deliveries of one payment go out in their planned order (one payment is never sent
    concurrently with itself), so the planned reordering is what the receiver sees.
    """
    started = time.perf_counter()
    interval = 1.0 / rate if rate else 0.0
    gate = asyncio.Semaphore(concurrency)
    locks: dict[str, asyncio.Lock] = {}
    next_slot = [started]

    async def one(client: httpx.AsyncClient, delivery: Delivery) -> None:
        lock = locks.setdefault(delivery.payment_ref, asyncio.Lock())
        async with lock, gate:
            if interval:
                slot = next_slot[0] = max(next_slot[0] + interval, time.perf_counter())
                await asyncio.sleep(max(0.0, slot - time.perf_counter()))
            body, headers = signed_request(provider, delivery, secrets, int(time.time()))
            try:
                response = await client.post(url, content=body, headers=headers)
                summary.statuses[response.status_code] += 1
            except httpx.HTTPError as exc:
                summary.errors[type(exc).__name__] += 1
            summary.sent += 1

    # tasks are created in plan order and per-payment locks are FIFO: order within a payment holds
    async with httpx.AsyncClient(timeout=timeout) as client, asyncio.TaskGroup() as group:
        for delivery in deliveries:
            group.create_task(one(client, delivery))
    summary.seconds = time.perf_counter() - started
    return summary
