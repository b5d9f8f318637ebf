"""Helpers for tests that read what landed in Kafka and post signed webhooks."""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any

import httpx
import orjson
from aiokafka.structs import ConsumerRecord

from ingest.schemes import stripe
from payhooks import kafka
from payhooks.config import Settings
from tests.conftest import STRIPE_SECRET


async def read_topic(settings: Settings, topic: str, *, expect: int | None = None,
                     timeout: float = 20.0, settle: float = 1.0) -> list[ConsumerRecord]:
    """Every committed record of ``topic`` from the beginning (no consumer group).

    Reads until ``expect`` records arrived (then ``settle`` seconds more, to catch extras), or
    until ``timeout`` passed.
    """
    consumer = kafka.consumer(settings.kafka, topic, group_id=None)
    await consumer.start()
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for part in batch.values():
                records.extend(part)
            if expect is not None and len(records) >= expect:
                deadline = min(deadline, time.monotonic() + settle)
                expect = None
    finally:
        await consumer.stop()
    return records


def stripe_event(event_id: str = "evt_1", kind: str = "payment_intent.succeeded", pi: str = "pi_1",
                 amount: int = 2500, created: int | None = None) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "type": kind,
        "created": created or int(time.time()),
        "data": {"object": {"id": pi, "object": "payment_intent", "amount": amount,
                            "amount_received": amount, "currency": "eur"}},
    }


def stripe_headers(body: bytes, secret: str = STRIPE_SECRET, timestamp: int | None = None
                   ) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {"content-type": "application/json",
            "stripe-signature": stripe.signature_header(body, [secret], ts)}


async def post_stripe(client: httpx.AsyncClient, url: str, event: dict[str, Any],
                      **header_args: Any) -> httpx.Response:
    body = orjson.dumps(event)
    return await client.post(url, content=body, headers=stripe_headers(body, **header_args))


async def eventually(predicate: Any, timeout: float = 30.0, interval: float = 0.2) -> None:
    """Wait until ``predicate()`` (a plain or an async function) is true, or fail."""
    deadline = time.monotonic() + timeout
    while not await _truth(predicate()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


async def _truth(result: Any) -> bool:
    return bool(await result) if inspect.isawaitable(result) else bool(result)
