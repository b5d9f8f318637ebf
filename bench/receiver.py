"""`make bench`: the receiver against its floor and its ceiling, side by side in one run.

    python -m bench.receiver [--duration S] [--connections N] [--rounds K] [--json]
                             [--write-benchmarks]

R0 (a minimal Starlette POST handler) and R2 (the full receiver: Stripe verification, envelope,
publish, ack) run at the same time under the same uvicorn configuration, each in its own process;
P0 is the raw aiokafka producer sending R2's records. A private Kafka broker on free ports in a
temporary folder serves them; everything this starts is stopped at the end, also on Ctrl-C.

Each round measures R0, R2 and P0 at their maximum (wrk, closed loop, N connections), in
alternating order (R0 R2 P0, then P0 R2 R0), so drift on a shared machine hits all of them alike;
then each round measures R0 and R2 latency in an open loop at half their median maximum. The
report gives medians. ``bench/README.md`` explains the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import secrets
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import deliveries, processes, report
from bench.processes import (
    BenchError,
    Child,
    CpuSnapshot,
    CpuUsage,
    ensure_wrk,
    free_port,
    log_tail,
    private_kafka,
    running,
)
from bench.results import LATENCY, MAX, Outcome, Window, summarize
from payhooks import topics
from payhooks.config import Settings, TopicSettings, load_settings

ROOT = Path(__file__).resolve().parent.parent
WRK_SCRIPT = Path(__file__).resolve().parent / "wrk" / "deliveries.lua"
BENCHMARKS = ROOT / "BENCHMARKS.md"
SERVERS = ("R0", "R2")
TARGETS = ("R0", "R2", "P0")
LATENCY_FRACTION = 0.5  # latency is measured at this fraction of the measured maximum
SIGNATURE_TOLERANCE = 300  # seconds a Stripe signature stays valid; bounds --duration
START_TIMEOUT = 60.0  # seconds for a server or the producer to come up
GRACE = 60.0  # seconds a load generator may run past its duration before it is given up on
WINDOW_OVERHEAD = 4.0  # seconds around each window (signing, starting a generator), for estimates
SET_UP = 40.0  # seconds to start Kafka and the servers and to warm up, for estimates

log = logging.getLogger("bench")


@dataclass(frozen=True, slots=True)
class Options:
    duration: float  # seconds per measured window
    connections: int  # wrk connections; also the open loop's and P0's in-flight bound
    rounds: int
    warmup: float  # seconds of load on R0, R2 and P0 before the first round
    wrk_threads: int
    pool: int  # distinct deliveries per run (wrk starts over when they run out)


@dataclass(frozen=True, slots=True)
class Server:
    name: str  # R0 or R2
    port: int
    pid: int
    facts: dict[str, Any]  # what it announced: pid, event loop, HTTP implementation

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{deliveries.PATH}"


@dataclass(slots=True)
class Rig:
    """What a run measures against: the work folder, the broker, both servers, the event pool."""

    workdir: Path
    config: Path
    secret: str
    broker_pid: int
    events: list[dict[str, Any]]
    servers: dict[str, Server] = field(default_factory=dict)
    signed_runs: int = 0

    @contextlib.contextmanager
    def signed(self) -> Iterator[Path]:
        """A file of the pool's deliveries, signed now with ids of their own; removed after."""
        self.signed_runs += 1
        path = self.workdir / f"deliveries-{self.signed_runs}.txt"
        batch = deliveries.sign(self.events, self.secret, self.signed_runs, int(time.time()))
        deliveries.write(batch, path)
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)

    def pids(self, target: str) -> dict[str, int]:
        return {"target": self.servers[target].pid, "broker": self.broker_pid}


# --------------------------------------------------------------------------- set-up


def write_config(workdir: Path, bootstrap: str, secret: str) -> Path:
    """A payhooks.toml of the bench's own: private broker, unique topic names, one endpoint."""
    prefix = f"bench-{secrets.token_hex(4)}"
    topic_lines = "\n".join(f'{role} = "{prefix}.{role}"' for role in TopicSettings().by_role())
    path = workdir / "payhooks.toml"
    path.write_text(
        f'[kafka]\nbootstrap_servers = "{bootstrap}"\nclient_id = "{prefix}"\n\n'
        f"[topics]\n{topic_lines}\n\n"
        '[log]\nlevel = "info"\nformat = "json"\n\n'  # production logging, to a file
        f'[endpoints.{deliveries.ENDPOINT}]\nprovider = "stripe"\nsecrets = ["{secret}"]\n'
    )
    return path


