"""One Stripe webhook from a signed POST to payments.events, against real Kafka and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import jsonschema
import orjson
import pytest
from redis.asyncio import Redis

from payhooks import kafka
from payhooks.config import Settings
from payhooks.metrics import ConsumerMetrics
from schemas import registry as schema_registry
from schemas import wire
from tests.conftest import running_worker
from tests.support import eventually, post_stripe, read_topic, stripe_event, stripe_headers

pytestmark = pytest.mark.integration


@pytest.fixture
async def worker(settings: Settings, redis_client: Redis) -> AsyncIterator[ConsumerMetrics]:
    async with running_worker(settings, redis_client) as metrics:
        yield metrics


async def test_signed_webhook_lands_on_raw_under_the_payment_key(
        settings: Settings, receiver_url: str) -> None:
    event = stripe_event("evt_skel_1", pi="pi_skel_1", amount=4200)
    async with httpx.AsyncClient() as client:
        response = await post_stripe(client, f"{receiver_url}/webhooks/stripe", event)
    assert response.status_code == 200
    [record] = await read_topic(settings, settings.topics.raw, expect=1)
    assert record.key == b"stripe:pi_skel_1"
    envelope = orjson.loads(record.value)
    jsonschema.validate(envelope, schema_registry.load(wire.SCHEMA_ENVELOPE_V1))
    assert envelope["event_id"] == "evt_skel_1"
    assert envelope["payload"].encode() == orjson.dumps(event)  # the signed bytes, exactly
    headers = dict(record.headers)
    assert headers[wire.HEADER_PROVIDER] == b"stripe"
    assert headers[wire.HEADER_DELIVERY_ID].decode() == envelope["delivery_id"]
    assert headers[wire.HEADER_TRACEPARENT].startswith(b"00-")


async def test_webhook_posted_three_times_yields_one_canonical_event(
        settings: Settings, receiver_url: str, worker: ConsumerMetrics) -> None:
    event = stripe_event("evt_skel_dup", pi="pi_skel_dup", amount=1999)
    async with httpx.AsyncClient() as client:
        answers = [await post_stripe(client, f"{receiver_url}/webhooks/stripe", event)
                   for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert len(await read_topic(settings, settings.topics.raw, expect=3)) == 3
    events = await read_topic(settings, settings.topics.events, expect=1, settle=3.0)
    assert len(events) == 1
    [record] = events
    assert record.key == b"stripe:pi_skel_dup"
    value = orjson.loads(record.value)
    jsonschema.validate(value, schema_registry.load(wire.SCHEMA_EVENT_V1))
    assert value["event_id"] == "stripe:evt_skel_dup"
    assert value["type"] == "payment.captured"
    assert value["amount"] == 1999
    assert value["currency"] == "EUR"
    # a capture with no authorization seen yet waits (parked) for its predecessor
    assert worker.records.labels("parked")._value.get() == 1
    assert worker.records.labels("duplicate")._value.get() == 2


async def test_bad_requests_never_reach_kafka(settings: Settings, receiver_url: str) -> None:
    event = stripe_event("evt_skel_bad", pi="pi_skel_bad")
    body = orjson.dumps(event)
    url = f"{receiver_url}/webhooks/stripe"
    async with httpx.AsyncClient() as client:
        codes = [
            (await client.post(url, content=body,
                               headers=stripe_headers(body, secret="whsec_wrong"))).status_code,
            (await client.post(url, content=body,
                               headers=stripe_headers(body, timestamp=1))).status_code,
            (await client.post(url, content=body,
                               headers={"content-type": "application/json"})).status_code,
            (await client.post(f"{receiver_url}/webhooks/unknown", content=body,
                               headers=stripe_headers(body))).status_code,
        ]
        # one genuine request afterwards, so "nothing arrived" is not a slow read
        ok = await post_stripe(client, url, stripe_event("evt_skel_good", pi="pi_skel_good"))
    assert codes == [401, 401, 401, 404]
    assert ok.status_code == 200
    records = await read_topic(settings, settings.topics.raw, expect=1, settle=2.0)
    assert [r.key for r in records] == [b"stripe:pi_skel_good"]


async def test_poison_on_raw_goes_to_the_dlq_with_its_coordinates(
        settings: Settings, worker: ConsumerMetrics) -> None:
    producer = kafka.producer(settings.kafka)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topics.raw, b"not an envelope", key=b"stripe:x",
                                     headers=[("delivery_id", b"d-1")])
    finally:
        await producer.stop()
    [dead] = await read_topic(settings, settings.topics.dlq, expect=1)
    headers = dict(dead.headers)
    assert dead.value == b"not an envelope"
    assert dead.key == b"stripe:x"
    assert headers[wire.HEADER_DELIVERY_ID] == b"d-1"
    assert headers[wire.HEADER_DLQ_SOURCE_TOPIC] == settings.topics.raw.encode()
    assert headers[wire.HEADER_DLQ_STAGE] == b"decode"
    assert headers[wire.HEADER_DLQ_ERROR_CLASS] == b"DecodeError"


async def test_committed_batches_leave_no_stored_decisions_behind(
        settings: Settings, receiver_url: str, worker: ConsumerMetrics,
        redis_client: Redis) -> None:
    async with httpx.AsyncClient() as client:
        for n in range(5):
            event = stripe_event(f"evt_skel_forget_{n}", pi=f"pi_skel_forget_{n}")
            assert (await post_stripe(client, f"{receiver_url}/webhooks/stripe", event)
                    ).status_code == 200
    await read_topic(settings, settings.topics.events, expect=5)
    pattern = settings.redis.key_prefix + wire.REDIS_DECISION.format(
        topic="*", partition="*", offset="*")

    async def no_decisions() -> bool:
        return not [key async for key in redis_client.scan_iter(match=pattern)]

    await eventually(no_decisions, timeout=10)
    snapshots = [key async for key in redis_client.scan_iter(
        match=settings.redis.key_prefix + "pay:*")]
    assert len(snapshots) == 5  # the payments themselves are kept
