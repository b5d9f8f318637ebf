"""Publishes a request's records to Kafka and returns only once Kafka acknowledged all of them.

The deadline covers the whole wait: metadata, buffer space and every acknowledgement. When it
passes, the caller answers 503 and the PSP retries; a record that Kafka still writes afterwards is a
duplicate the workers drop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from ingest.errors import PublishFailed, PublishTimeout
from payhooks import kafka
from payhooks.config import KafkaSettings
from payhooks.kafka import Record


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

    async def start(self) -> None:
        producer = kafka.producer(self._settings)
        # start() needs one broker to bootstrap; bound it so a dead broker does not hang start-up
        try:
            await asyncio.wait_for(producer.start(), timeout=30)
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()  # flushes what is still buffered

    async def publish(self, records: Sequence[Record], timeout: float) -> None:
        if self._producer is None:
            raise PublishFailed("the Kafka producer is not started")
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