async def create_raw_topic(settings: Settings) -> None:
    """The raw topic as deploy/topics.yaml declares it (12 partitions), under the bench's name.

    The receiver writes no other topic.
    """
    try:
        specs = topics.load_specs(settings)
    except topics.TopicsFileError as exc:
        raise BenchError(str(exc)) from None
    await topics.apply(settings, [s for s in specs if s.role == "raw"])


def start_server(stack: contextlib.ExitStack, rig: Rig, name: str) -> Server:
    port = free_port()
    ready = rig.workdir / f"{name}.ready"
    argv = [sys.executable, "-m", "bench.serve", name.lower(), "--port", str(port),
            "--config", str(rig.config), "--ready-file", str(ready)]
    child = stack.enter_context(running(Child(argv, rig.workdir / f"{name}.log", events=False)))
    facts = child.wait_for_file(ready, START_TIMEOUT)
    log.info("%s listening on 127.0.0.1:%d (pid %d, %s, %s)", name, port, child.pid,
             facts["loop"], facts["http"])
    return Server(name, port, child.pid, facts)


def build_rig(stack: contextlib.ExitStack, options: Options) -> Rig:
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="payhooks-bench-")))
    log.info("starting a private Kafka broker in %s", workdir)
    kafka = stack.enter_context(private_kafka(workdir / "kafka"))
    broker_pid = kafka.pid()
    if broker_pid is None:
        raise BenchError("the private Kafka broker started but has no pid file")
    secret = f"whsec_bench_{secrets.token_hex(16)}"
    config = write_config(workdir, kafka.bootstrap, secret)
    asyncio.run(create_raw_topic(load_settings(config)))
    log.info("simulating %d Stripe events", options.pool)
    rig = Rig(workdir, config, secret, broker_pid, deliveries.simulate(options.pool, seed=1))
    for name in SERVERS:
        rig.servers[name] = start_server(stack, rig, name)
    return rig


# --------------------------------------------------------------------------- load generators


def run_wrk(server: Server, pool: Path, options: Options, duration: float) -> dict[str, Any]:
    """wrk at the maximum: closed loop over ``options.connections`` keep-alive connections."""
    argv = ["wrk", "-t", str(options.wrk_threads), "-c", str(options.connections),
            "-d", f"{duration:g}s", "--timeout", "10s", "-s", str(WRK_SCRIPT), server.url,
            "--", str(pool), str(options.wrk_threads)]
    done = subprocess.run(argv, capture_output=True, text=True,  # noqa: S603
                          timeout=duration + GRACE, check=False)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed (exit code {done.returncode}):\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(line.removeprefix("BENCH "))
    return result


def wrk_window(rig: Rig, target: str, options: Options, round_: int) -> Window:
    with rig.signed() as pool:  # signed before the window opens: its CPU is nobody's load
        before = CpuSnapshot.take(rig.pids(target))
        result = run_wrk(rig.servers[target], pool, options, options.duration)
        usage = CpuUsage.between(before, CpuSnapshot.take(rig.pids(target)))
    errors = sum(result[k] for k in ("connect", "read", "write", "status", "timeout"))
    return _window(target, MAX, round_, usage, ok=result["requests"] - result["status"],
                   errors=errors, seconds=result["duration_us"] / 1e6,
                   loadgen_cpu=usage.reaped_children, p50_ms=result["p50_us"] / 1000,
                   p99_ms=result["p99_us"] / 1000, repeated=result["wraps"])


def p0_window(rig: Rig, options: Options, round_: int) -> Window:
    """The producer alone, on R2's records, at most ``connections`` unacknowledged."""
    pids = {"broker": rig.broker_pid}
    with rig.signed() as pool:
        argv = [sys.executable, "-m", "bench.producer", "--config", str(rig.config),
                "--deliveries", str(pool), "--in-flight", str(options.connections),
                "--duration", f"{options.duration:g}"]
        with running(Child(argv, rig.workdir / "P0.log")) as child:
            child.read_event("start", START_TIMEOUT)
            before = CpuSnapshot.take(pids)
            done = child.read_event("done", options.duration + GRACE)
            usage = CpuUsage.between(before, CpuSnapshot.take(pids))
    return _window("P0", MAX, round_, usage, ok=done["acked"], errors=done["errors"],
                   seconds=done["seconds"], target_cpu=done["cpu_seconds"], loadgen_cpu=0.0)


