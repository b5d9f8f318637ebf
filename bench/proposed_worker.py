"""C1 with the batch handler: ``payhooks`` with ``Worker._process_partition`` deciding a partition's
batch through ``Handler.handle_batch`` (two Redis round trips per batch, not three per record).

``python -m bench.proposed_worker --config TOML consume``

A bench-only stand-in for the change proposed for ``consumers/worker.py`` (same loop, same
transaction, outputs sent in record order after the batch's decisions are stored); it goes away
once the worker calls ``handle_batch`` itself. Tracing spans and the transaction-time metric are
left out here.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from consumers import failpoints
from consumers import worker as worker_module
from consumers.worker import Worker
from payhooks.cli import main


async def _process_partition(self: Worker, tp: TopicPartition,
                             records: Sequence[ConsumerRecord]) -> None:
    producer = await self.producer_for(tp)
    async with producer.transaction():
        decisions = await self._handler.handle_batch(records)
        failpoints.reached("after_redis")
        for record, decision in zip(records, decisions, strict=True):
            worker_module._bind_record_context(record)
            self._count(decision)
            for out in decision.records:
                await producer.send(out.topic, out.value, key=out.key, headers=list(out.headers))
        failpoints.reached("after_produce")
        await producer.send_offsets_to_transaction({tp: records[-1].offset + 1}, self._group)


if __name__ == "__main__":
    Worker._process_partition = _process_partition  # type: ignore[method-assign]
    main()
