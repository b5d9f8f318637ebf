"""Builds and runs the two long-running services from settings: the receiver and the workers."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import uuid

import structlog
import uvicorn
from prometheus_client import CollectorRegistry, start_http_server
from redis.asyncio import Redis

from consumers.handler import Handler
from consumers.store import ClaimStore
from consumers.worker import Worker
from ingest.app import create_app
from ingest.publisher import KafkaPublisher
from payhooks import kafka
from payhooks.config import Settings
from payhooks.metrics import ConsumerMetrics

log = structlog.get_logger("payhooks")


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the receiver under uvicorn until SIGINT/SIGTERM.

    Shutdown (uvicorn, then our lifespan): stop accepting connections, let in-flight requests
    finish (up to 30 s), then flush and close the Kafka producer.
    """
    app = create_app(settings, KafkaPublisher(settings.kafka))
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # our structlog set-up owns logging
        access_log=False,  # request lines are logged by the route, without bodies
        timeout_graceful_shutdown=30,
        lifespan="on",
    )
    uvicorn.Server(config).run()


async def consume(settings: Settings, metrics_port: int | None = None) -> None:
    """Run one worker of the group until SIGINT/SIGTERM."""
    registry = CollectorRegistry()
    if metrics_port is not None:
        start_http_server(metrics_port, addr="127.0.0.1", registry=registry)
    redis = Redis.from_url(settings.redis.url)
    group = settings.consumer.group_id
    worker = Worker(
        kafka.consumer(settings.kafka, settings.topics.raw, group_id=group),
        kafka.producer(
            settings.kafka,
            transactional_id=f"{group}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}",
        ),
        Handler(
            settings.topics,
            ClaimStore(redis, settings.redis.key_prefix, settings.consumer.dedupe_ttl_seconds),
        ),
        ConsumerMetrics(registry),
        group_id=group,
        batch_max_records=settings.consumer.batch_max_records,
        poll_timeout_ms=settings.consumer.poll_timeout_ms,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await worker.run(stop)
    finally:
        await redis.aclose()