def openloop_window(rig: Rig, target: str, rate: float, options: Options, round_: int
                    ) -> Window:
    """Latency at ``rate``: an open loop (``bench.openloop``), never slowed by the answers."""
    server = rig.servers[target]
    with rig.signed() as pool:
        argv = [sys.executable, "-m", "bench.openloop", "--port", str(server.port),
                "--rate", f"{rate:.1f}", "--duration", f"{options.duration:g}",
                "--connections", str(options.connections), "--deliveries", str(pool)]
        with running(Child(argv, rig.workdir / "openloop.log")) as child:
            child.read_event("start", START_TIMEOUT)
            before = CpuSnapshot.take(rig.pids(target))
            done = child.read_event("done", options.duration + GRACE)
            usage = CpuUsage.between(before, CpuSnapshot.take(rig.pids(target)))
    return _window(target, LATENCY, round_, usage, ok=done["ok"], errors=done["errors"],
                   seconds=done["seconds"], loadgen_cpu=done["cpu_seconds"],
                   p50_ms=done["p50_ms"], p99_ms=done["p99_ms"], offered_rate=rate,
                   dispatch_lag_ms=done["max_dispatch_lag_ms"])


def _window(target: str, mode: str, round_: int, usage: CpuUsage, *, ok: int, errors: int,
            seconds: float, loadgen_cpu: float, target_cpu: float | None = None,
            **extra: Any) -> Window:
    if ok <= 0:
        raise BenchError(f"{target} answered no request with 2xx in its {mode} window "
                         f"({errors} errors); see the logs above")
    return Window(
        target=target, mode=mode, round=round_, ok=ok, errors=errors, seconds=seconds,
        target_cpu=usage.processes["target"] if target_cpu is None else target_cpu,
        broker_cpu=usage.processes["broker"], loadgen_cpu=loadgen_cpu,
        machine_busy=usage.machine_busy, machine_steal=usage.machine_steal, **extra,
    )  # fmt: skip


# --------------------------------------------------------------------------- rounds


def warm_up(rig: Rig, options: Options) -> None:
    """Load each server, then the producer, once before measuring; nothing of it is kept.

    The broker's JVM compiles its hot paths during the first seconds of load, which would
    otherwise inflate the first round's broker CPU. A server answering errors stops the run.
    """
    warm = dataclasses.replace(options, duration=options.warmup)
    for name, server in rig.servers.items():
        with rig.signed() as pool:
            result = run_wrk(server, pool, options, options.warmup)
        if result["status"] or result["requests"] == 0:
            raise BenchError(f"{name} answered {result['status']} of {result['requests']} "
                             f"warm-up requests with an error status:\n"
                             f"{log_tail(rig.workdir / f'{name}.log')}")
    p0_window(rig, warm, round_=-1)


def _order(round_: int, targets: Sequence[str]) -> Sequence[str]:
    """A B C, then C B A: a linear drift shifts every target's median alike."""
    return targets if round_ % 2 == 0 else tuple(reversed(targets))


def max_window(rig: Rig, target: str, options: Options, round_: int) -> Window:
    if target == "P0":
        return p0_window(rig, options, round_)
    return wrk_window(rig, target, options, round_)


def max_rounds(rig: Rig, options: Options) -> list[Window]:
    windows = []
    for round_ in range(options.rounds):
        for target in _order(round_, TARGETS):
            window = max_window(rig, target, options, round_)
            log.info("round %d/%d %s max: %.0f/s, %.3f CPU ms each", round_ + 1,
                     options.rounds, target, window.rate, window.cpu_ms)
            windows.append(window)
    return windows


def latency_rounds(rig: Rig, options: Options, maxima: dict[str, float]) -> list[Window]:
    windows = []
    for round_ in range(options.rounds):
        for target in _order(round_, SERVERS):
            rate = LATENCY_FRACTION * maxima[target]
            window = openloop_window(rig, target, rate, options, round_)
            log.info("round %d/%d %s at %.0f/s: p50 %.2f ms, p99 %.2f ms (open loop at most "
                     "%.1f ms behind schedule)", round_ + 1, options.rounds, target, rate,
                     window.p50_ms, window.p99_ms, window.dispatch_lag_ms)
            windows.append(window)
    return windows


