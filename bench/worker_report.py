"""The worker bench's part of BENCHMARKS.md: C0 / C1 side by side, scaling, Redis memory."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path

from bench import sections
from bench.worker_results import Memory, Run, Summary, paired_ratios, summarize

START_MARKER = "<!-- bench:worker:start -->"
END_MARKER = "<!-- bench:worker:end -->"
TARGET = 0.5  # the goal for C1/C0 throughput

_DESCRIPTIONS = {
    "C0": "C0 no-op loop (same consumer, batches, transactions)",
    "C1": "C1 worker (`payhooks consume`, Redis)",
}


def _count(n: float) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n / 1_000_000:g}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n / 1_000:g}k"
    return f"{n:,.0f}"


def _table(run: Run, rounds: int) -> list[str]:
    cols = [summarize(t, run.passes) for t in ("C0", "C1")]
    names = dict(_DESCRIPTIONS)
    rows: list[tuple[str, Callable[[Summary], str]]] = [
        (f"throughput, input records/s, median [min-max] of {rounds}",
         lambda s: f"{s.rate:,.0f} [{s.rate_min:,.0f}-{s.rate_max:,.0f}]"),
        ("worker process CPU per input record", lambda s: f"{s.worker_cpu_ms:.3f} ms"),
        ("cores the worker process kept busy (1.00 = CPU-bound)",
         lambda s: f"{s.busy_cores:.2f}"),
        ("Kafka broker CPU per input record", lambda s: f"{s.broker_cpu_ms:.3f} ms"),
        ("Redis CPU per input record", lambda s: f"{s.redis_cpu_ms:.3f} ms"),
        ("total CPU per input record (worker + broker + Redis)",
         lambda s: f"{s.worker_cpu_ms + s.broker_cpu_ms + s.redis_cpu_ms:.3f} ms"),
    ]
    lines = ["| | " + " | ".join(names[c.target] for c in cols) + " |",
             "|---|" + "---|" * len(cols)]
    lines += [f"| {label} | " + " | ".join(cell(c) for c in cols) + " |" for label, cell in rows]
    return lines


def _scale_table(run: Run) -> list[str]:
    if not run.scale:
        return []
    lines = [
        "| payments already in Redis | C1 records/s | worker CPU per record | Redis CPU per "
        "record | broker CPU per record | Redis memory per preloaded payment |",
        "|---|---|---|---|---|---|",
    ]
    for point in run.scale:
        r = point.result
        lines.append(f"| {_count(point.preloaded)} | {r.rate:,.0f} | {r.worker_cpu_ms:.3f} ms | "
                     f"{r.redis_cpu_ms:.3f} ms | {r.broker_cpu_ms:.3f} ms | "
                     f"{point.preload_bytes_per_payment:,.0f} B |")
    return lines


def _memory(memories: list[Memory]) -> str:
    m = memories[len(memories) // 2]
    per_record = statistics.median(x.per_record for x in memories)
    left = (f"{m.decisions:,} stored decisions were left behind "
            f"({m.decision_bytes:,.0f} B each)" if m.decisions else
            "no stored decision was left behind (the worker deletes a batch's decisions once its "
            "transaction commits)")
    return (
        f"Redis memory after a C1 pass over {m.records:,} records of {m.payments:,} payments "
        f"(median pass): used_memory grew by {m.used_memory_delta / 2**20:,.1f} MiB, "
        f"{m.used_memory_delta / max(m.payments, 1):,.0f} B per payment "
        f"({per_record:,.0f} B per input record). Per key (MEMORY USAGE, mean of up to 1,000 "
        f"sampled): a payment's snapshot `pay:` {m.snapshot_bytes:,.0f} B, kept for good; {left}. "
        f"The pass wrote {m.outputs_per_record:.2f} output records per input record."
    )


def verdict(run: Run) -> str:
    ratios = paired_ratios(run.passes)
    ratio = statistics.median(ratios)
    met = "met" if ratio >= TARGET else "not met"
    return (f"C1/C0 throughput: **{ratio:.2f}** (target >= {TARGET}: **{met}**; median of the "
            f"per-round pairs, range {min(ratios):.2f}-{max(ratios):.2f}).")


def noise(run: Run) -> str:
    foreign = statistics.median(p.foreign_cores for p in run.passes)
    steal = sum(p.machine_steal for p in run.passes)
    busy = sum(p.machine_busy for p in run.passes)
    share = 100 * steal / (busy + steal) if busy + steal else 0.0
    return (f"Noise: processes other than the worker, the broker and Redis (this bench's own "
            f"offset polling included) kept a median of {foreign:.2f} cores busy during the "
            f"passes; steal {share:.1f}%.")


def section(run: Run, command: str, rounds: int) -> str:
    machine = run.machine
    lines = [
        START_MARKER,
        f"## Worker: C0 / C1 ({machine.date[:10]})",
        "",
        verdict(run),
        "",
        f"Input: {run.records:,} `webhooks.raw` records of {run.payments:,} simulated Stripe "
        f"payments (1-3 events each, lifecycles interleaved), 3 partitions, batches of up to "
        f"500; C0 writes {run.fanout} records per input (as many as C1 writes on average).",
        "",
        *_table(run, rounds),
        "",
        _memory(run.memories),
        "",
        *(["CPU per event by payments held in Redis (C1, one pass each, same input: the "
           "scaling topic's records on top of the preloaded payments):", "",
           *_scale_table(run), ""] if run.scale else []),
        noise(run),
        "",
        f"Command: `{command}`, {machine.date}.",
        f"Machine: {machine.cores} cores {machine.cpu_model}, {machine.memory_gb:g} GB RAM, "
        f"{machine.os}, Python {machine.python}, aiokafka {machine.aiokafka}, Apache Kafka "
        f"{machine.kafka} (private single KRaft node) on {machine.java}, Redis from Debian "
        f"(private, AOF everysec); load average at start {machine.load_average}. Worker, Kafka "
        "and Redis share these cores.",
        "How it is measured and how to read it: `bench/README.md`.",
        END_MARKER,
    ]
    return "\n".join(lines)


def rewrite_benchmarks(path: Path, new_section: str) -> None:
    """This benchmark's section of BENCHMARKS.md replaced (or added) with ``new_section``."""
    sections.rewrite(path, (START_MARKER, END_MARKER), new_section)
