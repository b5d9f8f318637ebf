"""``payhooks trace`` against real Kafka and Redis, on a payment a real worker processed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from click.testing import CliRunner, Result
from redis.asyncio import Redis

from consumers import timeline as timelines
from consumers import trace
from payhooks import kafka
from payhooks.cli import cli
from payhooks.config import RedisSettings, Settings
from payhooks.metrics import ConsumerMetrics
from schemas import wire
from tests.conftest import free_port, running_worker
from tests.support import eventually, post_stripe, stripe_event

pytestmark = pytest.mark.integration

PI = "pi_trace_it"
PAYMENT = f"stripe:{PI}"


def authorization(event_id: str, amount: int = 2500) -> dict[str, Any]:
    event = stripe_event(event_id, "payment_intent.amount_capturable_updated", pi=PI,
                         amount=amount)
    event["data"]["object"]["amount_capturable"] = amount
    return event


def refund(event_id: str, amount: int) -> dict[str, Any]:
    event = stripe_event(event_id, "charge.refunded", pi=PI)
    event["data"]["object"] = {"id": "ch_trace", "object": "charge", "payment_intent": PI,
                               "amount_refunded": amount, "currency": "eur"}
    return event


def count(metrics: ConsumerMetrics, outcome: str) -> float:
    value: float = metrics.records.labels(outcome)._value.get()
    return value


async def produce(settings: Settings, *records: tuple[bytes, bytes, int | None]) -> None:
    producer = kafka.producer(settings.kafka)
    await producer.start()
    try:
        for key, value, timestamp_ms in records:
            await producer.send_and_wait(settings.topics.raw, value, key=key,
                                         timestamp_ms=timestamp_ms,
                                         headers=[(wire.HEADER_DELIVERY_ID, b"d-direct")])
    finally:
        await producer.stop()


async def invoke(settings: Settings, *args: str) -> Result:
    """``payhooks trace ...`` in a thread (the command runs its own event loop)."""
    return await asyncio.to_thread(CliRunner().invoke, cli, ["trace", *args],
                                   obj={"settings": settings})


@pytest.fixture
async def processed(settings: Settings, receiver_url: str, redis_client: Redis) -> Settings:
    """One payment, step by step through a real worker: authorised (delivered twice), a refund
    before any capture (parked; the parking window is 15 minutes), and a malformed record under
    the payment's key (dead-lettered at decode)."""
    url = f"{receiver_url}/webhooks/stripe"
    async with running_worker(settings, redis_client) as metrics, httpx.AsyncClient() as client:
        assert (await post_stripe(client, url, authorization("evt_t_auth"))).status_code == 200

        async def applied() -> bool:
            return count(metrics, "applied") == 1
        await eventually(applied)
        assert (await post_stripe(client, url, authorization("evt_t_auth"))).status_code == 200

        async def duplicate() -> bool:
            return count(metrics, "duplicate") == 1
        await eventually(duplicate)
        assert (await post_stripe(client, url, refund("evt_t_refund", 1000))).status_code == 200

        async def parked() -> bool:
            return count(metrics, "parked") == 1
        await eventually(parked)
        await produce(settings, (PAYMENT.encode(), b'{"schema": "payhooks.envelope.v1"', None))

        async def dead() -> bool:
            return count(metrics, "dlq") == 1
        await eventually(dead)
    return settings