def _median_rates(windows: Sequence[Window]) -> dict[str, float]:
    return {t: summarize(t, windows).rate for t in SERVERS}


@dataclass(frozen=True, slots=True)
class Run:
    outcome: Outcome
    windows: list[Window]
    machine: report.Machine


def measure(options: Options) -> Run:
    started_load = report.load_average()
    ensure_wrk()
    with contextlib.ExitStack() as stack:
        rig = build_rig(stack, options)
        log.info("warming up R0, R2 and P0 for %g s each", options.warmup)
        warm_up(rig, options)
        windows = max_rounds(rig, options)
        windows += latency_rounds(rig, options, _median_rates(windows))
        facts = rig.servers["R2"].facts
        log.info("stopping servers and Kafka")
    machine = report.Machine.probe(facts["loop"], facts["http"], started_load)
    return Run(Outcome.of(windows, TARGETS), windows, machine)


# --------------------------------------------------------------------------- command line


def _positive(kind: type[float] | type[int]) -> Any:
    def parse(text: str) -> float | int:
        value = kind(text)
        if not value > 0 or (isinstance(value, float) and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
        return value

    return parse


def parse_args(argv: Sequence[str] | None) -> tuple[Options, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m bench.receiver", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=_positive(float), default=10.0,
                        help="seconds per measured window (default 10)")
    parser.add_argument("--connections", type=_positive(int), default=32,
                        help="concurrent connections, the same for R0 and R2 (default 32)")
    parser.add_argument("--rounds", type=_positive(int), default=5,
                        help="alternating rounds; figures are their medians (default 5)")
    parser.add_argument("--warmup", type=_positive(float), default=5.0,
                        help="seconds of load on R0, R2 and P0 before measuring (default 5)")
    parser.add_argument("--wrk-threads", type=_positive(int), default=1,
                        help="wrk threads (default 1: the cores are shared)")
    parser.add_argument("--pool", type=_positive(int), default=60_000,
                        help="distinct deliveries per window (default 60000)")
    parser.add_argument("--json", action="store_true", help="print every window as JSON")
    parser.add_argument("--write-benchmarks", action="store_true",
                        help="rewrite the receiver section of BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.duration > SIGNATURE_TOLERANCE - GRACE:
        parser.error(f"--duration must stay under {SIGNATURE_TOLERANCE - GRACE:g} s: "
                     "Stripe signatures expire after 300 s")
    options = Options(args.duration, args.connections, args.rounds, args.warmup,
                      args.wrk_threads, args.pool)
    return options, args


def _command(argv: Sequence[str]) -> str:
    return shlex.join(["python", "-m", "bench.receiver", *argv])


def _as_json(run: Run, options: Options, command: str) -> str:
    return json.dumps({
        "command": command,
        "options": dataclasses.asdict(options),
        "machine": dataclasses.asdict(run.machine),
        "outcome": dataclasses.asdict(run.outcome),
        "windows": [{**dataclasses.asdict(w), "rate": w.rate, "cpu_ms": w.cpu_ms,
                     "foreign_cores": w.foreign_cores} for w in run.windows],
    }, indent=2)  # fmt: skip



def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    options, args = parse_args(arguments)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    processes.unwind_on_signals()
    windows = options.rounds * (len(TARGETS) + len(SERVERS))
    minutes = (windows * (options.duration + WINDOW_OVERHEAD) + SET_UP) / 60
    log.info("%d windows of %g s: about %.0f min in all", windows, options.duration, minutes)
    try:
        run = measure(options)
    except BenchError as exc:
        log.error("bench failed: %s", exc)  # noqa: TRY400  (the message is the whole story)
        return 1
    except KeyboardInterrupt:
        log.warning("interrupted; everything started was stopped")
        return 130
    command = _command(arguments)
    body = report.section(run.outcome, run.machine, command, options.connections,
                          options.rounds)
    sys.stdout.write((_as_json(run, options, command) if args.json else body) + "\n")
    if args.write_benchmarks:
        report.rewrite_benchmarks(BENCHMARKS, body)
        log.info("rewrote the receiver section of %s", BENCHMARKS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
