"""Rebuilds Redis from ``payhooks.snapshots`` when Redis restarted, failed over or came back empty.

Redis is trusted only while ``meta:ready`` holds the run_id of the server answering; every write
checks it (:mod:`consumers.store`), so after a restart no worker changes anything until one of
them has rebuilt Redis to exactly the state Kafka committed:

1. take the rebuild lock (the other workers wait for ``meta:ready``);
2. wait until ``payhooks.snapshots`` has no open transaction (a worker may still be committing
   outputs decided before the restart), so the committed end is final;
3. delete every payhooks key (stale decisions of aborted batches must not be re-emitted);
4. load the newest snapshot of every payment, and the parked index, from the topic;
5. set ``meta:ready`` to this server's run_id and release the lock.
"""

from __future__ import annotations

import asyncio
import secrets
import time

import structlog
from aiokafka import TopicPartition
from redis.exceptions import RedisError

from consumers.codec import snapshot_from_json
from consumers.errors import Retryable
from consumers.state import oldest_parked_at
from consumers.store import PaymentStore
from payhooks import kafka
from payhooks.config import KafkaSettings
from schemas import wire

log = structlog.get_logger("payhooks.consumers")

_LOCK_SECONDS = 300
_OPEN_TXN_WAIT_SECONDS = 90  # longer than the producers' transaction timeout (60 s)


async def ensure_ready(store: PaymentStore, settings: KafkaSettings, topic: str,
                       timeout: float = 600.0) -> bool:
    """Return once Redis is trusted; True when this call rebuilt it."""
    deadline = time.monotonic() + timeout
    token = secrets.token_hex(8)
    lock_key = store.prefix + wire.REDIS_REBUILD_LOCK
    while not await store.ready():
        if time.monotonic() > deadline:
            raise Retryable("Redis was not rebuilt in time")
        try:
            got_lock = await store.redis.set(lock_key, token, nx=True, ex=_LOCK_SECONDS)
        except RedisError as exc:
            raise Retryable(f"Redis unavailable ({type(exc).__name__})") from exc
        if not got_lock:
            await asyncio.sleep(0.5)  # another worker is rebuilding
            continue
        try:
            await _rebuild(store, settings, topic)
            return True
        finally:
            await store.redis.delete(lock_key)
    return False


async def _rebuild(store: PaymentStore, settings: KafkaSettings, topic: str) -> None:
    started = time.monotonic()
    log.warning("redis_rebuild_started", topic=topic)
    ends = await _settled_ends(settings, topic)
    await _delete_prefix(store)
    consumer = kafka.consumer(settings, group_id=None, enable_auto_commit=False)
    await consumer.start()
    loaded = parked = 0
    try:
        partitions = list(ends)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        remaining = {tp for tp, end in ends.items() if end > 0}
        while remaining:
            batch = await consumer.getmany(timeout_ms=1000, max_records=2000)
            pipe = store.redis.pipeline(transaction=False)
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= ends[tp] or record.value is None:
                        continue
                    snap, rev = snapshot_from_json(record.value)
                    pipe.hset(store.snapshot_key(snap.payment_id),
                              mapping={"rev": str(rev), "doc": record.value})
                    oldest = oldest_parked_at(snap)
                    if oldest is not None:
                        pipe.zadd(store.parked_key, {snap.payment_id: oldest.timestamp()})
                        parked += 1
                    else:
                        pipe.zrem(store.parked_key, snap.payment_id)
                    loaded += 1
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            await pipe.execute()
    finally:
        await consumer.stop()
    info = await store.redis.info("server")
    await store.redis.set(store.ready_key, info["run_id"])
    log.warning("redis_rebuild_finished", snapshots=loaded, parked_payments=parked,
                seconds=round(time.monotonic() - started, 2))


async def _settled_ends(settings: KafkaSettings, topic: str) -> dict[TopicPartition, int]:
    """Committed end offsets once no transaction is open on ``topic`` (LSO == high watermark)."""
    committed = kafka.consumer(settings, group_id=None)  # read_committed: end = LSO
    uncommitted = kafka.consumer(settings, group_id=None, isolation_level="read_uncommitted")
    numbers = await kafka.partitions_of(settings, topic)
    if not numbers:
        raise Retryable(f"topic {topic} does not exist (create it: payhooks topics apply)")
    await committed.start()
    await uncommitted.start()
    try:
        partitions = [TopicPartition(topic, p) for p in numbers]
        deadline = time.monotonic() + _OPEN_TXN_WAIT_SECONDS
        while True:
            lso = await committed.end_offsets(partitions)
            high = await uncommitted.end_offsets(partitions)
            if lso == high or time.monotonic() > deadline:
                if lso != high:
                    log.error("redis_rebuild_open_transactions", topic=topic)
                return dict(lso)
            await asyncio.sleep(0.5)
    finally:
        await committed.stop()
        await uncommitted.stop()


async def _delete_prefix(store: PaymentStore) -> None:
    batch: list[bytes] = []
    async for key in store.redis.scan_iter(match=f"{store.prefix}*", count=1000):
        if key.decode().endswith(wire.REDIS_REBUILD_LOCK):
            continue
        batch.append(key)
        if len(batch) >= 1000:
            await store.redis.delete(*batch)
            batch.clear()
    if batch:
        await store.redis.delete(*batch)
