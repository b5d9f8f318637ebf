"""`make bench`: the worker against a no-op loop with the same Kafka transactions, in one run.

    python -m bench.worker [--payments N] [--rounds K] [--scale P,P,...] [--quick] [--json]
                           [--write-benchmarks]

C0 (``bench.noop_worker``: consume, per-partition transactions, K outputs per input, commit) and C1
(the real worker, ``payhooks consume``, with Redis) read the same pre-filled ``webhooks.raw`` topic
of simulated Stripe lifecycles, each pass under a new consumer group with its own output topics and
Redis key prefix, in alternating order (C0 C1, then C1 C0). Then C1 runs again with 1k, 100k and 1M
payments already in Redis, to show how CPU per event and Redis memory depend on the payments held.
A private Kafka and a private Redis on free ports in a temporary folder serve the run; everything
it starts is stopped at the end, also on Ctrl-C. ``bench/README.md`` explains the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import secrets
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import redis
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from bench import processes, report, worker_report, workload
from bench.processes import (
    BenchError,
    Child,
    CpuSnapshot,
    CpuUsage,
    free_port,
    private_kafka,
    running,
)
from bench.worker_results import Memory, Pass, Run, ScalePoint
from payhooks import kafka, stack, topics
from payhooks.config import Settings, TopicSettings, load_settings
from schemas import wire

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"
POLL = 0.02  # seconds between looks at the group's committed offsets
START_TIMEOUT = 60.0  # seconds until a worker's first transaction commits
MIN_RATE = 100.0  # records/s below which a pass is given up on
PRELOAD_CHUNK = 5000  # snapshots per Redis pipeline when preloading
SAMPLE = 1000  # keys of each kind whose MEMORY USAGE is sampled

log = logging.getLogger("bench")


@dataclass(frozen=True, slots=True)
class Options:
    payments: int  # Stripe lifecycles in the main topic (about 2.2 events each)
    rounds: int
    scale: tuple[int, ...]  # payments preloaded into Redis for the scaling passes
    scale_payments: int  # lifecycles in the scaling passes' topic
    partitions: int
    fanout: int  # C0's outputs per input; 0: C1's own average, from the warm-up pass
    warmup_payments: int


@dataclass(slots=True)
class Rig:
    """The private servers of a run and the pre-filled topics."""

    workdir: Path
    bootstrap: str
    broker_pid: int
    redis_url: str
    redis_pid: int
    client: redis.Redis
    raw: dict[str, tuple[str, int]]  # name -> (topic, records)
    passes: int = 0

    def pids(self, worker: int) -> dict[str, int]:
        return {"worker": worker, "broker": self.broker_pid, "redis": self.redis_pid}


# --------------------------------------------------------------------------- set-up


def write_config(rig: Rig, raw_topic: str, name: str) -> Path:
    """A payhooks.toml for one pass: shared raw topic, its own group, output topics and prefix."""
    rig.passes += 1
    tag = f"{name.lower()}-{rig.passes}-{secrets.token_hex(3)}"
    names = {role: f"bench.{tag}.{role}" for role in TopicSettings().by_role()}
    names["raw"] = raw_topic
    topic_lines = "\n".join(f'{role} = "{topic}"' for role, topic in names.items())
    path = rig.workdir / f"{tag}.toml"
    path.write_text(
        f'[kafka]\nbootstrap_servers = "{rig.bootstrap}"\nclient_id = "bench-{tag}"\n\n'
        f"[topics]\n{topic_lines}\n\n"
        f'[redis]\nurl = "{rig.redis_url}"\nkey_prefix = "{tag}:"\n\n'
        f'[consumer]\ngroup_id = "bench-{tag}"\n\n'
        '[log]\nlevel = "info"\nformat = "json"\n'  # production logging, to the pass's log file
    )
    return path


async def create_topics(settings: Settings, roles: Sequence[str], partitions: int | None
                        ) -> None:
    try:
        specs = topics.load_specs(settings, partitions=partitions)
    except topics.TopicsFileError as exc:
        raise BenchError(str(exc)) from None
    await topics.apply(settings, [s for s in specs if s.role in roles])


def fill_topic(rig: Rig, name: str, payments: int, partitions: int, seed: int) -> None:
    topic = f"bench.raw.{name}.{secrets.token_hex(3)}"
    settings = load_settings(write_config(rig, topic, f"fill-{name}"))
    asyncio.run(create_topics(settings, ["raw"], partitions))
    started = time.monotonic()
    count, size = asyncio.run(workload.fill(settings.kafka, workload.raw_records(payments, topic,
                                                                                 seed)))
    log.info("filled %s: %d payments, %d records (%.0f bytes each) in %.1f s", topic, payments,
             count, size / max(count, 1), time.monotonic() - started)
    rig.raw[name] = (topic, count)


@contextlib.contextmanager
def private_redis(state_dir: Path) -> Iterator[stack.RedisNode]:
    node = stack.RedisNode(state_dir, port=free_port())
    try:
        node.start()
        yield node
    finally:
        node.stop()


def build_rig(stack_: contextlib.ExitStack) -> Rig:
    workdir = Path(stack_.enter_context(tempfile.TemporaryDirectory(prefix="payhooks-bench-")))
    log.info("starting a private Kafka broker and Redis in %s", workdir)
    kafka_node = stack_.enter_context(private_kafka(workdir / "kafka"))
    redis_node = stack_.enter_context(private_redis(workdir / "redis"))
    broker_pid, redis_pid = kafka_node.pid(), redis_node.pid()
    if broker_pid is None or redis_pid is None:
        raise BenchError("the private Kafka or Redis started but has no pid file")
    client = redis.Redis.from_url(redis_node.url)
    stack_.callback(client.close)
    return Rig(workdir, kafka_node.bootstrap, broker_pid, redis_node.url, redis_pid, client, {})


# --------------------------------------------------------------------------- Redis


def reset_redis(rig: Rig, prefix: str) -> int:
    """Empty Redis and mark it trusted for ``prefix`` (no rebuild); returns used_memory."""
    rig.client.flushall()
    run_id = rig.client.info("server")["run_id"]
    rig.client.set(prefix + wire.REDIS_READY, run_id)
    return used_memory(rig)


def used_memory(rig: Rig) -> int:
    return int(rig.client.info("memory")["used_memory"])


def sample_keys(rig: Rig, pattern: str, limit: int) -> list[bytes]:
    found: list[bytes] = []
    for key in rig.client.scan_iter(match=pattern, count=1000):
        found.append(key)
        if len(found) >= limit:
            break
    return found


def count_keys(rig: Rig, pattern: str) -> int:
    return sum(1 for _ in rig.client.scan_iter(match=pattern, count=5000))


def measure_memory(rig: Rig, prefix: str, before: int, records: int) -> Memory:
    """What the pass left in Redis: snapshots (per payment) and decisions (per input record)."""
    snapshot_pattern = prefix + wire.REDIS_SNAPSHOT.format(payment_id="*")
    decision_pattern = prefix + wire.REDIS_DECISION.format(topic="*", partition="*", offset="*")
    snaps = sample_keys(rig, snapshot_pattern, SAMPLE)
    decisions = sample_keys(rig, decision_pattern, SAMPLE)
    outputs = [orjson.loads(rig.client.get(k) or b"{}").get("records", []) for k in decisions]
    ttl = rig.client.ttl(decisions[0]) if decisions else -1
    return Memory(
        records=records,
        payments=count_keys(rig, snapshot_pattern),
        decisions=count_keys(rig, decision_pattern),
        used_memory_delta=used_memory(rig) - before,
        snapshot_bytes=_mean(rig.client.memory_usage(k) or 0 for k in snaps),
        decision_bytes=_mean(rig.client.memory_usage(k) or 0 for k in decisions),
        outputs_per_decision=_mean(len(o) for o in outputs),
        output_value_bytes=_mean(sum(len(r["value"]) * 3 // 4 for r in o) for o in outputs),
        decision_ttl_seconds=int(ttl),
    )


async def count_outputs(settings: Settings) -> int:
    """Committed records on the worker's output topics (events, transitions, state, snapshots,
    DLQ): what C0 must write per input to pay the same produce traffic."""
    roles = ("events", "transitions", "state", "snapshots", "dlq")
    names = [getattr(settings.topics, role) for role in roles]
    tps = [TopicPartition(name, p) for name in names
           for p in await kafka.partitions_of(settings.kafka, name)]
    consumer = kafka.consumer(settings.kafka, group_id=None)
    await consumer.start()
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        count, deadline = 0, time.monotonic() + 300

        async def behind() -> bool:
            for tp in tps:
                if await consumer.position(tp) < ends[tp]:
                    return True
            return False

        while await behind():
            if time.monotonic() > deadline:
                raise BenchError("counting the output records took over 5 minutes")
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            count += sum(len(records) for records in batch.values())
    finally:
        await consumer.stop()
    return count


def _mean(values: Iterator[int] | Sequence[int]) -> float:
    data = list(values)
    return statistics.fmean(data) if data else 0.0


def snapshot_docs(rig: Rig, prefix: str, limit: int) -> list[tuple[str, bytes]]:
    """(payment_id, snapshot JSON) of up to ``limit`` payments a C1 pass left in Redis."""
    docs = []
    for key in sample_keys(rig, prefix + wire.REDIS_SNAPSHOT.format(payment_id="*"), limit):
        doc = rig.client.hget(key, "doc")
        if isinstance(doc, bytes):
            docs.append((str(orjson.loads(doc)["payment_id"]), doc))
    return docs


def preload(rig: Rig, prefix: str, count: int, templates: Sequence[tuple[str, bytes]]) -> None:
    """``count`` payments' snapshots, copies of real ones under new ids of the same length."""
    pipe = rig.client.pipeline(transaction=False)
    for n in range(count):
        payment_id, doc = templates[n % len(templates)]
        new_id = _same_length_id(payment_id, n)
        body = doc.replace(payment_id.encode(), new_id.encode())
        pipe.hset(prefix + wire.REDIS_SNAPSHOT.format(payment_id=new_id),
                  mapping={"rev": str(orjson.loads(body)["rev"]), "doc": body})
        if len(pipe) >= PRELOAD_CHUNK:
            pipe.execute()
    pipe.execute()


