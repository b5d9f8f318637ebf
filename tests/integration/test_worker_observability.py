"""What the worker tells operators: decision log lines that carry the payment, event and delivery
ids and the trace context of the Kafka headers, and the lag and parking metrics."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from payhooks import kafka
from payhooks.config import Settings
from tests.conftest import SESSION_LOGS, running_worker
from tests.support import eventually, post_stripe, read_topic, stripe_event, stripe_headers

pytestmark = pytest.mark.integration

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def log_lines_since(offset: int) -> list[dict[str, Any]]:
    lines = SESSION_LOGS.getvalue()[offset:].splitlines()
    return [orjson.loads(line) for line in lines if line.startswith("{")]


async def test_decision_log_lines_carry_payment_event_delivery_ids_and_trace_context(
        settings: Settings, receiver_url: str, redis_client: Redis) -> None:
    start = len(SESSION_LOGS.getvalue())
    event = stripe_event("evt_obs_log", pi="pi_obs_log", amount=1200)
    async with httpx.AsyncClient() as client:
        body = orjson.dumps(event)
        response = await client.post(f"{receiver_url}/webhooks/stripe", content=body,
                                     headers={**stripe_headers(body), "traceparent": TRACEPARENT})
    assert response.status_code == 200
    [raw] = await read_topic(settings, settings.topics.raw, expect=1)
    headers = dict(raw.headers)
    async with running_worker(settings, redis_client) as metrics:
        await eventually(lambda: metrics.records.labels("parked")._value.get() == 1)
    decided = [line for line in log_lines_since(start)
               if line.get("event") == "event_decided" and line.get("payment_id")
               == "stripe:pi_obs_log"]
    assert len(decided) == 1
    [line] = decided
    assert line["event_id"] == "stripe:evt_obs_log"
    assert line["outcome"] == "parked"
    assert line["delivery_id"] == headers["delivery_id"].decode()
    assert TRACE_ID in line["traceparent"]
    assert (line["partition"], line["offset"]) == (raw.partition, raw.offset)


async def test_parked_gauges_rise_while_an_event_waits_and_fall_when_it_is_released(
        settings: Settings, receiver_url: str, redis_client: Redis) -> None:
    url = f"{receiver_url}/webhooks/stripe"
    capture = stripe_event("evt_obs_cap", pi="pi_obs_park", amount=900)
    authorization = stripe_event("evt_obs_auth", "payment_intent.amount_capturable_updated",
                                 pi="pi_obs_park", amount=900)
    authorization["data"]["object"]["amount_capturable"] = 900
    async with running_worker(settings, redis_client) as metrics, httpx.AsyncClient() as client:
        assert (await post_stripe(client, url, capture)).status_code == 200
        # the ticker samples the parked set every few seconds
        await eventually(lambda: metrics.parked_payments._value.get() == 1, timeout=30)
        await eventually(lambda: metrics.oldest_parked_age._value.get() > 0, timeout=30)
        assert metrics.oldest_parked_age._value.get() < settings.consumer.parking_window_seconds
        assert metrics.parking_window._value.get() == settings.consumer.parking_window_seconds
        assert (await post_stripe(client, url, authorization)).status_code == 200
        await eventually(lambda: metrics.records.labels("released")._value.get() == 1)
        await eventually(lambda: metrics.parked_payments._value.get() == 0, timeout=30)
        assert metrics.oldest_parked_age._value.get() == 0
        assert metrics.transitions.labels("authorized", "false")._value.get() == 1
        assert metrics.transitions.labels("captured", "false")._value.get() == 1


async def test_lag_per_partition_is_zero_once_the_worker_has_caught_up(
        settings: Settings, receiver_url: str, redis_client: Redis) -> None:
    async with httpx.AsyncClient() as client:
        for n in range(12):
            event = stripe_event(f"evt_obs_lag_{n}", pi=f"pi_obs_lag_{n}", amount=100 + n)
            assert (await post_stripe(client, f"{receiver_url}/webhooks/stripe", event)
                    ).status_code == 200
    raw = await read_topic(settings, settings.topics.raw, expect=12)
    partitions = {r.partition for r in raw}
    async with running_worker(settings, redis_client) as metrics:
        await eventually(lambda: metrics.records.labels("parked")._value.get() == 12)

        def lags() -> dict[int, float]:
            # read the samples (a gauge child is only there once the worker has set it)
            return {int(s.labels["partition"]): s.value
                    for m in metrics.lag.collect() for s in m.samples}

        await eventually(lambda: set(lags()) >= partitions)
        await eventually(lambda: all(lags()[p] == 0 for p in partitions))


async def test_stale_events_and_dead_letters_of_every_stage_are_logged(
        settings: Settings, receiver_url: str, redis_client: Redis) -> None:
    start = len(SESSION_LOGS.getvalue())
    url = f"{receiver_url}/webhooks/stripe"
    first = stripe_event("evt_obs_auth_1", "payment_intent.amount_capturable_updated",
                         pi="pi_obs_stale", amount=700)
    first["data"]["object"]["amount_capturable"] = 700
    again = {**first, "id": "evt_obs_auth_2"}  # the same authorization under a new event id
    async with running_worker(settings, redis_client) as metrics, httpx.AsyncClient() as client:
        for event in (first, again):
            assert (await post_stripe(client, url, event)).status_code == 200
        producer = kafka.producer(settings.kafka)
        await producer.start()
        try:
            await producer.send_and_wait(settings.topics.raw, b"\xff not an envelope",
                                         key=b"stripe:pi_obs_stale")
        finally:
            await producer.stop()
        await eventually(lambda: metrics.records.labels("stale")._value.get() == 1)
        await eventually(lambda: metrics.records.labels("dlq")._value.get() == 1)
    lines = log_lines_since(start)
    [stale] = [line for line in lines if line.get("event") == "event_stale"]
    assert (stale["payment_id"], stale["event_id"], stale["level"]) == (
        "stripe:pi_obs_stale", "stripe:evt_obs_auth_2", "info")
    [dead] = [line for line in lines if line.get("event") == "record_dead_lettered"]
    assert (dead["stage"], dead["level"]) == ("decode", "warning")
    assert isinstance(dead["offset"], int)
