"""``payhooks sim``: realistic, correctly signed PSP traffic, with duplicates and reordering.

Each provider has a module here (``payhooks.sim.stripe``, ...) that builds one payment's events as
pure functions of a seeded random source, and signs a request with the same signer module the
receiver verifies with (``ingest.schemes.<provider>``). This module plans and sends the traffic.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
import stamina

from payhooks.config import EndpointSettings
from payhooks.sim.base import ProviderSim, SignedRequest, SimEvent

#: providers with a simulator module (``payhooks.sim.<provider>``)
PROVIDERS = ("stripe", "adyen", "braintree", "checkout", "paypal", "square", "gocardless",
             "razorpay", "mollie", "standard", "hmac")


def provider_sim(provider: str) -> ProviderSim:
    if provider not in PROVIDERS:
        raise ValueError(f"provider {provider!r} is not simulated; try: {', '.join(PROVIDERS)}")
    module: ProviderSim = importlib.import_module(f"payhooks.sim.{provider}")
    return module


@dataclass(frozen=True, slots=True)
class Delivery:
    """One webhook to send: the events it carries and whether it repeats an earlier one."""

    events: tuple[SimEvent, ...]
    duplicate: bool = False

    @property
    def payment_ref(self) -> str:
        return self.events[0].payment_ref

    @property
    def kind(self) -> str:
        return ", ".join(e.kind for e in self.events)


@dataclass(slots=True)
class Summary:
    payments: int = 0
    sent: int = 0
    duplicates: int = 0
    reordered: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    retries: int = 0  # deliveries sent again after a connection error or a 429/5xx answer
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
            "retries": self.retries,
            "seconds": round(self.seconds, 3),
            "rate_per_second": round(self.sent / self.seconds, 1) if self.seconds else None,
        }


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
    sim = provider_sim(provider)
    rng = random.Random(seed)
    clock = int(time.time()) if now is None else now
    summary = Summary(payments=payments)
    queues: list[list[Delivery]] = []
    for _ in range(payments):
        deliveries = [Delivery((event,)) for event in sim.lifecycle(rng, clock)]
        for original in list(deliveries):
            if rng.random() < duplicates:
                deliveries.insert(rng.randint(deliveries.index(original) + 1, len(deliveries)),
                                  Delivery(original.events, duplicate=True))
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


def signed_request(provider: str, delivery: Delivery, endpoint: EndpointSettings, now: int
                   ) -> SignedRequest:
    """Body and headers of ``delivery``, signed as the provider signs them, with the endpoint's
    Basic auth credentials when it has them."""
    signed = provider_sim(provider).sign(delivery.events, endpoint, now)
    auth = endpoint.basic_auth
    if auth is not None and not any(k.lower() == "authorization" for k in signed.headers):
        token = base64.b64encode(f"{auth.username}:{auth.password.value}".encode()).decode()
        signed.headers["authorization"] = f"Basic {token}"
    return signed


#: answers a PSP retries (the receiver's 503 with Retry-After above all)
_RETRIED_STATUSES: Final = frozenset({429, 500, 502, 503, 504})


class _RetriedAnswer(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


async def _deliver(client: httpx.AsyncClient, url: str, provider: str,
                   endpoint: EndpointSettings, delivery: Delivery, summary: Summary,
                   attempts: int) -> None:
    """Send one delivery, retrying as a PSP would; count its final answer or error."""
    try:
        async for attempt in stamina.retry_context(
                on=(httpx.TransportError, _RetriedAnswer), attempts=attempts, timeout=None,
                wait_initial=0.2, wait_max=2.0):
            with attempt:
                if attempt.num > 1:
                    summary.retries += 1
                signed = signed_request(provider, delivery, endpoint, int(time.time()))
                status = await _post(client, url, signed)
                summary.statuses[status] += 1
    except _RetriedAnswer as answer:
        summary.statuses[answer.status] += 1
    except httpx.HTTPError as exc:
        summary.errors[type(exc).__name__] += 1


async def _post(client: httpx.AsyncClient, url: str, signed: SignedRequest) -> int:
    """POST one signed request; an answer a PSP would retry raises :class:`_RetriedAnswer`."""
    response = await client.post(url, content=signed.body, headers=signed.headers)
    if response.status_code in _RETRIED_STATUSES:
        raise _RetriedAnswer(response.status_code)
    return response.status_code


async def send(
    url: str,
    provider: str,
    endpoint: EndpointSettings,
    deliveries: Sequence[Delivery],
    summary: Summary,
    *,
    rate: float | None = None,
    concurrency: int = 8,
    timeout: float = 10.0,
    attempts: int = 4,
) -> Summary:
    """POST every delivery, ``concurrency`` at a time, at most ``rate`` per second overall.

    Deliveries of one payment go out in their planned order (one payment is never sent
    concurrently with itself), so the planned reordering is what the receiver sees. Like a PSP,
    a delivery that meets a connection error or a 429/5xx answer is re-signed and sent again,
    up to ``attempts`` times in all (``attempts=1``: never retried); its final answer counts.
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
            await _deliver(client, url, provider, endpoint, delivery, summary, attempts)
            summary.sent += 1

    # tasks are created in plan order and per-payment locks are FIFO: order within a payment holds
    async with httpx.AsyncClient(timeout=timeout) as client, asyncio.TaskGroup() as group:
        for delivery in deliveries:
            group.create_task(one(client, delivery))
    summary.seconds = time.perf_counter() - started
    return summary
