"""The worker loop: poll a batch, hand each record to the handler, and commit the outputs and the
input offsets in one Kafka transaction. It moves bytes and offsets only; decisions are the
handler's."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from consumers.errors import Retryable
from consumers.handler import Handler
from payhooks.metrics import ConsumerMetrics

log = structlog.get_logger("payhooks.consumers")

Batch = Mapping[TopicPartition, Sequence[ConsumerRecord]]

_BACKOFF_START, _BACKOFF_MAX = 0.2, 10.0


class Worker:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        handler: Handler,
        metrics: ConsumerMetrics,
        *,
        group_id: str,
        batch_max_records: int,
        poll_timeout_ms: int,
    ) -> None:
        self._consumer = consumer
        self._producer = producer
        self._handler = handler
        self._metrics = metrics
        self._group_id = group_id
        self._batch_max = batch_max_records
        self._poll_ms = poll_timeout_ms

    async def run(self, stop: asyncio.Event) -> None:
        """Process batches until ``stop`` is set; then finish the batch at hand and close."""
        await self._producer.start()
        await self._consumer.start()
        log.info("worker_started", group_id=self._group_id)
        backoff = _BACKOFF_START
        try:
            while not stop.is_set():
                batch = await self._consumer.getmany(
                    timeout_ms=self._poll_ms, max_records=self._batch_max
                )
                if not batch:
                    continue
                try:
                    await self._process(batch)
                    backoff = _BACKOFF_START
                except (Retryable, KafkaError) as exc:
                    # nothing of the batch is committed: rewind and try the same records again
                    log.warning("batch_retry", error=type(exc).__name__, detail=str(exc),
                                backoff_seconds=backoff)
                    self._rewind(batch)
                    await _sleep_unless(stop, backoff)
                    backoff = min(backoff * 2, _BACKOFF_MAX)
        finally:
            # shutdown sequence: the open transaction is finished or aborted above; leave the
            # group (partitions move to the other workers), then close the producer
            await self._consumer.stop()
            await self._producer.stop()
            log.info("worker_stopped")

    async def _process(self, batch: Batch) -> None:
        started = time.perf_counter()
        async with self._producer.transaction():
            for records in batch.values():
                for record in records:
                    outcome = await self._handler.handle(record)
                    self._metrics.records.labels(outcome.name).inc()
                    for out in outcome.outputs:
                        await self._producer.send(
                            out.topic, out.value, key=out.key, headers=list(out.headers)
                        )
                    log.debug("record_handled", outcome=outcome.name, event_id=outcome.event_id,
                              partition=record.partition, offset=record.offset)
            # offsets of the next records to read, committed inside the same transaction
            await self._producer.send_offsets_to_transaction(
                {tp: records[-1].offset + 1 for tp, records in batch.items()}, self._group_id
            )
        self._metrics.batch_seconds.observe(time.perf_counter() - started)

    def _rewind(self, batch: Batch) -> None:
        for tp, records in batch.items():
            self._consumer.seek(tp, records[0].offset)


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
