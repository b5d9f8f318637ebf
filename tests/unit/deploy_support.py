"""What the deploy/ tests share: the files, the image, the probes and the shutdown bounds."""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, start_http_server

from ingest.app import create_app
from ingest.publisher import KafkaPublisher
from payhooks.cli import cli
from payhooks.config import Settings
from payhooks.metrics import ConsumerMetrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
WORKER_METRICS_PORT = 9101


def load_compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def project_version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def receiver_routes() -> set[str]:
    """The paths the receiver serves (built from settings, nothing started)."""
    settings = Settings()
    return {route.path for route in create_app(settings, KafkaPublisher(settings.kafka)).routes}


def check_cli_args(args: list[str]) -> None:
    """Fail unless ``payhooks <args>`` names a real command with real options (nothing runs)."""
    result = CliRunner().invoke(cli, [*args, "--help"])
    assert result.exit_code == 0, f"payhooks {shlex.join(args)}: {result.output}"


def option(args: list[str], name: str) -> str:
    """The value of ``--name value`` in a command line."""
    assert name in args, f"{name} missing from {args}"
    return args[args.index(name) + 1]


# --- the shutdown sequences the grace periods must cover -----------------------------------------


def _source_int(path: str, pattern: str) -> int:
    match = re.search(pattern, (ROOT / path).read_text())
    assert match, f"{pattern!r} not found in {path}: the grace-period derivation needs updating"
    return int(match.group(1).replace("_", ""))


def receiver_shutdown_seconds(settings: Settings) -> float:
    """uvicorn's drain cap (services.serve) plus the producer's flush, bounded by the deadline."""
    drain = _source_int("payhooks/services.py", r"timeout_graceful_shutdown=([\d_]+)")
    return drain + settings.ingest.publish_timeout_seconds


def worker_shutdown_seconds(settings: Settings) -> float:
    """The last poll plus the longest transaction the broker lets a batch keep open."""
    transaction_ms = _source_int("consumers/worker.py", r"transaction_timeout_ms=([\d_]+)")
    return settings.consumer.poll_timeout_ms / 1000 + transaction_ms / 1000


# --- the worker's readiness check, run for real ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ready_exit: int
    not_ready_exit: int


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_worker_probe(command: list[str]) -> ProbeResult:
    """Run a worker probe command (``python -c ...``) against a real worker metrics server.

    The metrics server is the one ``payhooks consume`` starts (prometheus_client on a registry
    with ConsumerMetrics), on a free port instead of 9101; the probe runs once with the worker
    ready and once not.
    """
    assert command[:2] == ["python", "-c"], command
    port = _free_port()
    code = command[2].replace(f":{WORKER_METRICS_PORT}/", f":{port}/")
    assert code != command[2], f"the probe does not query port {WORKER_METRICS_PORT}"
    registry = CollectorRegistry()
    metrics = ConsumerMetrics(registry)
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        exits = []
        for ready in (1, 0):
            metrics.ready.set(ready)
            exits.append(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                        timeout=30, check=False).returncode)
    finally:
        server.shutdown()
        thread.join(timeout=5)
    return ProbeResult(ready_exit=exits[0], not_ready_exit=exits[1])


# --- the Dockerfile ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Instruction:
    keyword: str
    value: str


def dockerfile() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")))
    out = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, value = line.strip().partition(" ")
            out.append(Instruction(keyword.upper(), value.strip()))
    return out


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    starts = [i for i, ins in enumerate(instructions) if ins.keyword == "FROM"]
    return instructions[starts[-1]:]


def image_copies() -> dict[str, str]:
    """Destination -> source of every file the final stage copies from the build context."""
    copies = {}
    for ins in final_stage(dockerfile()):
        if ins.keyword == "COPY" and not ins.value.startswith("--from"):
            *sources, destination = ins.value.split()
            for source in sources:
                copies[destination] = source
    return copies


def walk(node: Any) -> Iterator[Any]:
    """Every dict and list inside a parsed YAML document, depth first."""
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        yield from walk(child)
