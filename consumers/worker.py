"""The worker loop: poll a batch, hand each record to the handler, and commit each partition's
outputs with its input offsets in one Kafka transaction. It moves bytes and offsets only;
decisions are the handler's.

Every input partition has its own transactional producer, ``transactional.id =
{group}.{topic}.{partition}``. When a partition moves to another worker, that worker's producer
starts with the same id, which fences the old one: a zombie that still holds the partition in its
head can no longer commit anything (aiokafka commits offsets the pre-KIP-447 way, so per-partition
ids are what makes fencing work). Partitions are processed concurrently, records of one partition
(so of one payment) strictly in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.structs import ConsumerRecord
from redis.asyncio import Redis
from redis.exceptions import RedisError

from consumers import failpoints, outputs, rebuild
from consumers.errors import Retryable
from consumers.handler import Handler, tick_record
from consumers.state import Transition
from consumers.store import Conflict, PaymentStore, StoredDecision
from payhooks import kafka
from payhooks.config import Settings
from payhooks.kafka import Record
from payhooks.metrics import ConsumerMetrics
from payhooks.tracing import Tracing, header_traceparent
from schemas import wire

log = structlog.get_logger("payhooks.consumers")

Batch = Mapping[TopicPartition, Sequence[ConsumerRecord]]

_BACKOFF_START, _BACKOFF_MAX = 0.2, 10.0
_TICK_INTERVAL = 5.0  # how often the ticker looks for expired parked events
_REACHABLE_TIMEOUT = 5.0  # seconds a metadata round trip may take before Kafka counts as gone
_TICK_QUIET = 60.0  # a payment ticked is not ticked again for this long


class Worker:
    def __init__(self, settings: Settings, redis: Redis, metrics: ConsumerMetrics,
                 tracing: Tracing | None = None) -> None:
        self._settings = settings
        self._tracing = tracing  # None: off
        self._group = settings.consumer.group_id
        self._topic = settings.topics.raw
        self._metrics = metrics
        self.store = PaymentStore(redis, settings.redis.key_prefix,
                                  decision_ttl_seconds=settings.consumer.dedupe_ttl_seconds)
        window = timedelta(seconds=settings.consumer.parking_window_seconds)
        self._window = window
        self._handler = Handler(settings.topics, self.store, window,
                                on_transition=self._count_transition)
        metrics.parking_window.set(window.total_seconds())
        self._producers: dict[TopicPartition, AIOKafkaProducer] = {}
        self._batch_lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._ticked: dict[str, float] = {}
        self._kafka_reachable = True  # until the ticker's first look says otherwise

    def _count_transition(self, transition: Transition) -> None:
        self._metrics.transitions.labels(transition.to_state,
                                         "true" if transition.inferred else "false").inc()

    # --- lifecycle -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Process batches until ``stop`` is set, then shut down in order."""
        session = self._settings.consumer.session_timeout_ms
        consumer = kafka.consumer(self._settings.kafka, group_id=self._group,
                                  max_poll_interval_ms=300_000, session_timeout_ms=session,
                                  heartbeat_interval_ms=max(100, session // 3))
        self._consumer = consumer
        if not await self._start_consumer(consumer, stop):
            return  # stopped before Kafka ever answered
        consumer.subscribe([self._topic], listener=_Listener(self))
        ticker = asyncio.create_task(self._tick_loop(stop), name="parking-ticker")
        log.info("worker_started", group_id=self._group)
        backoff = _BACKOFF_START
        try:
            while not stop.is_set():
                try:
                    if await rebuild.ensure_ready(self.store, self._settings.kafka,
                                                  self._settings.topics.snapshots):
                        self._metrics.rebuilds.inc()
                    # ready while Redis is trusted and the ticker's last look found Kafka
                    # (getmany alone does not notice a broker gone while the worker is idle)
                    self._metrics.ready.set(1 if self._kafka_reachable else 0)
                    batch = await consumer.getmany(
                        timeout_ms=self._settings.consumer.poll_timeout_ms,
                        max_records=self._settings.consumer.batch_max_records)
                    if batch:
                        failpoints.reached("after_poll")
                        await self._process(batch)
                    backoff = _BACKOFF_START
                except (Retryable, KafkaError) as exc:
                    self._metrics.ready.set(0)
                    log.warning("worker_retry", error=type(exc).__name__, detail=str(exc)[:200],
                                backoff_seconds=backoff)
                    await _sleep_unless(stop, backoff)
                    backoff = min(backoff * 2, _BACKOFF_MAX)
        finally:
            # shutdown: the batch at hand has finished (or was abandoned, uncommitted, above);
            # stop the ticker, leave the group (partitions move to the other workers at once),
            # then close the partition producers
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            await consumer.stop()
            await self._close_producers(list(self._producers))
            self._metrics.ready.set(0)
            log.info("worker_stopped")

    async def _start_consumer(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> bool:
        """Start the consumer, retrying with backoff while Kafka does not answer (a worker
        started during an outage waits, not ready, instead of crashing); False if stopped."""
        backoff = _BACKOFF_START
        while not stop.is_set():
            try:
                await consumer.start()
            except (KafkaError, OSError) as exc:
                self._metrics.ready.set(0)
                log.warning("kafka_unavailable", error=type(exc).__name__,
                            bootstrap_servers=self._settings.kafka.bootstrap_servers,
                            backoff_seconds=backoff)
                await _sleep_unless(stop, backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
            else:
                return True
        await consumer.stop()
        return False

    async def producer_for(self, tp: TopicPartition) -> AIOKafkaProducer:
        """The partition's transactional producer, started on first use."""
        producer = self._producers.get(tp)
        if producer is None:
            producer = kafka.producer(
                self._settings.kafka,
                transactional_id=f"{self._group}.{tp.topic}.{tp.partition}",
                transaction_timeout_ms=60_000,
            )
            try:
                await producer.start()  # init_transactions: fences the partition's previous owner
            except BaseException:
                await producer.stop()
                raise
            self._producers[tp] = producer
        return producer

    async def close_producers(self, partitions: Sequence[TopicPartition]) -> None:
        async with self._batch_lock:  # let the batch in flight finish first
            await self._close_producers(partitions)

    async def _close_producers(self, partitions: Sequence[TopicPartition]) -> None:
        for tp in partitions:
            producer = self._producers.pop(tp, None)
            if producer is not None:
                with contextlib.suppress(KafkaError):
                    await producer.stop()

    # --- batches -------------------------------------------------------------------------------

    async def _process(self, batch: Batch) -> None:
        started = time.perf_counter()
        async with self._batch_lock:
            results = await asyncio.gather(
                *(self._process_partition(tp, records) for tp, records in batch.items()),
                return_exceptions=True)
        failed = [(tp, r) for tp, r in zip(batch, results, strict=True) if r is not None]
        for tp, error in failed:
            # nothing of this partition's batch is committed: read the same records again (a
            # partition revoked meanwhile restarts from its committed offset wherever it goes)
            if self._consumer is not None and tp in self._consumer.assignment():
                self._consumer.seek(tp, batch[tp][0].offset)
            cause = _cause(error)
            self._metrics.retries.labels(cause).inc()
            if cause == "fenced":
                log.warning("partition_fenced", partition=tp.partition)
                await self._close_producers([tp])
        self._metrics.batch_seconds.observe(time.perf_counter() - started)
        if failed:
            first = failed[0][1]
            if isinstance(first, Retryable | KafkaError):
                raise first
            raise Retryable(f"partition batch failed ({type(first).__name__}: {first})")

    async def _process_partition(self, tp: TopicPartition, records: Sequence[ConsumerRecord]
                                 ) -> None:
        producer = await self.producer_for(tp)
        started = time.perf_counter()
        async with producer.transaction():
            # one partition batch: decided and stored in Redis in two round trips, then sent
            decided_from = time.time_ns()
            decisions = await self._handler.handle_batch(records, _bind_record_context)
            decided_until = time.time_ns()
            failpoints.reached("after_redis")
            for record, decision in zip(records, decisions, strict=True):
                _bind_record_context(record)
                self._count(decision)
                if self._tracing is None:
                    await _send(producer, decision.records)
                else:
                    with self._tracing.consume(record, self._group, decided_from):
                        self._tracing.applied(decision.outcomes, decision.redelivered,
                                              decided_from, decided_until, len(records))
                        await self._send_traced(producer, record, decision, self._tracing)
            failpoints.reached("after_produce")
            await producer.send_offsets_to_transaction(
                {tp: records[-1].offset + 1}, self._group)
            failpoints.reached("before_commit")
            if failpoints.armed("during_commit"):  # die while the commit is on the wire
                asyncio.get_running_loop().call_later(0.001, failpoints.reached, "during_commit")
        self._metrics.transaction_seconds.observe(time.perf_counter() - started)
        # committed: the batch's stored decisions are never needed again (best effort: they
        # expire anyway)
        with contextlib.suppress(RedisError, OSError):
            await self.store.forget([self.store.decision_key(r.topic, r.partition, r.offset)
                                     for r in records])
        if self._consumer is not None:
            high = self._consumer.highwater(tp)
            if high is not None:
                self._metrics.lag.labels(str(tp.partition)).set(
                    max(0, high - records[-1].offset - 1))

    @staticmethod
    async def _send_traced(producer: AIOKafkaProducer, record: ConsumerRecord,
                           decision: StoredDecision, tracing: Tracing) -> None:
        """Send one record's outputs in a produce span; they carry its trace context instead of
        the input's."""
        with tracing.produce([out.topic for out in decision.records]) as context:
            await _send(producer, outputs.with_traceparent(
                decision.records, header_traceparent(record.headers), context))

    def _count(self, decision: StoredDecision) -> None:
        for name in ("redelivered",) if decision.redelivered else decision.outcomes:
            self._metrics.records.labels(name).inc()

    def forget_lag(self, partitions: Iterable[TopicPartition]) -> None:
        """Stop exporting the lag of partitions this worker no longer owns (their new owner
        reports it; a stale value here would hide or fake lag)."""
        for tp in partitions:
            with contextlib.suppress(KeyError):
                self._metrics.lag.remove(str(tp.partition))

    # --- parking expiry ------------------------------------------------------------------------

    async def _tick_loop(self, stop: asyncio.Event) -> None:
        """Ask for the release of expired parked events: one tick record per due payment.

        Ticks go to the raw topic under the payment's key, so they are processed in order with
        the payment's other records and with the same effectively-once machinery. Ticking is
        at-least-once; a tick with nothing due changes nothing.
        """
        producer: AIOKafkaProducer | None = None
        lock_key = self.store.prefix + "meta:ticker"
        try:
            while not stop.is_set():
                await _sleep_unless(stop, _TICK_INTERVAL)
                if producer is None:
                    producer = await _started_or_none(kafka.producer(self._settings.kafka))
                self._kafka_reachable = producer is not None and await _reachable(producer)
                if not self._kafka_reachable:
                    self._metrics.ready.set(0)
                    continue
                assert producer is not None
                with contextlib.suppress(Retryable, KafkaError, OSError):
                    await self._tick_once(producer, lock_key)
        finally:
            if producer is not None:
                await producer.stop()

    async def _tick_once(self, producer: AIOKafkaProducer, lock_key: str) -> None:
        count, oldest = await self.store.parked_stats()
        now = time.time()
        self._metrics.parked_payments.set(count)
        self._metrics.oldest_parked_age.set(0 if oldest is None else max(0.0, now - oldest))
        # one worker ticks at a time (the lock expires if it dies)
        if not await self.store.redis.set(lock_key, "1", nx=True, ex=int(_TICK_INTERVAL * 3)):
            return
        due = await self.store.parked_due(now - self._window.total_seconds())
        self._ticked = {p: t for p, t in self._ticked.items() if now - t < _TICK_QUIET}
        for payment_id in due:
            if payment_id in self._ticked:
                continue
            tick = tick_record(self._topic, payment_id)
            await producer.send_and_wait(tick.topic, tick.value, key=tick.key,
                                         headers=list(tick.headers))
            self._ticked[payment_id] = now


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: Worker) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._worker.close_producers(list(revoked))
        self._worker.forget_lag(revoked)
        log.info("partitions_revoked", partitions=sorted(tp.partition for tp in revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        # producers start on first use (fencing the previous owner then), so an unavailable
        # transaction coordinator here does not lose the assignment
        log.info("partitions_assigned", partitions=sorted(tp.partition for tp in assigned))


async def _started_or_none(producer: AIOKafkaProducer) -> AIOKafkaProducer | None:
    """``producer`` started, or None (and stopped) when Kafka does not answer."""
    try:
        await producer.start()
    except (KafkaError, OSError):
        await producer.stop()
        return None
    return producer


async def _reachable(producer: AIOKafkaProducer) -> bool:
    """Whether a metadata round trip to the cluster succeeds within a few seconds."""
    try:
        return bool(await asyncio.wait_for(producer.client.force_metadata_update(),
                                           _REACHABLE_TIMEOUT))
    except (TimeoutError, KafkaError, OSError):
        return False


async def _send(producer: AIOKafkaProducer, records: Iterable[Record]) -> None:
    """Send output records into the producer's open transaction."""
    for out in records:
        await producer.send(out.topic, out.value, key=out.key, headers=list(out.headers))


def _bind_record_context(record: ConsumerRecord) -> None:
    """Delivery id, trace context and source coordinates on every log line about this record."""
    headers = dict(record.headers or ())
    structlog.contextvars.bind_contextvars(
        delivery_id=headers.get(wire.HEADER_DELIVERY_ID, b"").decode("utf-8", "replace") or None,
        traceparent=headers.get(wire.HEADER_TRACEPARENT, b"").decode("ascii", "replace") or None,
        partition=record.partition,
        offset=record.offset,
    )


def _cause(error: BaseException) -> str:
    if isinstance(error, ProducerFenced):
        return "fenced"
    if isinstance(error, Conflict):
        return "conflict"
    if isinstance(error, KafkaError):
        return "kafka"
    return "redis"


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
