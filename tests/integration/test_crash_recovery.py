"""Workers killed with SIGKILL at every named step of a batch, and Redis restarted (with its data
and empty), lose no transition and double none: versions stay gapless, each event is published
once, and final states equal in-order delivery."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from aiokafka.structs import ConsumerRecord
from redis.asyncio import Redis

from consumers import failpoints
from consumers import state as machine
from consumers.normalize import normalize
from ingest.envelopes import records_for
from ingest.schemes import RawRequest, build_scheme
from payhooks import kafka, sim, stack
from payhooks.config import ConsumerSettings, RedisSettings, Settings
from schemas.envelope import Envelope
from tests.conftest import create_topics, free_port, running_worker
from tests.support import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PAYMENTS = 40
TRACE = "00-" + "5" * 32 + "-" + "6" * 16 + "-01"


async def fill_raw(settings: Settings, payments: int, seed: int) -> dict[str, machine.Snapshot]:
    """Put ``payments`` Stripe lifecycles on the raw topic, every event twice, shuffled; return
    the final snapshots in-order delivery gives."""
    rng = random.Random(seed)
    endpoint = settings.endpoints["stripe"]
    scheme = build_scheme(endpoint)
    module = sim.provider_sim("stripe")
    now = int(time.time())
    records, expected = [], {}
    for _ in range(payments):
        canonical = []
        for event in module.lifecycle(rng, now):
            signed = module.sign([event], endpoint, now)
            verified = await scheme.verify(RawRequest(signed.body, signed.headers), now)
            [record] = records_for(verified, endpoint="stripe", provider="stripe",
                                   delivery_id=f"d{len(records)}",
                                   received_at="2026-11-24T00:00:00.000Z", traceparent=TRACE,
                                   topic=settings.topics.raw)
            records += [record, record]
            mapped = normalize(Envelope.from_json(record.value))
            if mapped is not None:
                canonical.append(mapped)
        if canonical:
            decision = machine.replay(machine.Snapshot(canonical[0].payment_id), canonical,
                                      datetime.now(UTC))
            expected[canonical[0].payment_id] = decision.snapshot
    rng.shuffle(records)  # duplicates and reordering within every payment
    producer = kafka.producer(settings.kafka)
    await producer.start()
    try:
        for record in records:
            await producer.send(record.topic, record.value, key=record.key,
                                headers=list(record.headers))
        await producer.flush()
    finally:
        await producer.stop()
    return expected


async def check_outputs(settings: Settings, expected: dict[str, machine.Snapshot]) -> None:
    total_events = sum(len(s.seen) for s in expected.values())
    transitions = await read_topic(settings, settings.topics.transitions, timeout=60,
                                   expect=sum(s.version for s in expected.values()), settle=3)
    events = await read_topic(settings, settings.topics.events, timeout=30, expect=total_events,
                              settle=2)
    states = await read_topic(settings, settings.topics.state, timeout=10)

    event_ids = [orjson.loads(r.value)["event_id"] for r in events]
    assert len(event_ids) == len(set(event_ids)), "a canonical event was published twice"
    assert len(event_ids) == total_events, "a canonical event was lost"

    versions: dict[str, list[int]] = defaultdict(list)
    for record in sorted(transitions, key=lambda r: (r.partition, r.offset)):
        value = orjson.loads(record.value)
        versions[value["payment_id"]].append(value["version"])
    for payment_id, snap in expected.items():
        assert versions[payment_id] == list(range(1, snap.version + 1)), payment_id

    finals = _latest(states)
    for payment_id, snap in expected.items():
        assert finals[payment_id]["state"] == snap.state, payment_id
        assert finals[payment_id]["totals"] == snap.totals.as_dict(), payment_id


def _latest(records: list[ConsumerRecord]) -> dict[str, dict[str, object]]:
    latest = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        latest[record.key.decode()] = orjson.loads(record.value)
    return latest


def write_config(settings: Settings, path: Path) -> Path:
    topics = "".join(f'{role} = "{name}"\n' for role, name in settings.topics.by_role().items())
    secrets = ", ".join(f'"{s.value}"' for s in settings.endpoints["stripe"].secrets)
    path.write_text(
        f'[kafka]\nbootstrap_servers = "{settings.kafka.bootstrap_servers}"\n'
        f'[redis]\nurl = "{settings.redis.url}"\nkey_prefix = "{settings.redis.key_prefix}"\n'
        f'[consumer]\ngroup_id = "{settings.consumer.group_id}"\npoll_timeout_ms = 200\n'
        f"batch_max_records = 10\nsession_timeout_ms = 3000\n"
        f'[log]\nlevel = "warning"\n[topics]\n{topics}'
        f'[endpoints.stripe]\nprovider = "stripe"\nsecrets = [{secrets}]\n'
    )
    return path


async def run_worker_until_killed_or_idle(config: Path, failpoint: str | None, seconds: float
                                          ) -> int | None:
    """A `payhooks consume` process; returns its exit code when it died, None if still alive
    after ``seconds`` (then it is stopped with SIGTERM)."""
    env = {**os.environ, "PAYHOOKS_CONFIG": str(config)}
    env.pop("PAYHOOKS_FAILPOINT", None)
    if failpoint:
        env["PAYHOOKS_FAILPOINT"] = failpoint
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "payhooks", "consume", env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return await asyncio.wait_for(process.wait(), seconds)
    except TimeoutError:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
        return None


@pytest.fixture
async def crash_settings(settings: Settings) -> Settings:
    return replace(settings, consumer=replace(settings.consumer, session_timeout_ms=3000))


@pytest.mark.parametrize("step", failpoints.STEPS)
async def test_worker_killed_at_a_step_repeatedly_loses_and_doubles_nothing(
        crash_settings: Settings, tmp_path: Path, step: str) -> None:
    settings = crash_settings
    expected = await fill_raw(settings, PAYMENTS, seed=hash(step) % 1000)
    config = write_config(settings, tmp_path / "payhooks.toml")
    kills = 0
    for _ in range(3):  # die at this step, again and again, each time a little further
        code = await run_worker_until_killed_or_idle(config, f"{step}:0.5", seconds=12)
        if code == -signal.SIGKILL:
            kills += 1
    assert kills >= 1, f"the worker never reached {step}"
    # a clean worker drains the rest
    assert await run_worker_until_killed_or_idle(config, None, seconds=20) is None
    await check_outputs(settings, expected)


async def test_worker_killed_at_random_moments_loses_and_doubles_nothing(
        crash_settings: Settings, tmp_path: Path) -> None:
    settings = crash_settings
    expected = await fill_raw(settings, PAYMENTS, seed=99)
    config = write_config(settings, tmp_path / "payhooks.toml")
    env = {**os.environ, "PAYHOOKS_CONFIG": str(config)}
    env.pop("PAYHOOKS_FAILPOINT", None)
    rng = random.Random(7)
    for _ in range(5):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "payhooks", "consume", env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await asyncio.sleep(rng.uniform(2.0, 6.0))
        process.send_signal(signal.SIGKILL)
        await process.wait()
    assert await run_worker_until_killed_or_idle(config, None, seconds=25) is None
    await check_outputs(settings, expected)


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[stack.RedisNode]:
    node = stack.RedisNode(tmp_path / "redis", port=free_port())
    node.start()
    yield node
    node.stop()


@pytest.mark.parametrize("keep_data", [True, False], ids=["with-its-data", "empty"])
async def test_redis_restarted_mid_run_is_rebuilt_from_kafka(
        crash_settings: Settings, own_redis: stack.RedisNode, keep_data: bool) -> None:
    settings = replace(crash_settings, redis=RedisSettings(url=own_redis.url,
                                                           key_prefix="crash:"),
                       consumer=ConsumerSettings(group_id=crash_settings.consumer.group_id,
                                                 poll_timeout_ms=200, batch_max_records=10,
                                                 session_timeout_ms=3000))
    await create_topics(settings)
    first = await fill_raw(settings, PAYMENTS // 2, seed=11)
    redis = Redis.from_url(own_redis.url)
    try:
        async with running_worker(settings, redis) as metrics:
            # let part of the work happen, then restart Redis under the worker's feet
            await asyncio.sleep(3)
            own_redis.stop()
            own_redis.start(fresh=not keep_data)
            second = await fill_raw(settings, PAYMENTS // 2, seed=12)
            await check_outputs(settings, {**first, **second})
            assert metrics.rebuilds._value.get() >= 1
    finally:
        await redis.aclose()


@pytest.fixture
async def own_broker(tmp_path: Path) -> AsyncIterator[stack.KafkaNode]:
    node = stack.KafkaNode(tmp_path / "kafka", port=free_port(), controller_port=free_port())
    node.start()
    yield node
    node.stop()


async def test_broker_restarted_mid_run_loses_and_doubles_nothing(
        own_broker: stack.KafkaNode, redis_url: str, crash_settings: Settings) -> None:
    settings = replace(crash_settings, kafka=replace(crash_settings.kafka,
                                                     bootstrap_servers=own_broker.bootstrap))
    await create_topics(settings)
    expected = await fill_raw(settings, PAYMENTS, seed=21)
    redis = Redis.from_url(redis_url)
    try:
        async with running_worker(settings, redis):
            await asyncio.sleep(2)  # part of the work is done, part is in flight
            own_broker.stop()
            await asyncio.sleep(3)  # the worker retries with backoff meanwhile
            own_broker.start()
            await check_outputs(settings, expected)
    finally:
        await redis.aclose()
