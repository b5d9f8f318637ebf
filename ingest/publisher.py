"""Publishes a request's records to Kafka and returns only once Kafka acknowledged all of them.

The deadline covers the whole wait: metadata, buffer space and every acknowledgement. When it
passes, the caller answers 503 and the PSP retries; a record that Kafka still writes afterwards is a
duplicate the workers drop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Protocol

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from ingest.errors import PublishFailed, PublishTimeout
from payhooks import kafka
from payhooks.config import KafkaSettings
from payhooks.kafka import Record

log = structlog.get_logger("payhooks.ingest")

_RECONNECT_START, _RECONNECT_MAX = 1.0, 30.0  # seconds between connection attempts


class Publisher(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def publish(self, records: Sequence[Record], timeout: float) -> None: ...
    async def ready(self) -> bool: ...


class KafkaPublisher:
    """The real publisher over one idempotent ``acks=all`` producer shared by all requests.

    The producer is created in ``start`` (inside the running event loop, as aiokafka requires),
    which the receiver's lifespan calls.
    """

    def __init__(self, settings: KafkaSettings, readiness_timeout: float = 2.0) -> None:
        self._settings = settings
        self._readiness_timeout = readiness_timeout
        self._producer: AIOKafkaProducer | None = None
        self._ready_cache: tuple[float, bool] = (0.0, False)
        self._connecting: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect the producer; while Kafka does not answer, keep trying in the background.

        The receiver starts either way: until the producer is connected, /readyz answers 503
        and webhooks get 503 with Retry-After (the PSP retries), instead of the process crashing
        and restarting in a loop through an outage.
        """
        try:
            self._producer = await self._connect()
        except (KafkaError, TimeoutError, OSError) as exc:
            log.warning("kafka_unavailable", error=type(exc).__name__,
                        bootstrap_servers=self._settings.bootstrap_servers)
            self._connecting = asyncio.create_task(self._keep_connecting(), name="kafka-connect")

    async def _connect(self) -> AIOKafkaProducer:
        producer = kafka.producer(self._settings)
        # start() needs one broker to bootstrap; bound it so a dead broker does not hang start-up
        try:
            await asyncio.wait_for(producer.start(), timeout=30)
        except BaseException:
            await producer.stop()
            raise
        return producer

    async def _keep_connecting(self) -> None:
        delay = _RECONNECT_START
        while self._producer is None:
            await asyncio.sleep(delay)
            try:
                self._producer = await self._connect()
            except (KafkaError, TimeoutError, OSError):
                delay = min(delay * 2, _RECONNECT_MAX)
        log.info("kafka_connected", bootstrap_servers=self._settings.bootstrap_servers)

    async def stop(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
            self._connecting = None
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()  # flushes what is still buffered

    async def publish(self, records: Sequence[Record], timeout: float) -> None:
        if self._producer is None:
            raise PublishFailed("not connected to Kafka yet")
        producer = self._producer
        try:
            async with asyncio.timeout(timeout):
                acks = [
                    await producer.send(r.topic, r.value, key=r.key, headers=list(r.headers))
                    for r in records
                ]
                await asyncio.gather(*acks)
        except TimeoutError:
            raise PublishTimeout(
                f"Kafka did not acknowledge {len(records)} record(s) within {timeout:g} s"
            ) from None
        except KafkaError as exc:
            raise PublishFailed(f"Kafka refused the records ({type(exc).__name__})") from exc

    async def ready(self) -> bool:
        """True while the producer can reach the cluster (a metadata round trip, cached 1 s)."""
        if self._producer is None:
            return False
        checked_at, ok = self._ready_cache
        if time.monotonic() - checked_at < 1.0:
            return ok
        try:
            ok = bool(
                await asyncio.wait_for(
                    self._producer.client.force_metadata_update(), self._readiness_timeout
                )
            )
        except (TimeoutError, KafkaError):
            ok = False
        self._ready_cache = (time.monotonic(), ok)
        return ok
