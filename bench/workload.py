"""The worker benchmark's input: simulated Stripe lifecycles as the receiver's webhooks.raw records.

Each event goes through ``ingest.envelopes.records_for``, so key, value and headers are exactly what
the receiver publishes (the signature was checked by the receiver and is not part of the record).
Lifecycles are interleaved the way real traffic arrives: the first events of a block of payments,
then their second events, and so on, so one payment's events are spread over the topic, in order.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Iterator, Sequence

import orjson

from ingest.envelopes import records_for
from ingest.schemes import ProviderEvent, Verified
from payhooks import kafka
from payhooks.config import KafkaSettings
from payhooks.kafka import Record
from payhooks.sim import stripe as stripe_sim
from payhooks.sim.base import SimEvent
from schemas import timefmt

ENDPOINT = "stripe"
_INTERLEAVE = 1000  # payments whose lifecycles are interleaved with each other
_IN_FLIGHT = 2000  # unacknowledged sends while filling a topic
_TRACEPARENT = "00-{trace}-{span}-01"


def lifecycles(payments: int, seed: int) -> Iterator[list[SimEvent]]:
    """``payments`` simulated Stripe PaymentIntent lifecycles (one to three events each)."""
    rng = random.Random(seed)  # noqa: S311  (simulated traffic, not cryptography)
    now = int(time.time())
    for _ in range(payments):
        yield stripe_sim.lifecycle(rng, now)


def interleaved(blocks: Iterator[list[SimEvent]]) -> Iterator[SimEvent]:
    """Events of ``_INTERLEAVE`` payments at a time: every first event, every second, ..."""
    block: list[list[SimEvent]] = []
    for lifecycle in blocks:
        block.append(lifecycle)
        if len(block) == _INTERLEAVE:
            yield from _rounds(block)
            block = []
    yield from _rounds(block)


def _rounds(block: Sequence[list[SimEvent]]) -> Iterator[SimEvent]:
    longest = max((len(lc) for lc in block), default=0)
    for step in range(longest):
        for lifecycle in block:
            if step < len(lifecycle):
                yield lifecycle[step]


def raw_records(payments: int, topic: str, seed: int = 7) -> Iterator[Record]:
    """The webhooks.raw records of ``payments`` interleaved Stripe lifecycles."""
    received_at = timefmt.from_unix(time.time())
    for event in interleaved(lifecycles(payments, seed)):
        verified = Verified(0, (ProviderEvent(event.event_id, event.kind, event.payment_ref,
                                              orjson.dumps(event.event)),))
        yield from records_for(
            verified, endpoint=ENDPOINT, provider="stripe", delivery_id=str(uuid.uuid4()),
            received_at=received_at,
            traceparent=_TRACEPARENT.format(trace=uuid.uuid4().hex, span=uuid.uuid4().hex[:16]),
            topic=topic)


async def fill(settings: KafkaSettings, records: Iterator[Record]) -> tuple[int, int]:
    """Produce ``records`` (idempotent, acks=all); returns (records, value bytes)."""
    producer = kafka.producer(settings, linger_ms=20, max_batch_size=256 * 1024)
    await producer.start()
    slots = asyncio.Semaphore(_IN_FLIGHT)
    failures: list[BaseException] = []
    count = size = 0

    def done(future: asyncio.Future[object]) -> None:
        slots.release()
        if not future.cancelled() and future.exception() is not None:
            failures.append(future.exception())  # type: ignore[arg-type]

    try:
        for record in records:
            await slots.acquire()
            future = await producer.send(record.topic, record.value, key=record.key,
                                         headers=list(record.headers))
            future.add_done_callback(done)
            count += 1
            size += len(record.value)
        await producer.flush()
        async with asyncio.timeout(60):
            for _ in range(_IN_FLIGHT):
                await slots.acquire()
    finally:
        await producer.stop()
    if failures:
        raise RuntimeError(f"{len(failures)} records could not be written: {failures[0]!r}")
    return count, size