def _same_length_id(payment_id: str, n: int) -> str:
    stem, _, _ = payment_id.rpartition("pi_")
    digits = str(n)
    token = "scale" + digits.rjust(len(payment_id) - len(stem) - 3 - 5, "0")
    return f"{stem}pi_{token}"


# --------------------------------------------------------------------------- one pass


async def _committed(admin: Any, group: str) -> int:
    """Records the group has committed (0 while its coordinator is not there yet)."""
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    except KafkaError:
        return 0
    return sum(max(o.offset, 0) for o in offsets.values())


async def _follow(rig: Rig, child: Child, settings: Settings, total: int) -> tuple[
        CpuUsage, int]:
    """Watch the group's committed offsets from the first commit to the last; CPU in between."""
    admin = kafka.admin(settings.kafka)
    await admin.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while (first := await _committed(admin, settings.consumer.group_id)) == 0:
            _check(child, deadline, "commit its first transaction")
            await asyncio.sleep(POLL)
        before = CpuSnapshot.take(rig.pids(child.pid))
        deadline = time.monotonic() + (total - first) / MIN_RATE + 30
        done = first
        while done < total:
            _check(child, deadline, f"commit all {total} records (at {done})")
            await asyncio.sleep(POLL)
            done = await _committed(admin, settings.consumer.group_id)
        usage = CpuUsage.between(before, CpuSnapshot.take(rig.pids(child.pid)))
    finally:
        await admin.close()
    return usage, done - first


