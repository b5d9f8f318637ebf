"""Open-loop load at a fixed rate, for latency at a given fraction of the maximum.

``python -m bench.openloop --port P --rate R --duration S --connections C --deliveries FILE``

wrk is closed-loop (each connection waits for its answer before sending again), so when the server
slows down it sends less and its latencies look better than a PSP would see; Debian has no wrk2.
This generator sends request i at ``start + i / rate`` whatever the answers do, over up to C
keep-alive connections (HTTP/1.1, no pipelining). A request that finds every connection busy waits
in a queue, and that wait counts towards its latency.

Latency is measured from the moment the request was dispatched (its scheduled time, or later when
this process's timer woke up late: uvloop timers have 1 ms resolution, so requests go out in small
bursts) to the last byte of the answer. The largest dispatch lag is reported, so a starved
generator shows. Bounded: exactly ``rate * duration`` requests, and a deadline of ``duration +
timeout``; unanswered requests then count as timeouts.

Prints JSON lines on stdout: ``{"event": "start"}`` once connected, then ``{"event": "done", ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from uvicorn.loops.auto import auto_loop_factory

from bench import deliveries

HOST = "127.0.0.1"
_HEAD_END = b"\r\n\r\n"


def request_bytes(delivery: deliveries.Delivery, port: int) -> bytes:
    head = [f"POST {deliveries.PATH} HTTP/1.1", f"host: {HOST}:{port}"]
    head += [f"{name}: {value}" for name, value in delivery.headers().items()]
    head.append(f"content-length: {len(delivery.body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + delivery.body


def _parse_response(buffer: bytearray) -> int | None:
    """The status of the complete response at the start of ``buffer`` (then removed), else None."""
    head_end = buffer.find(_HEAD_END)
    if head_end < 0:
        return None
    head = bytes(buffer[:head_end]).decode("latin-1").split("\r\n")
    length = 0
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    end = head_end + len(_HEAD_END) + length
    if len(buffer) < end:
        return None
    del buffer[:end]
    return int(head[0].split(" ", 2)[1])


class Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self, on_answer: Callable[[Connection, int | None], None]) -> None:
        self._on_answer = on_answer
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self.sent_at = 0.0  # dispatch time of the request in flight
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self._transport = cast(asyncio.Transport, transport)

    def send(self, data: bytes, dispatched_at: float) -> None:
        if self._transport is None or self._transport.is_closing():
            self._on_answer(self, None)
            return
        self.busy = True
        self.sent_at = dispatched_at
        self._transport.write(data)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        status = _parse_response(self._buffer)
        if status is not None and self.busy:
            self.busy = False
            self._on_answer(self, status)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self.busy:
            self.busy = False
            self._on_answer(self, None)


@dataclass(slots=True)
class Tally:
    """What came back: latencies of 2xx answers and counts of everything else."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    answered: int = 0
    max_lag: float = 0.0  # largest delay between a request's scheduled and dispatch time


class OpenLoop:
    """Dispatches requests on schedule onto idle connections, queueing when all are busy."""

    def __init__(self, requests: Sequence[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self._requests = requests
        self._loop = loop
        self._next = 0
        self._idle: collections.deque[Connection] = collections.deque()
        self._queue: collections.deque[float] = collections.deque()  # dispatch times
        self.tally = Tally()
        self.finished = asyncio.Event()
        self.total = 0

    async def connect(self, port: int, count: int) -> None:
        for _ in range(count):
            _, conn = await self._loop.create_connection(
                lambda: Connection(self._answered), HOST, port
            )
            self._idle.append(conn)

    async def run(self, rate: float, total: int) -> None:
        # perf_counter, not loop.time(): uvloop's clock only moves in whole milliseconds
        self.total = total
        start = time.perf_counter()
        for index in range(total):
            scheduled = start + index / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.perf_counter()
            self.tally.max_lag = max(self.tally.max_lag, now - scheduled)
            self._dispatch(now)

    def _dispatch(self, dispatched_at: float) -> None:
        if self._idle:
            self._send(self._idle.popleft(), dispatched_at)
        else:
            self._queue.append(dispatched_at)

    def _send(self, conn: Connection, dispatched_at: float) -> None:
        data = self._requests[self._next % len(self._requests)]
        self._next += 1
        conn.send(data, dispatched_at)

    def _answered(self, conn: Connection, status: int | None) -> None:
        tally = self.tally
        tally.answered += 1
        if status is not None and 200 <= status < 300:
            tally.latencies.append(time.perf_counter() - conn.sent_at)
        else:
            tally.errors += 1
        if tally.answered >= self.total > 0:
            self.finished.set()
        if status is None:
            return  # the connection is gone; the remaining ones carry the load
        if self._queue:
            self._send(conn, self._queue.popleft())
        else:
            self._idle.append(conn)


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values)) - 1))
    return sorted_values[rank]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _emit(event: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


async def measure(port: int, rate: float, duration: float, connections: int,
                  requests: Sequence[bytes], timeout: float) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    openloop = OpenLoop(requests, loop)
    await openloop.connect(port, connections)
    _emit({"event": "start"})
    total = max(1, int(rate * duration))
    started, cpu_before = time.perf_counter(), _cpu_seconds()
    await openloop.run(rate, total)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(openloop.finished.wait(), timeout)
    elapsed, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_before
    tally = openloop.tally
    latencies = sorted(tally.latencies)
    return {
        "event": "done",
        "offered_rate": rate,
        "sent": total,
        "ok": len(latencies),
        "errors": tally.errors + (total - tally.answered),  # unanswered count as timeouts
        "seconds": elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": (latencies[-1] if latencies else float("nan")) * 1000,
        "max_dispatch_lag_ms": tally.max_lag * 1000,
        "cpu_seconds": cpu,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.openloop", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, required=True, help="seconds of sending")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--deliveries", type=Path, required=True)
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for the last answers after sending")
    args = parser.parse_args(argv)
    requests = [request_bytes(d, args.port) for d in deliveries.read(args.deliveries)]
    # the event loop uvicorn's "auto" picks for the servers (uvloop when installed)
    with asyncio.Runner(loop_factory=auto_loop_factory()) as runner:
        _emit(runner.run(measure(args.port, args.rate, args.duration, args.connections,
                                 requests, args.timeout)))


if __name__ == "__main__":
    main()
