"""Session fixtures: real Kafka and Redis, and per-test isolation (unique topics, key prefixes).

Where the servers come from, first match wins:
1. ``PAYHOOKS_TEST_KAFKA`` (host:port) and ``PAYHOOKS_TEST_REDIS`` (redis URL): servers you run;
2. testcontainers, when a Docker engine answers;
3. the local stack's own code (``payhooks.stack``): a private broker and redis-server on free ports
   in a temporary folder, stopped at the end of the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import hypothesis
import pytest
import uvicorn
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from starlette.applications import Starlette

from consumers.worker import Worker
from ingest.app import create_app
from ingest.publisher import KafkaPublisher
from payhooks import kafka, stack, topics
from payhooks import logging as plog
from payhooks.config import (
    ConsumerSettings,
    EndpointSettings,
    IngestSettings,
    KafkaSettings,
    RedisSettings,
    Secret,
    Settings,
    TopicSettings,
)
from payhooks.metrics import ConsumerMetrics
from payhooks.tracing import Tracing

STRIPE_SECRET = "whsec_test_3f9a1c0e5b7d4e2a9c8b6f1d0e3a5c7b"
STRIPE_OLD_SECRET = "whsec_test_old_0b1c2d3e4f5a6b7c8d9e0f1a2b3c"

_SECRET_LIKE = re.compile(r"wh(?:sec|pk|sk)_[A-Za-z0-9+/=_]{6,}|Basic [A-Za-z0-9+/=]{8,}")
_HEX_SIGNATURE = re.compile(r"(?<![0-9a-f])[0-9a-f]{40}(?:[0-9a-f]{24})?(?![0-9a-f])")
_DIGIT_RUN = re.compile(r"(?<!\d)\d(?:[ -]?\d){12,18}(?!\d)")


def _luhn(digits: str) -> bool:
    """An independent Luhn check (not the one the redactor uses)."""
    checksum = 0
    for i, d in enumerate(int(c) for c in reversed(digits)):
        checksum += d if i % 2 == 0 else (d * 2) // 10 + (d * 2) % 10
    return checksum % 10 == 0


def leaks(text: str) -> list[str]:
    """Secret-looking strings, HMAC-looking hex digests and Luhn-valid card numbers in ``text``."""
    found = _SECRET_LIKE.findall(text) + _HEX_SIGNATURE.findall(text)
    for match in _DIGIT_RUN.findall(text):
        digits = re.sub(r"[ -]", "", match)
        if 13 <= len(digits) <= 19 and _luhn(digits):
            found.append(match)
    return found


# property tests start an event loop per example; on a loaded 2-core machine the default 200 ms
# deadline fails them for the machine's sake, not the code's
settings_profile = "payhooks"
hypothesis.settings.register_profile(settings_profile, deadline=None)
hypothesis.settings.load_profile(settings_profile)

#: every log line of the test session, rendered by the production processor chain (redaction
#: included); tests/http/test_log_hygiene.py and the session's end scan it for leaks
SESSION_LOGS = io.StringIO()


@pytest.fixture(scope="session", autouse=True)
def production_logging() -> Iterator[io.StringIO]:
    plog.configure("debug", "json", stream=SESSION_LOGS, cache_loggers=False)
    yield SESSION_LOGS
    found = leaks(SESSION_LOGS.getvalue())
    assert not found, f"secrets or card data in the session's logs: {found[:5]}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _docker_engine_answers() -> bool:
    try:
        import docker  # noqa: PLC0415

        docker.from_env(timeout=2).ping()
    except Exception:  # noqa: BLE001  (any failure means: no engine to use)
        return False
    return True


@pytest.fixture(scope="session")
def servers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def kafka_bootstrap(servers_dir: Path) -> Iterator[str]:
    if os.environ.get("PAYHOOKS_TEST_KAFKA"):
        yield os.environ["PAYHOOKS_TEST_KAFKA"]
    elif _docker_engine_answers():
        from testcontainers.kafka import KafkaContainer  # noqa: PLC0415

        with KafkaContainer("confluentinc/cp-kafka:7.7.1").with_kraft() as container:
            yield container.get_bootstrap_server()
    else:
        node = stack.KafkaNode(servers_dir / "kafka", port=free_port(),
                               controller_port=free_port())
        node.start()
        try:
            yield node.bootstrap
        finally:
            node.stop()


@pytest.fixture(scope="session")
def redis_url(servers_dir: Path) -> Iterator[str]:
    if os.environ.get("PAYHOOKS_TEST_REDIS"):
        yield os.environ["PAYHOOKS_TEST_REDIS"]
    elif _docker_engine_answers():
        from testcontainers.redis import RedisContainer  # noqa: PLC0415

        with RedisContainer("redis:7.4") as container:
            host = container.get_container_host_ip()
            yield f"redis://{host}:{container.get_exposed_port(6379)}/0"
    else:
        node = stack.RedisNode(servers_dir / "redis", port=free_port())
        node.start()
        try:
            yield node.url
        finally:
            node.stop()


def make_settings(bootstrap: str, redis_url: str, *, publish_timeout: float = 5.0,
                  max_in_flight: int = 512) -> Settings:
    """Settings isolated to one test: unique topic names, Redis prefix and consumer group."""
    uid = uuid.uuid4().hex[:10]
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, client_id=f"test-{uid}"),
        redis=RedisSettings(url=redis_url, key_prefix=f"test:{uid}:"),
        topics=TopicSettings(**{role: f"t{uid}.{name}"
                                for role, name in TopicSettings().by_role().items()}),
        ingest=IngestSettings(publish_timeout_seconds=publish_timeout,
                              max_in_flight=max_in_flight, retry_after_seconds=5),
        consumer=ConsumerSettings(group_id=f"workers-{uid}", poll_timeout_ms=200),
        endpoints={
            "stripe": EndpointSettings(
                name="stripe", provider="stripe",
                secrets=(Secret(STRIPE_SECRET), Secret(STRIPE_OLD_SECRET)),
            )
        },
        source="<tests>",
    )


async def create_topics(settings: Settings) -> None:
    """The settings' topics, 3 partitions each, and only once the broker describes them all
    (right after creation a fresh broker may still answer "unknown topic" for a moment)."""
    specs = topics.load_specs(settings, partitions=3)
    await topics.apply(settings, specs)
    deadline = time.monotonic() + 30
    for name in settings.topics.by_role().values():
        while not await kafka.partitions_of(settings.kafka, name):
            if time.monotonic() > deadline:
                raise AssertionError(f"topic {name} was created but is not described")
            await asyncio.sleep(0.1)


@pytest.fixture
async def settings(kafka_bootstrap: str, redis_url: str) -> Settings:
    """A test's own topics (3 partitions each), Redis prefix and consumer group."""
    s = make_settings(kafka_bootstrap, redis_url)
    await create_topics(s)
    return s


@contextlib.asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[tuple[str, uvicorn.Server]]:
    """``app`` under uvicorn on a free port: its base URL and the server (to stop it early)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def running_receiver(settings: Settings, tracing: Tracing | None = None
                           ) -> AsyncIterator[str]:
    """The real receiver under uvicorn on a free port, with a real Kafka publisher."""
    app = create_app(settings, KafkaPublisher(settings.kafka), registry=CollectorRegistry(),
                     tracing=tracing)
    async with serving(app) as (url, _server):
        yield url


@pytest.fixture
async def receiver_url(settings: Settings) -> AsyncIterator[str]:
    async with running_receiver(settings) as url:
        yield url


@contextlib.asynccontextmanager
async def running_worker(settings: Settings, redis: Redis, tracing: Tracing | None = None
                         ) -> AsyncIterator[ConsumerMetrics]:
    """One real worker of the settings' group, in this event loop, until the block ends."""
    metrics = ConsumerMetrics(CollectorRegistry())
    worker = Worker(settings, redis, metrics, tracing)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield metrics
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


def with_ingest(settings: Settings, **changes: object) -> Settings:
    return replace(settings, ingest=replace(settings.ingest, **changes))
