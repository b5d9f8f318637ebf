"""P0: the raw aiokafka producer's rate for the receiver's own records, with nothing else around.

``python -m bench.producer --config TOML --deliveries FILE --in-flight N --duration S``

The records are the ones R2 would publish for the same deliveries: each delivery is verified by the
Stripe scheme and turned into its ``webhooks.raw`` record by ``ingest.envelopes.records_for``
(same value size, key distribution and headers), all before timing starts. They are then sent with
the producer ``payhooks.kafka.producer`` builds (idempotent, ``acks=all``, the receiver's linger),
at most N unacknowledged at a time, for S seconds (cycling through the records when they run out,
at most ``MAX_RECORDS`` sends in all).

Prints JSON lines on stdout: ``{"event": "start"}`` when the timed window begins, then
``{"event": "done", "acked": ..., "errors": ..., "seconds": ..., "cpu_seconds": ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import resource
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaProducer
from uvicorn.loops.auto import auto_loop_factory

from bench import deliveries
from ingest.envelopes import records_for, traceparent
from ingest.schemes import RawRequest
from ingest.schemes.stripe import StripeScheme
from payhooks import kafka
from payhooks.config import Settings, load_settings
from payhooks.kafka import Record
from schemas import timefmt

WARM_UP_RECORDS = 200  # metadata, connections and the producer id before the window opens
MAX_RECORDS = 5_000_000  # a bound on the sends of one window, whatever the duration
DRAIN_TIMEOUT = 30.0  # seconds to wait for the last acknowledgements


async def build_records(settings: Settings, path: Path) -> list[Record]:
    """The ``webhooks.raw`` records the receiver would publish for the deliveries in ``path``."""
    scheme = StripeScheme.from_settings(settings.endpoints[deliveries.ENDPOINT])
    records: list[Record] = []
    now = time.time()
    for delivery in deliveries.read(path):
        headers = delivery.headers()
        verified = await scheme.verify(RawRequest(delivery.body, headers), now)
        records += records_for(
            verified,
            endpoint=deliveries.ENDPOINT,
            provider=scheme.provider,
            delivery_id=str(uuid.uuid4()),
            received_at=timefmt.from_unix(now),
            traceparent=traceparent(headers),
            topic=settings.topics.raw,
        )
    return records


@dataclass(slots=True)
class Acks:
    """Counts acknowledgements and frees a slot of the in-flight bound for each one."""

    slots: asyncio.Semaphore
    acked: int = 0
    errors: int = 0

    def done(self, future: asyncio.Future[object]) -> None:
        self.slots.release()
        if future.cancelled() or future.exception() is not None:
            self.errors += 1
        else:
            self.acked += 1


async def send_all(producer: AIOKafkaProducer, records: Iterable[Record], in_flight: int,
                   deadline: float) -> Acks:
    """Send ``records`` in order until the deadline, at most ``in_flight`` unacknowledged."""
    acks = Acks(asyncio.Semaphore(in_flight))
    loop = asyncio.get_running_loop()
    for record in records:
        if loop.time() >= deadline:
            break
        await acks.slots.acquire()
        future = await producer.send(record.topic, record.value, key=record.key,
                                     headers=list(record.headers))
        future.add_done_callback(acks.done)
    # drain: every slot back means every send was acknowledged (or failed)
    async with asyncio.timeout(DRAIN_TIMEOUT):
        for _ in range(in_flight):
            await acks.slots.acquire()
    return acks


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _emit(event: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


async def measure(settings: Settings, path: Path, in_flight: int, duration: float
                  ) -> dict[str, object]:
    records = await build_records(settings, path)
    producer = kafka.producer(settings.kafka)
    await asyncio.wait_for(producer.start(), timeout=30)
    try:
        loop = asyncio.get_running_loop()
        await send_all(producer, records[:WARM_UP_RECORDS], in_flight, loop.time() + duration)
        _emit({"event": "start"})
        started, cpu_before = time.perf_counter(), _cpu_seconds()
        cycled = itertools.islice(itertools.cycle(records), MAX_RECORDS)
        acks = await send_all(producer, cycled, in_flight, loop.time() + duration)
        elapsed, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_before
    finally:
        await producer.stop()
    return {
        "event": "done",
        "acked": acks.acked,
        "errors": acks.errors,
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "value_bytes": sum(len(r.value) for r in records) / max(len(records), 1),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.producer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True, help="the bench's payhooks.toml")
    parser.add_argument("--deliveries", type=Path, required=True)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--duration", type=float, required=True)
    args = parser.parse_args(argv)
    settings = load_settings(args.config)
    # the event loop uvicorn's "auto" picks for the receiver (uvloop when installed)
    with asyncio.Runner(loop_factory=auto_loop_factory()) as runner:
        _emit(runner.run(measure(settings, args.deliveries, args.in_flight, args.duration)))


if __name__ == "__main__":
    main()
