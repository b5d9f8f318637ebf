"""C0: the worker's Kafka loop with no work in it, the floor the real worker is measured against.

``python -m bench.noop_worker --config TOML [--fanout K]``

The same consumer (``payhooks.kafka.consumer``, the worker's group, session and poll settings),
the same ``getmany`` batches of ``consumer.batch_max_records``, the same per-partition
transactional producers (``transactional.id = {group}.{topic}.{partition}``), partitions processed
concurrently with ``asyncio.gather``, and per partition batch one transaction: send the outputs,
``send_offsets_to_transaction``, commit. No Redis, no decoding, no state machine: each input record
becomes K output records carrying the input's key, value and headers, spread over the topics the
real worker writes (events, transitions, state, snapshots), so both write about as many records and
bytes. Runs until SIGTERM or SIGINT, like ``payhooks consume``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from payhooks import kafka
from payhooks.config import Settings, load_settings


class NoopWorker:
    def __init__(self, settings: Settings, fanout: int) -> None:
        self._settings = settings
        self._group = settings.consumer.group_id
        self._fanout = fanout
        t = settings.topics
        self._outputs = (t.events, t.transitions, t.state, t.snapshots)
        self._producers: dict[TopicPartition, AIOKafkaProducer] = {}

    async def run(self, stop: asyncio.Event) -> None:
        session = self._settings.consumer.session_timeout_ms
        consumer = kafka.consumer(self._settings.kafka, group_id=self._group,
                                  max_poll_interval_ms=300_000, session_timeout_ms=session,
                                  heartbeat_interval_ms=max(100, session // 3))
        await consumer.start()
        consumer.subscribe([self._settings.topics.raw])
        try:
            while not stop.is_set():
                batch = await consumer.getmany(
                    timeout_ms=self._settings.consumer.poll_timeout_ms,
                    max_records=self._settings.consumer.batch_max_records)
                if batch:
                    await self._process(batch)
        finally:
            await consumer.stop()
            for producer in self._producers.values():
                await producer.stop()

    async def _process(self, batch: Mapping[TopicPartition, Sequence[ConsumerRecord]]) -> None:
        results = await asyncio.gather(
            *(self._process_partition(tp, records) for tp, records in batch.items()),
            return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _producer_for(self, tp: TopicPartition) -> AIOKafkaProducer:
        producer = self._producers.get(tp)
        if producer is None:
            producer = kafka.producer(
                self._settings.kafka,
                transactional_id=f"{self._group}.{tp.topic}.{tp.partition}",
                transaction_timeout_ms=60_000,
            )
            await producer.start()
            self._producers[tp] = producer
        return producer

    async def _process_partition(self, tp: TopicPartition, records: Sequence[ConsumerRecord]
                                 ) -> None:
        producer = await self._producer_for(tp)
        async with producer.transaction():
            for record in records:
                headers = list(record.headers or ())
                for i in range(self._fanout):
                    topic = self._outputs[i % len(self._outputs)]
                    await producer.send(topic, record.value, key=record.key, headers=headers)
            await producer.send_offsets_to_transaction({tp: records[-1].offset + 1}, self._group)


async def _main(settings: Settings, fanout: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await NoopWorker(settings, fanout).run(stop)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.noop_worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True, help="the round's payhooks.toml")
    parser.add_argument("--fanout", type=int, default=4,
                        help="output records per input record (default 4)")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(load_settings(args.config), args.fanout))  # as `payhooks consume`


if __name__ == "__main__":
    main()
