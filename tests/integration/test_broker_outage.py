"""With the broker down the receiver answers 503 + Retry-After within the deadline, never 2xx;
receiver and worker started during an outage wait, not ready, instead of crashing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from payhooks import stack
from tests.conftest import (
    create_topics,
    free_port,
    make_settings,
    running_receiver,
    running_worker,
)
from tests.support import eventually, post_stripe, read_topic, stripe_event

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[stack.KafkaNode]:
    """A broker of this test's own: stopping it must not disturb the other tests."""
    node = stack.KafkaNode(tmp_path / "kafka", port=free_port(), controller_port=free_port())
    node.start()
    yield node
    node.stop()


async def test_broker_down_gets_503_within_deadline_and_200_once_back(
        own_broker: stack.KafkaNode, redis_url: str) -> None:
    settings = make_settings(own_broker.bootstrap, redis_url, publish_timeout=2.0)
    await create_topics(settings)
    url_path = "/webhooks/stripe"
    async with running_receiver(settings) as base, httpx.AsyncClient(timeout=30) as client:
        first = await post_stripe(client, base + url_path, stripe_event("evt_up_1", pi="pi_up"))
        assert first.status_code == 200

        own_broker.stop()
        started = time.monotonic()
        down = await post_stripe(client, base + url_path, stripe_event("evt_down", pi="pi_dn"))
        elapsed = time.monotonic() - started
        assert down.status_code == 503
        assert down.headers["retry-after"] == "5"
        assert down.headers["content-type"] == "application/problem+json"
        assert elapsed < 2.0 + 1.5  # the deadline, plus a margin for a loaded machine
        assert (await client.get(base + "/readyz")).status_code == 503

        own_broker.start()
        deadline = time.monotonic() + 60
        back = None
        while time.monotonic() < deadline:
            back = await post_stripe(client, base + url_path, stripe_event("evt_back", pi="pi_bk"))
            if back.status_code == 200:
                break
            assert back.status_code == 503  # never anything else while it recovers
        assert back is not None
        assert back.status_code == 200

    keys = {r.key for r in await read_topic(settings, settings.topics.raw, expect=2, settle=2)}
    assert {b"stripe:pi_up", b"stripe:pi_bk"} <= keys


async def test_receiver_and_worker_started_during_an_outage_wait_not_ready_then_recover(
        own_broker: stack.KafkaNode, redis_url: str) -> None:
    settings = make_settings(own_broker.bootstrap, redis_url, publish_timeout=2.0)
    await create_topics(settings)
    own_broker.stop()
    redis = Redis.from_url(redis_url)
    url_path = "/webhooks/stripe"
    try:
        async with running_receiver(settings) as base, running_worker(settings, redis) as metrics, \
                httpx.AsyncClient(timeout=30) as client:
            # both processes are up, alive and saying they are not ready; webhooks get 503
            assert (await client.get(base + "/healthz")).status_code == 200
            assert (await client.get(base + "/readyz")).status_code == 503
            down = await post_stripe(client, base + url_path, stripe_event("evt_o1", pi="pi_o1"))
            assert (down.status_code, down.headers["retry-after"]) == (503, "5")
            assert metrics.ready._value.get() == 0

            own_broker.start()

            async def receiver_ready() -> bool:
                return (await client.get(base + "/readyz")).status_code == 200

            await eventually(receiver_ready, timeout=90)
            back = await post_stripe(client, base + url_path, stripe_event("evt_o2", pi="pi_o2"))
            assert back.status_code == 200
            await eventually(lambda: metrics.records.labels("parked")._value.get() == 1,
                             timeout=90)
            await eventually(lambda: metrics.ready._value.get() == 1, timeout=30)

            # an idle worker notices the broker going away (getmany alone would not)
            own_broker.stop()
            await eventually(lambda: metrics.ready._value.get() == 0, timeout=30)
            own_broker.start()
            await eventually(lambda: metrics.ready._value.get() == 1, timeout=90)
    finally:
        await redis.aclose()
