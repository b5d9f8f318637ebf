"""What a run reports: the machine it ran on, the figures as Markdown, its BENCHMARKS.md section."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench import sections
from bench.results import Outcome, TargetSummary
from payhooks import stack

START_MARKER = "<!-- bench:receiver:start -->"
END_MARKER = "<!-- bench:receiver:end -->"
TARGET = 0.6  # the goal for R2/R0 throughput

_DESCRIPTIONS = {
    "R0": "R0 minimal Starlette POST",
    "R2": "R2 receiver (verify, envelope, publish, ack)",
    "P0": "P0 raw aiokafka producer",
}


@dataclass(frozen=True, slots=True)
class Machine:
    """Where a run happened; every figure is only comparable with figures from the same line."""

    date: str
    cores: int
    cpu_model: str
    memory_gb: float
    os: str
    kernel: str
    python: str
    uvicorn: str
    loop: str  # the event loop class the servers ran on
    http: str  # uvicorn's HTTP protocol class
    starlette: str
    aiokafka: str
    kafka: str
    java: str
    wrk: str
    load_average: str  # 1/5/15 min, when the run started: above 0.5 the machine was not quiet

    @classmethod
    def probe(cls, loop: str, http: str, load_average: str) -> Machine:
        return cls(
            date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            cores=os.cpu_count() or 0,
            cpu_model=_proc_field("/proc/cpuinfo", "model name") or platform.processor(),
            memory_gb=round(int(_proc_field("/proc/meminfo", "MemTotal").split()[0]) / 2**20, 1),
            os=_os_release(),
            kernel=platform.release(),
            python=platform.python_version(),
            uvicorn=metadata.version("uvicorn"),
            loop=loop,
            http=http,
            starlette=metadata.version("starlette"),
            aiokafka=metadata.version("aiokafka"),
            kafka=stack.KAFKA_VERSION,
            java=_first_line(["java", "-version"]),
            wrk=_first_line(["wrk", "--version"]).split(" [")[0],
            load_average=load_average,
        )

    def line(self) -> str:
        return (
            f"{self.cores} cores {self.cpu_model}, {self.memory_gb:g} GB RAM, {self.os} "
            f"(kernel {self.kernel}), Python {self.python}, uvicorn {self.uvicorn} (one worker, "
            f"no access log, loop {self.loop}, HTTP {self.http}), starlette {self.starlette}, "
            f"aiokafka {self.aiokafka}, Apache Kafka {self.kafka} (private single KRaft node, "
            f"512 MB heap) on {self.java}, {self.wrk}; load average at start {self.load_average}"
        )


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _proc_field(path: str, name: str) -> str:
    for line in Path(path).read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return ""


def _os_release() -> str:
    match = re.search(r'^PRETTY_NAME="?([^"\n]*)', Path("/etc/os-release").read_text(), re.M)
    return match.group(1) if match else platform.system()


def _first_line(argv: list[str]) -> str:
    """The first line a tool prints about its version (java and wrk print it to stderr)."""
    if shutil.which(argv[0]) is None:
        return f"{argv[0]} (not found)"
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)  # noqa: S603
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0].strip() if lines else argv[0]


# --------------------------------------------------------------------------- tables


def _rate(summary: TargetSummary) -> str:
    unit = "records/s" if summary.target == "P0" else "req/s"
    return (f"{summary.rate:,.0f} {unit} [{summary.rate_min:,.0f}-{summary.rate_max:,.0f}]")


def _latency(summary: TargetSummary) -> str:
    if summary.p50_ms is None or summary.p99_ms is None or summary.latency_rate is None:
        return "-"
    return f"{summary.p50_ms:.2f} / {summary.p99_ms:.2f} ms at {summary.latency_rate:,.0f} req/s"


def _cpu(summary: TargetSummary) -> str:
    text = f"{summary.cpu_ms:.3f} ms"
    if summary.latency_cpu_ms is not None:
        text += f" (at 50%: {summary.latency_cpu_ms:.3f} ms)"
    return text


def _busy(summary: TargetSummary) -> str:
    return f"{summary.busy_cores:.2f}"


def _broker(summary: TargetSummary) -> str:
    return "-" if summary.target == "R0" else f"{summary.broker_cpu_ms:.3f} ms"


def _anomalies(summary: TargetSummary) -> str:
    text = f"{summary.errors:,}"
    if summary.repeated and summary.target == "R2":  # R0 publishes nothing: repeats are moot
        text += f" (wrk restarted its pool {summary.repeated}x: some records repeated)"
    return text


def table(outcome: Outcome, connections: int, rounds: int) -> list[str]:
    """The figures as a Markdown table, one column per target."""
    cols = [outcome.summaries[t] for t in ("R0", "R2", "P0") if t in outcome.summaries]
    rows = [
        (f"max throughput, {connections} connections, median [min-max] of {rounds}", _rate),
        ("p50 / p99 latency at 50% of max (open loop)", _latency),
        ("CPU per request (server or producer process), at max", _cpu),
        ("cores that process kept busy at max (1.00 = CPU-bound)", _busy),
        ("Kafka broker CPU per request, at max", _broker),
        ("errors (non-2xx, socket, timeout)", _anomalies),
    ]
    lines = ["| | " + " | ".join(_DESCRIPTIONS[c.target] for c in cols) + " |",
             "|---|" + "---|" * len(cols)]
    lines += [f"| {label} | " + " | ".join(cell(c) for c in cols) + " |" for label, cell in rows]
    return lines


def verdict(outcome: Outcome) -> str:
    met = "met" if outcome.ratio >= TARGET else "not met"
    return (
        f"R2/R0 throughput: **{outcome.ratio:.2f}** (target >= {TARGET}: **{met}**; median of the "
        f"per-round pairs, range {outcome.ratio_min:.2f}-{outcome.ratio_max:.2f}). "
        f"R0/R2 CPU per request: {outcome.cpu_ratio:.2f}, where R2/R0 settles when each "
        f"single-threaded server has a core of its own and is bound by it."
    )


def noise(outcome: Outcome) -> str:
    return (
        f"Noise: processes other than the target, the broker and the load generator kept a "
        f"median of {outcome.foreign_cores:.2f} cores busy during the windows; steal "
        f"{100 * outcome.steal_share:.1f}%."
    )


def section(outcome: Outcome, machine: Machine, command: str, connections: int,
            rounds: int) -> str:
    """This run's part of BENCHMARKS.md, between its markers."""
    lines = [
        START_MARKER,
        f"## Receiver: R0 / R2 / P0 ({machine.date[:10]})",
        "",
        verdict(outcome),
        "",
        *table(outcome, connections, rounds),
        "",
        noise(outcome),
        "",
        f"Command: `{command}`, {machine.date}.",
        f"Machine: {machine.line()}. Load generators, Kafka and the servers share these cores.",
        "How it is measured and how to read it: `bench/README.md`.",
        END_MARKER,
    ]
    return "\n".join(lines)


def rewrite_benchmarks(path: Path, new_section: str) -> None:
    """This benchmark's section of BENCHMARKS.md replaced (or added) with ``new_section``."""
    sections.rewrite(path, (START_MARKER, END_MARKER), new_section, first=True)
