"""With the broker down the receiver answers 503 + Retry-After within the deadline, never 2xx."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from payhooks import stack
from tests.conftest import create_topics, free_port, make_settings, running_receiver
from tests.support import post_stripe, read_topic, stripe_event

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
