"""Builds and runs the two long-running services from settings: the receiver and the workers."""

from __future__ import annotations

import asyncio
import signal

import structlog
import uvicorn
from prometheus_client import CollectorRegistry, start_http_server
from redis.asyncio import Redis

from consumers.worker import Worker
from ingest.app import create_app
from ingest.publisher import KafkaPublisher
from payhooks import tracing as tracing_mod
from payhooks.config import Settings
from payhooks.metrics import ConsumerMetrics

log = structlog.get_logger("payhooks")


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the receiver under uvicorn until SIGINT/SIGTERM.

    Shutdown (uvicorn, then our lifespan): stop accepting connections, let in-flight requests
    finish (up to 30 s), then flush and close the Kafka producer; last, export the spans still
    buffered (when tracing is on).
    """
    tracing = tracing_mod.build(settings.tracing, "receiver")
    app = create_app(settings, KafkaPublisher(settings.kafka), tracing=tracing)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # our structlog set-up owns logging
        access_log=False,  # request lines are logged by the route, without bodies
        timeout_graceful_shutdown=30,
        lifespan="on",
    )
    try:
        uvicorn.Server(config).run()
    finally:
        if tracing is not None:
            tracing.shutdown()


async def consume(settings: Settings, metrics_port: int | None = None,
                  metrics_host: str = "127.0.0.1") -> None:
    """Run one worker of the group until SIGINT/SIGTERM; on the way out, close Redis and export
    the spans still buffered (when tracing is on)."""
    registry = CollectorRegistry()
    if metrics_port is not None:
        start_http_server(metrics_port, addr=metrics_host, registry=registry)
    redis = Redis.from_url(settings.redis.url)
    tracing = tracing_mod.build(settings.tracing, "worker")
    worker = Worker(settings, redis, ConsumerMetrics(registry), tracing)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await worker.run(stop)
    finally:
        await redis.aclose()
        if tracing is not None:
            await asyncio.to_thread(tracing.shutdown)  # blocks while the exporter flushes