async def test_trace_shows_duplicates_the_parked_event_and_the_dead_letter_in_order(
        processed: Settings) -> None:
    timeline = await trace.trace(processed, PAYMENT, now=datetime.now(UTC))
    rows = timeline.rows
    assert [r.at_ms for r in rows] == sorted(r.at_ms for r in rows)
    kafka_rows = [(r.role, r.outcome, r.event_id) for r in rows if r.role != "redis"]
    assert kafka_rows == [
        ("raw", "delivered", "stripe:evt_t_auth"),
        ("events", "applied: v1", "stripe:evt_t_auth"),
        ("transitions", "(new) -> authorized", "stripe:evt_t_auth"),
        ("state", "state authorized", "stripe:evt_t_auth"),
        ("raw", "duplicate delivery", "stripe:evt_t_auth"),
        ("raw", "delivered", "stripe:evt_t_refund"),
        ("events", "parked (waiting in Redis)", "stripe:evt_t_refund"),
        ("raw", "dead-lettered (decode)", None),
        ("dlq", "dead letter (decode)", None),
    ]
    raw = [r for r in rows if r.role == "raw"]
    assert len({r.delivery_id for r in raw[:3]}) == 3  # each delivery has its own id
    assert raw[0].provider_event_id == raw[1].provider_event_id == "evt_t_auth"
    [transition] = [r for r in rows if r.role == "transitions"]
    assert transition.version == 1
    assert transition.delivery_id == raw[0].delivery_id
    # the parked refund, from Redis: after its delivery, before the malformed record
    [parked] = [r for r in rows if r.role == "redis"]
    assert parked.event_id == "stripe:evt_t_refund"
    assert raw[2].at_ms <= parked.at_ms <= raw[3].at_ms
    [dead] = [r for r in rows if r.role == "dlq"]
    assert dead.detail.endswith(f"from {processed.topics.raw}[{raw[3].partition}]"
                                f"@{raw[3].offset}")
    live = timeline.live
    assert live.status == "ok"
    assert live.snapshot is not None
    assert (live.snapshot.state, live.snapshot.version) == ("authorized", 1)
    # exactly one partition per topic was read, the one the producers chose for the key
    assert {s.topic for s in timeline.scans} == {processed.topics.by_role()[r]
                                                 for r in trace.ROLES}
    assert {s.partition for s in timeline.scans if s.role == "raw"} == {raw[0].partition}
    assert raw[0].partition == timelines.partition_for(PAYMENT.encode(), [0, 1, 2])


async def test_trace_command_prints_the_same_rows_as_json_and_as_a_table(
        processed: Settings) -> None:
    as_json = await invoke(processed, PAYMENT, "--json")
    assert as_json.exit_code == 0, as_json.output
    doc = orjson.loads(as_json.stdout)
    assert doc["found"] is True
    assert [r["outcome"] for r in doc["rows"] if r["role"] == "raw"] == [
        "delivered", "duplicate delivery", "delivered", "dead-lettered (decode)"]
    assert doc["live"]["parked"][0]["event_id"] == "stripe:evt_t_refund"
    assert "payload" not in as_json.stdout  # no provider payload unless asked
    table = await invoke(processed, PAYMENT)
    assert table.exit_code == 0, table.output
    for expected in ("duplicate delivery", "parked (waiting in Redis)", "dead letter (decode)",
                     "live (Redis): authorized v1", "1 parked"):
        assert expected in table.stdout


async def test_an_unknown_payment_exits_1_and_says_what_to_check(processed: Settings) -> None:
    result = await invoke(processed, "stripe:pi_never_seen")
    assert result.exit_code == 1
    assert "no record of stripe:pi_never_seen" in result.stderr
    assert "{provider}:{payment reference}" in result.stderr
    malformed = await invoke(processed, "pi_never_seen")
    assert malformed.exit_code == 2


async def test_a_time_window_reads_only_the_offsets_of_that_window(settings: Settings) -> None:
    now = datetime.now(UTC)
    hours = [3, 2, 1]
    await produce(settings, *((PAYMENT.encode(), f'{{"n": {h}}}'.encode(),
                               int((now - timedelta(hours=h)).timestamp() * 1000))
                              for h in hours))
    window = timelines.Window(since=now - timedelta(minutes=150), until=now - timedelta(minutes=90))
    timeline = await trace.trace(settings, PAYMENT, now=now, window=window)
    [row] = timeline.rows
    assert row.offset == 1
    [scan] = [s for s in timeline.scans if s.role == "raw"]
    assert (scan.start, scan.end, scan.matched) == (1, 2, 1)
    result = await invoke(settings, PAYMENT, "--since", "5m", "--json")
    assert result.exit_code == 1  # nothing in the last five minutes
    assert orjson.loads(result.stdout)["found"] is False
    assert "Widen the time window" in result.stderr


async def test_an_unreachable_redis_still_shows_the_kafka_timeline(settings: Settings) -> None:
    await produce(settings, (PAYMENT.encode(), b"{}", None))
    dead_redis = Settings(kafka=settings.kafka, topics=settings.topics,
                          redis=RedisSettings(url=f"redis://127.0.0.1:{free_port()}/0"))
    timeline = await trace.trace(dead_redis, PAYMENT, now=datetime.now(UTC))
    assert [r.role for r in timeline.rows] == ["raw"]
    assert timeline.live.status == "unreachable"
    assert any(n.startswith("Redis was unreachable") for n in timeline.notes)