def _check(child: Child, deadline: float, what: str) -> None:
    if child.process.poll() is not None:
        raise BenchError(f"the worker (pid {child.pid}) exited ({child.process.returncode}) "
                         f"before it could {what}; its log: {child.log_file}")
    if time.monotonic() > deadline:
        raise BenchError(f"the worker (pid {child.pid}) did not {what} in time; its log: "
                         f"{child.log_file}")


def run_pass(rig: Rig, target: str, raw: str, round_: int, fanout: int, preloaded: int = 0,
             templates: Sequence[tuple[str, bytes]] = ()) -> tuple[Pass, Memory | None]:
    """One worker process reads the whole ``raw`` topic; CPU from its first commit to its last."""
    topic, total = rig.raw[raw]
    config = write_config(rig, topic, target)
    settings = load_settings(config)
    asyncio.run(create_topics(settings, [r for r in TopicSettings().by_role() if r != "raw"],
                              None))
    prefix = settings.redis.key_prefix
    baseline = reset_redis(rig, prefix)
    if preloaded:
        started = time.monotonic()
        preload(rig, prefix, preloaded, templates)
        log.info("preloaded %d payments into Redis in %.1f s", preloaded,
                 time.monotonic() - started)
    before_pass = used_memory(rig)
    if target == "C0":
        argv = [sys.executable, "-m", "bench.noop_worker", "--config", str(config),
                "--fanout", str(fanout)]
    else:
        argv = [sys.executable, "-m", "payhooks", "--config", str(config), "consume"]
    log_file = rig.workdir / f"{config.stem}.log"
    with running(Child(argv, log_file, events=False)) as child:
        usage, records = asyncio.run(_follow(rig, child, settings, total))
    memory = None
    if target == "C1":
        memory = dataclasses.replace(
            measure_memory(rig, prefix, before_pass, total),
            outputs_per_record=asyncio.run(count_outputs(settings)) / max(total, 1))
    result = Pass(
        target=target, round=round_, records=records, seconds=usage.seconds,
        worker_cpu=usage.processes["worker"], broker_cpu=usage.processes["broker"],
        redis_cpu=usage.processes["redis"], machine_busy=usage.machine_busy,
        machine_steal=usage.machine_steal, preloaded=preloaded,
        preload_memory=before_pass - baseline,
    )  # fmt: skip
    log.info("%s round %d%s: %.0f records/s, worker %.3f ms CPU per record (broker %.3f, "
             "Redis %.3f)", target, round_ + 1, f" ({preloaded:,} preloaded)" if preloaded else "",
             result.rate, result.worker_cpu_ms, result.broker_cpu_ms, result.redis_cpu_ms)
    return result, memory


# --------------------------------------------------------------------------- the run


def _order(round_: int) -> tuple[str, str]:
    return ("C0", "C1") if round_ % 2 == 0 else ("C1", "C0")


def measure(options: Options) -> Run:
    started_load = report.load_average()
    with contextlib.ExitStack() as stack_:
        rig = build_rig(stack_)
        fill_topic(rig, "warmup", options.warmup_payments, options.partitions, seed=3)
        fill_topic(rig, "main", options.payments, options.partitions, seed=7)
        if options.scale:
            fill_topic(rig, "scale", options.scale_payments, options.partitions, seed=11)
        log.info("warming up C1 and C0 on %d records", rig.raw["warmup"][1])
        _, warm = run_pass(rig, "C1", "warmup", -1, 0)
        assert warm is not None
        fanout = options.fanout or max(1, round(warm.outputs_per_record))
        run_pass(rig, "C0", "warmup", -1, fanout)
        passes: list[Pass] = []
        memories: list[Memory] = []
        templates: list[tuple[str, bytes]] = []
        for round_ in range(options.rounds):
            for target in _order(round_):
                result, memory = run_pass(rig, target, "main", round_, fanout)
                passes.append(result)
                if memory is not None:
                    memories.append(memory)
                    templates = snapshot_docs(rig, f"{_prefix_of(rig)}", 1000) or templates
        points = []
        for preloaded in options.scale:
            result, memory = run_pass(rig, "C1", "scale", 0, fanout, preloaded, templates)
            assert memory is not None
            points.append(ScalePoint(preloaded, result, memory))
    return Run(passes, memories, points, fanout, rig.raw["main"][1], options.payments,
               report_machine(started_load))


def _prefix_of(rig: Rig) -> str:
    """The key prefix the last pass used (the only one in Redis: each pass starts empty)."""
    for key in rig.client.scan_iter(match="*" + wire.REDIS_READY, count=1000):
        return bytes(key).decode().removesuffix(wire.REDIS_READY)
    return ""


def report_machine(load_average: str) -> report.Machine:
    return report.Machine.probe("asyncio (payhooks consume)", "-", load_average)


# --------------------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None) -> tuple[Options, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m bench.worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payments", type=int, default=8_000,
                        help="Stripe lifecycles in the main topic, ~2.2 events each "
                             "(default 8000)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating C0/C1 rounds; figures are medians (default 3)")
    parser.add_argument("--scale", default="1000,100000,1000000",
                        help="payments preloaded into Redis for the scaling passes, comma "
                             "separated; empty: none (default 1000,100000,1000000)")
    parser.add_argument("--scale-payments", type=int, default=4_000,
                        help="lifecycles the scaling passes process (default 4000)")
    parser.add_argument("--partitions", type=int, default=3,
                        help="partitions of the raw topic (default 3)")
    parser.add_argument("--fanout", type=int, default=0,
                        help="C0's outputs per input; 0: as many as C1 writes on average, "
                             "measured in the warm-up (default 0)")
    parser.add_argument("--quick", action="store_true",
                        help="a small run for trying things: 3000 payments, 2 rounds, "
                             "scale 1000,100000")
    parser.add_argument("--json", action="store_true", help="print every pass as JSON")
    parser.add_argument("--write-benchmarks", action="store_true",
                        help="rewrite the worker section of BENCHMARKS.md")
    args = parser.parse_args(argv)
    try:
        scale = tuple(int(p) for p in args.scale.split(",") if p.strip())
    except ValueError:
        parser.error(f"--scale takes comma-separated integers, got {args.scale!r}")
    if min((args.payments, args.rounds, args.partitions, args.scale_payments, *scale)) <= 0:
        parser.error("--payments, --rounds, --partitions, --scale-payments and --scale must be "
                     "positive")
    if args.quick:
        options = Options(3_000, 2, (1_000, 100_000), 2_000, args.partitions, args.fanout,
                          1_000)
    else:
        options = Options(args.payments, args.rounds, scale, args.scale_payments,
                          args.partitions, args.fanout, 2_000)
    return options, args



def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    options, args = parse_args(arguments)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    processes.unwind_on_signals()
    try:
        run = measure(options)
    except BenchError as exc:
        log.error("bench failed: %s", exc)  # noqa: TRY400  (the message is the whole story)
        return 1
    except KeyboardInterrupt:
        log.warning("interrupted; everything started was stopped")
        return 130
    command = shlex.join(["python", "-m", "bench.worker", *arguments])
    body = worker_report.section(run, command, options.rounds)
    if args.json:
        sys.stdout.write(json.dumps({
            "command": command, "options": dataclasses.asdict(options),
            "run": dataclasses.asdict(run),
        }, indent=2) + "\n")  # fmt: skip
    else:
        sys.stdout.write(body + "\n")
    if args.write_benchmarks:
        worker_report.rewrite_benchmarks(BENCHMARKS, body)
        log.info("rewrote the worker section of %s", BENCHMARKS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
