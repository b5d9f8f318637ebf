"""The figures of a worker bench run: one value per pass, what Redis held, and their medians."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from bench.report import Machine


@dataclass(frozen=True, slots=True)
class Pass:
    """One worker process reading a whole pre-filled topic, from its first commit to its last."""

    target: str  # C0 (no-op loop) or C1 (the worker)
    round: int
    records: int  # input records committed during the window
    seconds: float
    worker_cpu: float  # CPU seconds of the worker process
    broker_cpu: float  # of the Kafka broker
    redis_cpu: float  # of redis-server
    machine_busy: float  # of every process on the machine
    machine_steal: float  # given to other guests by the hypervisor
    preloaded: int = 0  # payments in Redis before the pass (scaling passes)
    preload_memory: int = 0  # Redis used_memory those payments took, bytes

    @property
    def rate(self) -> float:
        return self.records / self.seconds

    @property
    def worker_cpu_ms(self) -> float:
        return 1000 * self.worker_cpu / max(self.records, 1)

    @property
    def broker_cpu_ms(self) -> float:
        return 1000 * self.broker_cpu / max(self.records, 1)

    @property
    def redis_cpu_ms(self) -> float:
        return 1000 * self.redis_cpu / max(self.records, 1)

    @property
    def busy_cores(self) -> float:
        return self.worker_cpu / self.seconds

    @property
    def foreign_cores(self) -> float:
        """Cores busy with anything but worker, broker and Redis: the noise (and this bench)."""
        ours = self.worker_cpu + self.broker_cpu + self.redis_cpu
        return max(self.machine_busy - ours, 0.0) / self.seconds


@dataclass(frozen=True, slots=True)
class Memory:
    """What one C1 pass left in Redis."""

    records: int  # input records the pass processed
    payments: int  # snapshot keys
    decisions: int  # decision keys (one per input record that changed or wrote something)
    used_memory_delta: int  # INFO used_memory after minus before the pass, bytes
    snapshot_bytes: float  # mean MEMORY USAGE of a snapshot key (sampled)
    decision_bytes: float  # mean MEMORY USAGE of a decision key (sampled)
    outputs_per_decision: float  # output records a stored decision holds
    output_value_bytes: float  # their value bytes, per decision
    decision_ttl_seconds: int  # TTL left on a decision key right after the pass (-1: none left)
    outputs_per_record: float = 0.0  # records the pass wrote to the output topics, per input

    @property
    def per_payment(self) -> float:
        return self.used_memory_delta / max(self.payments, 1)

    @property
    def per_record(self) -> float:
        return self.used_memory_delta / max(self.records, 1)


@dataclass(frozen=True, slots=True)
class ScalePoint:
    """C1 with ``preloaded`` payments' snapshots already in Redis."""

    preloaded: int
    result: Pass
    memory: Memory

    @property
    def preload_bytes_per_payment(self) -> float:
        return self.result.preload_memory / max(self.preloaded, 1)


@dataclass(frozen=True, slots=True)
class Summary:
    target: str
    rate: float
    rate_min: float
    rate_max: float
    worker_cpu_ms: float
    broker_cpu_ms: float
    redis_cpu_ms: float
    busy_cores: float


def summarize(target: str, passes: Sequence[Pass]) -> Summary:
    mine = [p for p in passes if p.target == target]
    if not mine:
        raise ValueError(f"no pass of {target}")
    return Summary(
        target=target,
        rate=statistics.median(p.rate for p in mine),
        rate_min=min(p.rate for p in mine),
        rate_max=max(p.rate for p in mine),
        worker_cpu_ms=statistics.median(p.worker_cpu_ms for p in mine),
        broker_cpu_ms=statistics.median(p.broker_cpu_ms for p in mine),
        redis_cpu_ms=statistics.median(p.redis_cpu_ms for p in mine),
        busy_cores=statistics.median(p.busy_cores for p in mine),
    )


def paired_ratios(passes: Sequence[Pass]) -> list[float]:
    """C1/C0 throughput of each round (the two passes ran back to back)."""
    rates = {(p.target, p.round): p.rate for p in passes}
    return [rates["C1", r] / rates["C0", r] for r in sorted({p.round for p in passes})
            if ("C1", r) in rates and rates.get(("C0", r), 0) > 0]


@dataclass(frozen=True, slots=True)
class Run:
    passes: list[Pass]
    memories: list[Memory]  # of the main C1 passes
    scale: list[ScalePoint]
    fanout: int  # C0's outputs per input
    records: int  # records in the main topic
    payments: int  # payments in the main topic
    machine: Machine
