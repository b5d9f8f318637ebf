"""The figures of a bench run: one value per measured window, and their medians per target."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

MAX = "max"  # closed loop at a fixed concurrency: as fast as the target goes
LATENCY = "latency"  # open loop at a fixed fraction of the measured maximum


@dataclass(frozen=True, slots=True)
class Window:
    """One measured window of one target (R0, R2 or P0)."""

    target: str
    mode: str  # MAX or LATENCY
    round: int
    ok: int  # 2xx answers (P0: acknowledged records)
    errors: int  # other answers, socket errors and timeouts (P0: failed sends)
    seconds: float
    target_cpu: float  # CPU seconds of the server process (P0: of the producer process)
    broker_cpu: float  # CPU seconds of the Kafka broker
    loadgen_cpu: float  # CPU seconds of the load generator (P0: 0, it is its own load)
    machine_busy: float  # CPU seconds of every process on the machine
    machine_steal: float  # CPU seconds the hypervisor gave to other guests
    p50_ms: float | None = None
    p99_ms: float | None = None
    offered_rate: float | None = None  # LATENCY: the rate the open loop sent at
    dispatch_lag_ms: float | None = None  # LATENCY: how far the open loop fell behind, at most
    repeated: int = 0  # times wrk started over on its pool of deliveries (repeated records)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds

    @property
    def cpu_ms(self) -> float:
        """CPU milliseconds of the target per successful request (P0: per record)."""
        return 1000 * self.target_cpu / max(self.ok, 1)

    @property
    def broker_cpu_ms(self) -> float:
        return 1000 * self.broker_cpu / max(self.ok, 1)

    @property
    def busy_cores(self) -> float:
        """Cores the target kept busy; near 1.0 the single-threaded target is CPU-bound."""
        return self.target_cpu / self.seconds

    @property
    def foreign_cores(self) -> float:
        """Cores busy with anything but target, broker and load generator: the noise."""
        ours = self.target_cpu + self.broker_cpu + self.loadgen_cpu
        return max(self.machine_busy - ours, 0.0) / self.seconds


@dataclass(frozen=True, slots=True)
class TargetSummary:
    """Medians of one target's windows; spreads show how noisy the machine was."""

    target: str
    rate: float  # MAX windows
    rate_min: float
    rate_max: float
    cpu_ms: float  # at the maximum
    busy_cores: float  # at the maximum: the target's CPU seconds per second
    broker_cpu_ms: float  # at the maximum
    errors: int  # over every window
    repeated: int
    latency_rate: float | None = None  # LATENCY windows: the offered rate
    p50_ms: float | None = None
    p99_ms: float | None = None
    latency_cpu_ms: float | None = None  # CPU per request at that rate


def _median(values: Sequence[float]) -> float:
    return statistics.median(values)


def _optional_median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def summarize(target: str, windows: Sequence[Window]) -> TargetSummary:
    at_max = [w for w in windows if w.target == target and w.mode == MAX]
    at_rate = [w for w in windows if w.target == target and w.mode == LATENCY]
    if not at_max:
        raise ValueError(f"no {MAX} window of {target}")
    mine = at_max + at_rate
    return TargetSummary(
        target=target,
        rate=_median([w.rate for w in at_max]),
        rate_min=min(w.rate for w in at_max),
        rate_max=max(w.rate for w in at_max),
        cpu_ms=_median([w.cpu_ms for w in at_max]),
        busy_cores=_median([w.busy_cores for w in at_max]),
        broker_cpu_ms=_median([w.broker_cpu_ms for w in at_max]),
        errors=sum(w.errors for w in mine),
        repeated=sum(w.repeated for w in mine),
        latency_rate=_optional_median([w.offered_rate for w in at_rate]),
        p50_ms=_optional_median([w.p50_ms for w in at_rate]),
        p99_ms=_optional_median([w.p99_ms for w in at_rate]),
        latency_cpu_ms=_optional_median([w.cpu_ms for w in at_rate]) if at_rate else None,
    )


def paired_ratios(windows: Sequence[Window], numerator: str, denominator: str) -> list[float]:
    """``numerator / denominator`` throughput of each round: drift hits both sides of a pair."""
    rates = {(w.target, w.round): w.rate for w in windows if w.mode == MAX}
    rounds = sorted({r for (t, r) in rates if t == numerator})
    return [rates[numerator, r] / rates[denominator, r] for r in rounds
            if (denominator, r) in rates and rates[denominator, r] > 0]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a run found: per-target summaries, the R2/R0 ratio and the noise it ran in."""

    summaries: dict[str, TargetSummary]
    ratio: float  # median of the paired per-round R2/R0 throughput ratios
    ratio_min: float
    ratio_max: float
    cpu_ratio: float  # R0 CPU per request / R2 CPU per request: R2/R0 when both are CPU-bound
    foreign_cores: float  # median over every window
    steal_share: float  # steal / (busy + steal), over every window

    @classmethod
    def of(cls, windows: Sequence[Window], targets: Sequence[str]) -> Outcome:
        summaries = {t: summarize(t, windows) for t in targets}
        ratios = paired_ratios(windows, "R2", "R0")
        steal = sum(w.machine_steal for w in windows)
        busy = sum(w.machine_busy for w in windows)
        return cls(
            summaries=summaries,
            ratio=_median(ratios),
            ratio_min=min(ratios),
            ratio_max=max(ratios),
            cpu_ratio=summaries["R0"].cpu_ms / summaries["R2"].cpu_ms,
            foreign_cores=_median([w.foreign_cores for w in windows]),
            steal_share=steal / (busy + steal) if busy + steal > 0 else 0.0,
        )
