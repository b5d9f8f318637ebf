"""The processes of a bench run: a private Kafka, children that announce themselves, CPU from /proc.

CPU time is read from Linux's own accounting (``/proc/<pid>/stat``: user + system time of every
thread of a process; ``/proc/stat``: the whole machine; ``getrusage`` for reaped children), so no
extra dependency is needed and the figures are what ``top`` would show.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from payhooks import stack

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_LOG_TAIL_LINES = 30


class BenchError(Exception):
    """A bench run cannot go on; the message says what failed (with a log tail where one helps)."""


def free_port() -> int:
    """A loopback port free right now (as tests/conftest.py picks them)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"({path} cannot be read)"
    return "\n".join(f"    {line}" for line in text) or f"({path} is empty)"


def ensure_wrk() -> str:
    """Path of wrk, installing Debian's package first when missing and running as root."""
    found = shutil.which("wrk")
    if found is not None:
        return found
    if os.geteuid() != 0:
        raise BenchError("wrk is not installed; install it with: sudo apt-get install wrk")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends",
                                        "wrk"]):
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)  # noqa: S603
        if done.returncode != 0:
            raise BenchError(f"`{' '.join(argv)}` failed:\n{done.stderr[-2000:]}")
    found = shutil.which("wrk")
    if found is None:
        raise BenchError("apt-get installed wrk but no wrk binary is on PATH")
    return found


# --------------------------------------------------------------------------- CPU accounting


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of every thread of ``pid`` so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rpartition(")")[2].split()  # after "(comm)", which may hold spaces
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime (fields 14, 15)


def reaped_children_cpu_seconds() -> float:
    """User + system CPU seconds of every child this process has waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, steal) CPU seconds of all cores since boot; busy excludes idle, iowait and steal."""
    with Path("/proc/stat").open() as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq) / _CLOCK_TICKS, steal / _CLOCK_TICKS


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    at: float  # monotonic seconds
    processes: Mapping[str, float]  # role -> CPU seconds so far
    reaped_children: float
    machine_busy: float
    machine_steal: float

    @classmethod
    def take(cls, pids: Mapping[str, int]) -> CpuSnapshot:
        busy, steal = machine_cpu_seconds()
        return cls(
            at=time.monotonic(),
            processes={role: process_cpu_seconds(pid) for role, pid in pids.items()},
            reaped_children=reaped_children_cpu_seconds(),
            machine_busy=busy,
            machine_steal=steal,
        )


@dataclass(frozen=True, slots=True)
class CpuUsage:
    """CPU seconds spent between two snapshots."""

    seconds: float  # wall clock
    processes: Mapping[str, float]
    reaped_children: float
    machine_busy: float
    machine_steal: float

    @classmethod
    def between(cls, before: CpuSnapshot, after: CpuSnapshot) -> CpuUsage:
        return cls(
            seconds=after.at - before.at,
            processes={r: after.processes[r] - before.processes[r] for r in before.processes},
            reaped_children=after.reaped_children - before.reaped_children,
            machine_busy=after.machine_busy - before.machine_busy,
            machine_steal=after.machine_steal - before.machine_steal,
        )


# --------------------------------------------------------------------------- children


class Child:
    """A child process whose stdout carries JSON lines (``{"event": ...}``), stderr a log file."""

    def __init__(self, argv: Sequence[str], log_file: Path, *, events: bool = True) -> None:
        self.log_file = log_file
        with log_file.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603  (our own modules, by sys.executable)
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if events else log,
                stderr=log,
            )
        self._buffer = b""

    @property
    def pid(self) -> int:
        return self.process.pid

    def read_event(self, expected: str, timeout: float) -> dict[str, Any]:
        """The next JSON line on stdout, which must be the event ``expected``."""
        event: dict[str, Any] = json.loads(self._read_line(timeout))
        if event.get("event") != expected:
            raise BenchError(f"expected {expected!r} from pid {self.pid}, got {event}")
        return event

    def _read_line(self, timeout: float) -> bytes:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BenchError(f"pid {self.pid} said nothing for {timeout:g} s:\n"
                                     f"{log_tail(self.log_file)}")
                if selector.select(remaining) and not self._read_some(fd):
                    self.process.wait(timeout=10)
                    raise BenchError(f"pid {self.pid} exited ({self.process.returncode}):\n"
                                     f"{log_tail(self.log_file)}")
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def _read_some(self, fd: int) -> bool:
        chunk = os.read(fd, 65536)
        self._buffer += chunk
        return bool(chunk)

    def wait_for_file(self, path: Path, timeout: float) -> dict[str, Any]:
        """The JSON the child writes to ``path`` once it is ready (servers announce this way)."""
        deadline = time.monotonic() + timeout
        while not path.exists():
            if self.process.poll() is not None:
                raise BenchError(f"pid {self.pid} exited ({self.process.returncode}) during "
                                 f"start-up:\n{log_tail(self.log_file)}")
            if time.monotonic() >= deadline:
                raise BenchError(f"pid {self.pid} was not ready within {timeout:g} s:\n"
                                 f"{log_tail(self.log_file)}")
            time.sleep(0.05)
        facts: dict[str, Any] = json.loads(path.read_text())
        return facts

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (uvicorn then drains and flushes its producer), wait, then SIGKILL."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextlib.contextmanager
def running(child: Child) -> Iterator[Child]:
    """Stops ``child`` however the block ends (error, Ctrl-C)."""
    try:
        yield child
    finally:
        child.stop()


@contextlib.contextmanager
def private_kafka(state_dir: Path) -> Iterator[stack.KafkaNode]:
    """A single-node KRaft broker on free ports under ``state_dir``, stopped at the end.

    Never the developer's stack: its own folder, its own ports (as tests/conftest.py does).
    """
    node = stack.KafkaNode(state_dir, port=free_port(), controller_port=free_port())
    try:
        node.start()
        yield node
    finally:
        node.stop()  # no error when it never started


def unwind_on_signals() -> None:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt, so every ``finally`` of the run executes, even
    where SIGINT came in ignored (a background job of a non-interactive shell): nothing a bench
    run starts may outlive it."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt
