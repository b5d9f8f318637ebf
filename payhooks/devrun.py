"""``make run``: the whole pipeline on one machine, a simulated Stripe flow, and a live view.

Starts (or reuses) the local Kafka and Redis, creates the topics, starts the receiver and one
worker, sends a few signed payment lifecycles, prints every canonical event that reaches
payments.events, and keeps printing until Ctrl-C. Then it stops everything it started, in order,
and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer

from payhooks import kafka, sim, stack
from payhooks.config import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
LOCAL_CONFIG = REPO / "deploy" / "local" / "payhooks.toml"
DEMO_PAYMENTS = 4


def say(text: str = "") -> None:
    """Print for the person watching; a closed terminal or pipe must never stop the clean-up."""
    with contextlib.suppress(OSError):
        print(text, flush=True)


class Child:
    """A payhooks service in its own session (so Ctrl-C reaches us first), logging to a file."""

    def __init__(self, name: str, args: list[str], log_dir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log: IO[bytes] = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "payhooks", *args],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)  # graceful: drain, flush, commit, close
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def _wait_ready(url: str, child: Child, timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"the {child.name} exited; see {child.log_path}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"the {child.name} did not become ready at {url}; see {child.log_path}")


def _money(amount: int | None, currency: str | None) -> str:
    if amount is None:
        return ""
    # display only: two decimals fits the demo's EUR/USD/GBP; values stay integer minor units
    return f"{amount // 100}.{amount % 100:02d} {currency} ({amount} minor units)"


async def _send_demo(settings: Settings, url: str) -> None:
    endpoint = settings.endpoints["stripe"]
    deliveries, _summary = sim.plan("stripe", DEMO_PAYMENTS, duplicates=0.25, seed=None)
    say(f"Sending {len(deliveries)} signed Stripe webhooks for {DEMO_PAYMENTS} payments "
        f"to {url} (some sent twice, as PSPs do):")
    async with httpx.AsyncClient(timeout=10) as client:
        for delivery in deliveries:
            signed = sim.signed_request("stripe", delivery, endpoint, int(time.time()))
            answer = await client.post(url, content=signed.body, headers=signed.headers)
            tag = "  (duplicate)" if delivery.duplicate else ""
            say(f"  POST {delivery.kind:<42} {delivery.payment_ref}  -> "
                f"{answer.status_code}{tag}")


async def _events_from_now(settings: Settings) -> AIOKafkaConsumer:
    """A consumer at the current end of payments.events and payments.transitions (this run's
    records only)."""
    consumer = kafka.consumer(settings.kafka, settings.topics.events, settings.topics.transitions,
                              group_id=None, auto_offset_reset="latest")
    await consumer.start()
    while not consumer.assignment():  # without a group, every partition is ours once known
        await consumer.getmany(timeout_ms=100)
    for tp in consumer.assignment():
        await consumer.position(tp)  # resolve "latest" now, before the demo sends anything
    return consumer


async def _show_events(consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                for record in records:
                    say(_describe(orjson.loads(record.value)))
    finally:
        await consumer.stop()


def _describe(value: dict[str, Any]) -> str:
    """One line for a person: a canonical event, or a state transition with its version."""
    if "to_state" in value:
        totals = value["totals"]
        money = ", ".join(f"{k} {v}" for k, v in totals.items() if v)
        inferred = " (inferred)" if value["inferred"] else ""
        return (f"    -> transition  {value['payment_id']:<34} v{value['version']} "
                f"{value['from_state'] or '(new)'} -> {value['to_state']}{inferred}"
                f"{'  [' + money + ' ' + value['currency'] + ']' if money else ''}")
    return (f"  event           {value['payment_id']:<34} {value['type']:<22} "
            f"{_money(value['amount'], value['currency'])}")


async def _demo(settings: Settings, url: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    viewer = asyncio.create_task(_show_events(await _events_from_now(settings), stop))
    await _send_demo(settings, url)
    say()
    say("What the worker wrote: canonical events (payments.events, once each, duplicates "
        "dropped) and state transitions (payments.transitions, gapless versions):")
    await asyncio.sleep(3)
    say()
    say("Running. Send more traffic from another terminal, e.g.")
    say(f"  PAYHOOKS_CONFIG={os.environ['PAYHOOKS_CONFIG']} .venv/bin/payhooks sim "
        "--payments 20 --duplicates 0.2 --reorder 0.3")
    say("and watch it arrive here. Ctrl-C stops everything this run started.")
    say()
    await stop.wait()
    await viewer


@contextlib.contextmanager
def _stack(state_dir: Path) -> Iterator[None]:
    summary = stack.up(state_dir)
    services = {"kafka": summary["kafka"], "redis": summary["redis"]}
    ours = [name for name, service in services.items() if service["status"] == stack.STARTED]
    for name, service in services.items():
        say(f"  {name:<6} {service['address']:<24} {service['status']}")
    try:
        yield
    finally:
        if ours:
            stack.down(state_dir, only=ours)
            say(f"Stopped {' and '.join(ours)} (started by this run).")


def main() -> int:
    os.environ.setdefault("PAYHOOKS_CONFIG", str(LOCAL_CONFIG))
    settings = load_settings()
    state_dir = Path(os.environ.get("PAYHOOKS_STATE_DIR", REPO / ".stack"))
    log_dir = state_dir / "run"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    say("payhooks local run: Kafka + Redis, receiver, worker, and a simulated Stripe flow.")
    say("Starting the stack (first run downloads Kafka's jars from Maven Central)...")
    try:
        with _stack(state_dir):
            say("Creating topics from deploy/topics.yaml...")
            subprocess.run([sys.executable, "-m", "payhooks", "topics", "apply"], check=True,
                           env=env)
            receiver = Child("receiver", ["serve"], log_dir, env)
            worker = Child("worker", ["consume", "--metrics-port", "9101"], log_dir, env)
            try:
                base = f"http://{settings.ingest.host}:{settings.ingest.port}"
                _wait_ready(f"{base}/readyz", receiver)
                say(f"Receiver ready at {base} (logs: {receiver.log_path}); "
                    f"worker logs: {worker.log_path}")
                say()
                asyncio.run(_demo(settings, f"{base}/webhooks/stripe"))
            finally:
                # shutdown order: the receiver first (no new records), then the worker
                # (finishes its batch and commits), then the stack below
                receiver.stop()
                worker.stop()
                say()
                say("Stopped the receiver and the worker.")
    except (stack.StackError, RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"payhooks run: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    say("Stopped. Nothing left running that this run started.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
