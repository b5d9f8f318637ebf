"""Handler.handle_batch against real Redis: the same answers as handle() record by record, also on
redelivery and when another worker moves a payment's snapshot on in the middle of a batch."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from aiokafka.structs import ConsumerRecord
from redis.asyncio import Redis

from consumers.handler import Handler, tick_record
from consumers.state import Snapshot
from consumers.store import PaymentStore, StoredDecision
from ingest.envelopes import records_for
from ingest.schemes import ProviderEvent, Verified
from payhooks.config import TopicSettings
from payhooks.sim import stripe as stripe_sim
from schemas import timefmt

pytestmark = pytest.mark.integration

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
WINDOW = timedelta(minutes=15)
TOPICS = TopicSettings()
Snapshots = dict[str, tuple[Snapshot, str]]


def raw_values(payments: int, seed: int) -> list[tuple[bytes, bytes]]:
    """(key, value) of Stripe lifecycles, each delivered twice, shuffled (order per payment lost
    too), plus a poison record and a tick per payment: everything the handler decides on."""
    rng = random.Random(seed)
    now = int(time.time())
    values = []
    for _ in range(payments):
        for event in stripe_sim.lifecycle(rng, now):
            verified = Verified(0, (ProviderEvent(event.event_id, event.kind, event.payment_ref,
                                                  orjson.dumps(event.event)),))
            [record] = records_for(verified, endpoint="stripe", provider="stripe",
                                   delivery_id=str(uuid.uuid4()),
                                   received_at=timefmt.from_unix(now), traceparent="",
                                   topic="raw")
            values += [(record.key, record.value)] * 2
    rng.shuffle(values)
    keys = sorted({k for k, _ in values})
    values += [(tick_record("raw", k.decode()).key, tick_record("raw", k.decode()).value)
               for k in keys]
    values.insert(len(values) // 2, (keys[0], b"{not json"))
    return values


def consumer_records(values: list[tuple[bytes, bytes]]) -> list[ConsumerRecord]:
    return [ConsumerRecord("raw", 0, offset, 0, 0, key, value, None, len(key), len(value), [])
            for offset, (key, value) in enumerate(values)]


async def ready_store(redis: Redis) -> PaymentStore:
    store = PaymentStore(redis, f"test:{uuid.uuid4().hex[:10]}:")
    await redis.set(store.ready_key, (await redis.info("server"))["run_id"])
    return store


def handler(store: PaymentStore, clock: Callable[[], datetime] = lambda: NOW) -> Handler:
    return Handler(TOPICS, store, WINDOW, clock=clock)


def comparable(decision: StoredDecision) -> tuple[tuple[str, ...], tuple[object, ...]]:
    return decision.outcomes, tuple((r.topic, r.key, r.value, r.headers)
                                    for r in decision.records)


async def snapshots(store: PaymentStore, payment_ids: set[str]) -> Snapshots:
    return {p: await store.load(p) for p in payment_ids}


async def test_batches_answer_exactly_what_one_by_one_answers(redis_client: Redis) -> None:
    records = consumer_records(raw_values(40, seed=1))
    single, batched = await ready_store(redis_client), await ready_store(redis_client)
    one_by_one = [comparable(await handler(single).handle(r)) for r in records]
    in_batches = []
    for start in range(0, len(records), 37):
        answers = await handler(batched).handle_batch(records[start:start + 37])
        in_batches += [comparable(a) for a in answers]
    assert in_batches == one_by_one
    assert {"applied", "duplicate", "dlq"} <= {name for names, _ in one_by_one for name in names}
    payments = {r.key.decode() for r in records}
    assert await snapshots(batched, payments) == await snapshots(single, payments)


async def test_a_batch_read_again_re_emits_the_same_outputs(redis_client: Redis) -> None:
    records = consumer_records(raw_values(10, seed=2))
    store = await ready_store(redis_client)
    first = await handler(store).handle_batch(records)
    later = datetime(2026, 2, 1, tzinfo=UTC)  # a redelivery decides nothing anew: no new times
    again = await handler(store, clock=lambda: later).handle_batch(records)
    assert [comparable(a) for a in again] == [comparable(a) for a in first]
    stored = [a for a, b in zip(again, first, strict=True) if b.records and b.outcomes != ("dlq",)]
    assert stored
    assert all(a.redelivered for a in stored)


async def test_a_snapshot_moved_on_under_the_batch_is_decided_again(redis_client: Redis
                                                                    ) -> None:
    """Another worker decides on the payment between the batch's read and its write: the batch's
    decisions of that payment are made again from the newer snapshot, once each, in order."""
    values = list(dict.fromkeys(raw_values(6, seed=3)))  # each record once, still shuffled
    records = consumer_records([(k, v) for k, v in values if b"schema" in v[:20]])
    victim = records[0].key.decode()
    store = await ready_store(redis_client)
    # the same event, read by another worker from another record (other coordinates)
    intruder = ConsumerRecord("raw", 1, 0, 0, 0, records[0].key, records[0].value, None, 0, 0,
                              [])
    intruded: list[int] = []
    read_view = store.prefetch

    async def read_then_intrude(keys: Sequence[str], payments: Sequence[str]
                                ) -> tuple[dict[str, StoredDecision], Snapshots]:
        view = await read_view(keys, payments)
        await handler(PaymentStore(redis_client, store.prefix)).handle(intruder)
        intruded.append((await store.load(victim))[0].version)
        return view

    # a hook at the one moment that matters; Redis and both handlers are real
    store.prefetch = read_then_intrude  # type: ignore[method-assign,assignment]
    answers = await handler(store).handle_batch(records)
    assert answers[0].outcomes == ("duplicate",)  # the other worker applied it already
    snap, _ = await store.load(victim)
    versions = [orjson.loads(r.value)["version"] for a in answers for r in a.records
                if r.topic == TOPICS.transitions and r.key.decode() == victim]
    assert versions == list(range(intruded[0] + 1, snap.version + 1))
