"""Local Kafka and Redis processes for development and tests, started without Docker."""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import TypedDict
from urllib.parse import urlsplit

KAFKA_VERSION = "3.9.2"  # 3.9 is the last line keeping every protocol version aiokafka speaks
# (Kafka 4 removed old API versions, KIP-896). deploy/kafka/pom.xml is fetched with this version.

DEFAULT_KAFKA_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
DEFAULT_REDIS_PORT = 6379

# What up/down/status report for each service.
STARTED = "started"
ALREADY_RUNNING = "already running (ours)"
RUNNING = "running (ours)"
NOT_ANSWERING = "not answering (ours, see its log)"
EXTERNAL_LEFT_ALONE = "external, left alone"
EXTERNAL = "running (external)"
STOPPED = "stopped"
NOT_RUNNING = "not running"

_JARS_MARKER = "COMPLETE"
_LOG_TAIL_LINES = 40
_ERROR_LINE = re.compile(r"\b(ERROR|FATAL)\b|# (Fatal|Failed|Could not)")  # log4j and Redis
_POLICY_RC_D = Path("/usr/sbin/policy-rc.d")

log = logging.getLogger(__name__)


class StackError(Exception):
    """A local service could not be provided; the message says what failed and what to do next."""


class ServiceSummary(TypedDict):
    """One service in the answer of up/down/status."""

    address: str
    status: str
    pid: int | None
    log: str | None


class StackSummary(TypedDict):
    """The answer of up/down/status."""

    state_dir: str
    bootstrap: str
    redis_url: str
    kafka: ServiceSummary
    redis: ServiceSummary


# --------------------------------------------------------------------------- files and processes


def cache_dir() -> Path:
    """Where downloaded jars live: $PAYHOOKS_CACHE_DIR or ~/.cache/payhooks (outside git)."""
    configured = os.environ.get("PAYHOOKS_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "payhooks"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive fcntl lock on `path` (other processes wait; released on exit or crash)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    """True while `pid` runs. A zombie counts as dead: PID 1 of some sandboxes never reaps."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat_line.rpartition(")")[2].split()[:1]  # the field after "(comm)" is the state
    return bool(state) and state[0] not in ("Z", "X")


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="surrogateescape") for part in raw.split(b"\0") if part]


def _signal(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def _terminate(pid: int, timeout: float) -> None:
    """SIGTERM, wait up to `timeout`, then SIGKILL."""
    _signal(pid, signal.SIGTERM)
    if not _wait_gone(pid, timeout):
        _signal(pid, signal.SIGKILL)
        _wait_gone(pid, 10.0)


def _read_log(path: Path, offset: int) -> list[str]:
    """Lines of `path` written after byte `offset` (at most the last 1 MiB)."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(offset, size - 1024 * 1024))
            return handle.read().decode(errors="replace").splitlines()
    except OSError:
        return []


def _indented(lines: Sequence[str]) -> str:
    return "\n".join(f"    {line}" for line in lines)


def _log_excerpt(path: Path, offset: int = 0) -> str:
    """The first error of a start (with its next lines) and the last lines of its log.

    Kafka logs its whole shutdown after a fatal error, so the cause (say a port in use) sits
    well above the last lines.
    """
    lines = _read_log(path, offset)
    if not lines:
        return f"{path} is empty or missing."
    tail_start = max(len(lines) - _LOG_TAIL_LINES, 0)
    first_error = next((i for i, line in enumerate(lines) if _ERROR_LINE.search(line)), None)
    excerpt = ""
    if first_error is not None and first_error < tail_start:
        excerpt = f"First error in {path}:\n{_indented(lines[first_error : first_error + 6])}\n"
    return excerpt + f"Last lines of {path}:\n{_indented(lines[tail_start:])}"


def _output_tail(output: str, lines: int = 30) -> str:
    return _indented(output.strip().splitlines()[-lines:])


def _launch_detached(argv: Sequence[str], cwd: Path, log_file: Path) -> int:
    """Start `argv` fully detached and return its pid.

    A short-lived shell in a new session puts the program in the background and exits, so the
    program is reparented to init: it outlives this process and never becomes our zombie.
    """
    script = 'log=$1; shift; "$@" </dev/null >>"$log" 2>&1 & echo $!'
    result = subprocess.run(
        ["/bin/sh", "-c", script, "sh", str(log_file), *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        start_new_session=True,
        check=False,
    )
    if result.returncode != 0 or not result.stdout.strip().isdigit():
        raise StackError(f"could not start {argv[0]}: {result.stderr.strip() or result.stdout}")
    return int(result.stdout.strip())


# --------------------------------------------------------------------------- probes


def _host_port(address: str, default_port: int) -> tuple[str, int]:
    host, _, port = address.strip().rpartition(":")
    if not host:
        return port or "localhost", default_port
    return host.strip("[]"), int(port)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        data += chunk
    return data


def _metadata_request(correlation_id: int) -> bytes:
    """A Kafka Metadata v1 request for no topics: it answers with the live brokers only."""
    client_id = b"payhooks-stack"
    header = struct.pack(">hhih", 3, 1, correlation_id, len(client_id)) + client_id
    payload = header + struct.pack(">i", 0)  # topics: empty array (v1: no topics, not all)
    return struct.pack(">i", len(payload)) + payload


def _broker_metadata_ok(address: str, timeout: float) -> bool:
    host, port = _host_port(address, DEFAULT_KAFKA_PORT)
    correlation_id = int.from_bytes(os.urandom(3), "big")
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(_metadata_request(correlation_id))
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        if not 8 <= size <= 1 << 20:
            return False
        answered_id: int
        brokers: int
        answered_id, brokers = struct.unpack(">ii", _recv_exact(sock, size)[:8])
    # A starting or fenced broker lists no brokers yet; a ready one lists itself.
    return answered_id == correlation_id and brokers >= 1


def kafka_answers(bootstrap: str, timeout: float = 3.0) -> bool:
    """True when a broker of `bootstrap` answers a real Metadata request and lists a live broker."""
    for address in bootstrap.split(","):
        with contextlib.suppress(OSError, ValueError, struct.error):
            if _broker_metadata_ok(address, timeout):
                return True
    return False


def redis_answers(url: str, timeout: float = 2.0) -> bool:
    """True when the Redis server of `url` answers PING with PONG."""
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "localhost", parts.port or DEFAULT_REDIS_PORT), timeout=timeout
        ) as sock:
            sock.sendall(b"PING\r\n")
            return _recv_exact(sock, 7) == b"+PONG\r\n"
    except (OSError, ValueError):
        return False


# --------------------------------------------------------------------------- prerequisites


def _run_apt(args: Sequence[str]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise StackError(
            f"`{' '.join(args)}` failed (exit code {result.returncode}):\n"
            f"{_output_tail(result.stdout + result.stderr)}\n"
            "Fix the package problem above, or install the package by hand, then run it again."
        )


@contextlib.contextmanager
def _services_kept_stopped() -> Iterator[None]:
    """Forbid Debian maintainer scripts to start services (policy-rc.d exit 101), then restore."""
    saved = _POLICY_RC_D.read_bytes() if _POLICY_RC_D.exists() else None
    saved_mode = _POLICY_RC_D.stat().st_mode if saved is not None else 0
    _POLICY_RC_D.write_text(
        "#!/bin/sh\n# payhooks.stack: installing, start no services\nexit 101\n"
    )
    _POLICY_RC_D.chmod(0o755)
    try:
        yield
    finally:
        if saved is None:
            _POLICY_RC_D.unlink(missing_ok=True)
        else:
            _POLICY_RC_D.write_bytes(saved)
            _POLICY_RC_D.chmod(stat.S_IMODE(saved_mode))


def _apt_install(packages: Sequence[str]) -> None:
    log.info("installing %s with apt-get (services stay stopped)", " ".join(packages))
    with _file_lock(cache_dir() / "apt.lock"), _services_kept_stopped():
        _run_apt(["apt-get", "update"])
        _run_apt(["apt-get", "install", "-y", "--no-install-recommends", *packages])


def _find_redis_server() -> str | None:
    found = shutil.which("redis-server")
    if found is None and Path("/usr/bin/redis-server").exists():
        found = "/usr/bin/redis-server"
    return found


def ensure_redis_server() -> str:
    """Path of redis-server, installing Debian's package first when missing and running as root."""
    found = _find_redis_server()
    if found is not None:
        return found
    if os.geteuid() != 0:
        raise StackError(
            "redis-server is not installed; install Debian's redis-server: "
            "sudo apt-get install redis-server"
        )
    _apt_install(["redis-server"])
    found = _find_redis_server()
    if found is None:
        raise StackError("apt-get installed redis-server but no redis-server binary was found")
    return found


def ensure_java_and_maven() -> None:
    """Make sure `java` and `mvn` are on PATH, installing them with apt-get when root."""
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise StackError(
            f"{' and '.join(missing)} not found; the local Kafka needs a Java 17 runtime and "
            "Maven: sudo apt-get install default-jre-headless maven"
        )
    _apt_install(["default-jre-headless", "maven"])
    still_missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if still_missing:
        raise StackError(f"apt-get ran but {' and '.join(still_missing)} is still not on PATH")


# --------------------------------------------------------------------------- Kafka jars


def _deploy_file(name: str) -> Path:
    """A file of the repository's deploy/kafka/ folder (the pom and the broker's log4j config)."""
    path = Path(__file__).resolve().parent.parent / "deploy" / "kafka" / name
    if not path.is_file():
        raise StackError(
            f"{path} is missing; payhooks.stack runs from a source checkout of payhooks "
            "(pip install -e .) that has deploy/kafka/"
        )
    return path


def _jars_stamp(pom: Path) -> str:
    """What a complete jar folder was fetched from: a changed pom or version fetches again."""
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    return f"kafka {KAFKA_VERSION}\npom sha256 {digest}\n"


def _jars_complete(home: Path, stamp: str) -> bool:
    marker = home / _JARS_MARKER
    core_jar = home / "libs" / f"kafka_2.13-{KAFKA_VERSION}.jar"
    return marker.is_file() and marker.read_text() == stamp and core_jar.is_file()


def _run_maven(pom: Path, output_dir: Path) -> None:
    args = [
        "mvn", "-B", "-q", "-f", str(pom), f"-Dkafka.version={KAFKA_VERSION}",
        "dependency:copy-dependencies", f"-DoutputDirectory={output_dir}",
    ]  # fmt: skip
    try:
        # cwd outside the repository, so nothing Maven writes lands in git.
        result = subprocess.run(
            args, cwd=output_dir.parent, capture_output=True, text=True, timeout=900, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise StackError("Maven did not finish fetching the Kafka jars within 15 minutes") from exc
    if result.returncode != 0:
        raise StackError(
            f"Maven could not fetch the Kafka {KAFKA_VERSION} jars (exit code "
            f"{result.returncode}):\n{_output_tail(result.stdout + result.stderr)}\n"
            "Check that Maven Central (https://repo.maven.apache.org) is reachable, or that "
            "~/.m2/settings.xml names a reachable mirror, then run it again."
        )


def _download_jars(pom: Path, home: Path) -> None:
    """Fetch into a scratch folder, then swap it in, so a half-done fetch is never used."""
    libs, partial = home / "libs", home / "libs.partial"
    (home / _JARS_MARKER).unlink(missing_ok=True)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    _run_maven(pom, partial)
    if not (partial / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file():
        raise StackError(f"Maven finished but kafka_2.13-{KAFKA_VERSION}.jar is not in {partial}")
    shutil.rmtree(libs, ignore_errors=True)
    partial.rename(libs)


def fetch_kafka_jars() -> Path:
    """The folder holding every jar the broker needs, fetched with Maven on first use."""
    home = cache_dir() / f"kafka-{KAFKA_VERSION}"
    stamp = _jars_stamp(_deploy_file("pom.xml"))
    if _jars_complete(home, stamp):
        return home / "libs"
    with _file_lock(cache_dir() / f"kafka-{KAFKA_VERSION}.lock"):
        if not _jars_complete(home, stamp):  # another process may have finished meanwhile
            ensure_java_and_maven()
            log.info(
                "fetching Apache Kafka %s jars from Maven Central into %s", KAFKA_VERSION, home
            )
            _download_jars(_deploy_file("pom.xml"), home)
            (home / _JARS_MARKER).write_text(stamp)
    return home / "libs"


# --------------------------------------------------------------------------- managed processes


class _LocalProcess:
    """A server process of ours: its config, pid file and log live in `state_dir`."""

    name = "process"
    config_name = "server.conf"
    default_timeout = 30.0  # seconds start() waits by default

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir.expanduser().resolve()
        self.pid_file = self.state_dir / f"{self.name}.pid"
        self.log_file = self.state_dir / f"{self.name}.log"
        self.config_file = self.state_dir / self.config_name
        self._lock_file = self.state_dir / f".{self.name}.lock"

    @property
    def address(self) -> str:
        raise NotImplementedError

    def answers(self, timeout: float = 2.0) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 30.0) -> None:
        """Start it unless ours already runs, and wait until it answers."""
        self._ensure_started(timeout)

    def _ensure_started(self, timeout: float) -> bool:
        """Like start(); True when this call launched the process (not another caller)."""
        with _file_lock(self._lock_file):
            pid = self.pid()
            if pid is not None:
                self._wait_ready(pid, timeout)
                return False
            self._launch(timeout)
            return True

    def _launch(self, timeout: float) -> None:
        raise NotImplementedError

    def pid(self) -> int | None:
        """The pid from our pid file, only while that process lives and is really ours."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        # A stale pid may since belong to anything; ours runs with our config file.
        if _alive(pid) and str(self.config_file) in _cmdline(pid):
            return pid
        return None

    def is_running(self) -> bool:
        return self.pid() is not None

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, wait, then SIGKILL; no error when not running."""
        with _file_lock(self._lock_file):
            self._stop_unlocked(timeout)

    def kill(self) -> None:
        """SIGKILL at once, as a crash would."""
        pid = self.pid()
        if pid is not None:
            _signal(pid, signal.SIGKILL)
            _wait_gone(pid, 10.0)
        self.pid_file.unlink(missing_ok=True)

    def _stop_unlocked(self, timeout: float) -> None:
        pid = self.pid()
        if pid is not None:
            log.info("stopping %s (pid %d)", self.name, pid)
            _terminate(pid, timeout)
        self.pid_file.unlink(missing_ok=True)

    def _launch_and_wait(self, argv: Sequence[str], timeout: float) -> None:
        """Start `argv` in the background and wait until it answers; on failure stop it again."""
        self.log_file.touch()
        log_offset = self.log_file.stat().st_size  # the error shows only this start's lines
        pid = _launch_detached(argv, self.state_dir, self.log_file)
        self.pid_file.write_text(f"{pid}\n")
        log.info(
            "started %s (pid %d), waiting until it answers on %s", self.name, pid, self.address
        )
        try:
            self._wait_ready(pid, timeout, log_offset)
        except StackError:
            _terminate(pid, 10.0)
            self.pid_file.unlink(missing_ok=True)
            raise

    def _wait_ready(self, pid: int, timeout: float, log_offset: int = 0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if not _alive(pid):
                raise self._failure("the process exited during start-up", log_offset)
            remaining = deadline - time.monotonic()
            if self.answers(timeout=min(2.0, max(remaining, 0.2))):
                return
            if time.monotonic() >= deadline:
                raise self._failure(f"it did not answer within {timeout:g} s", log_offset)
            time.sleep(0.25)

    def _failure(self, reason: str, log_offset: int) -> StackError:
        return StackError(
            f"{self.name} on {self.address} did not come up: {reason}.\n"
            f"{_log_excerpt(self.log_file, log_offset)}\n"
            "Fix the cause shown above (a port already in use? `ss -ltnp` names its owner), "
            "then start it again."
        )


class KafkaNode(_LocalProcess):
    """One single-node KRaft broker+controller in its own state folder."""

    name = "kafka"
    config_name = "server.properties"
    default_timeout = 60.0

    def __init__(
        self,
        state_dir: Path,
        port: int = DEFAULT_KAFKA_PORT,
        controller_port: int = DEFAULT_CONTROLLER_PORT,
        heap_mb: int = 512,
    ) -> None:
        super().__init__(state_dir)
        self.port = port
        self.controller_port = controller_port
        self.heap_mb = heap_mb
        self.data_dir = self.state_dir / "data"

    @property
    def bootstrap(self) -> str:
        return f"localhost:{self.port}"

    @property
    def address(self) -> str:
        return self.bootstrap

    def answers(self, timeout: float = 3.0) -> bool:
        return kafka_answers(self.bootstrap, timeout)

    def start(self, timeout: float = 60.0) -> None:
        """Start the broker (formatting its storage on first start) and wait until it answers."""
        self._ensure_started(timeout)

    def _launch(self, timeout: float) -> None:
        libs = fetch_kafka_jars()
        java = _java()
        self.config_file.write_text(self._server_properties())  # ports may differ each start
        self._format_storage(java, libs)
        self._launch_and_wait(self._broker_command(java, libs), timeout)

    def _server_properties(self) -> str:
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@localhost:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://localhost:{self.port},CONTROLLER://localhost:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://localhost:{self.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "auto.create.topics.enable": "false",  # topics are code; tests make their own
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Small and quick on a 2-core laptop: fewer internal partitions and threads.
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.num.partitions": "4",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "background.threads": "4",
            "log.cleaner.dedupe.buffer.size": "33554432",  # 32 MiB instead of 128 of a 512 MiB heap
            "group.min.session.timeout.ms": "1000",  # lets crash tests use short session timeouts
            # After a kill -9 the new broker incarnation is refused until the old one's session
            # expires (9 s by default); a shorter session makes crash tests restart faster.
            "broker.session.timeout.ms": "3000",
            "broker.heartbeat.interval.ms": "500",
        }
        lines = ["# Written by payhooks.stack on every start; edits are overwritten."]
        lines += [f"{key}={value}" for key, value in settings.items()]
        return "\n".join(lines) + "\n"

    def _cluster_id(self) -> str:
        """Generated once per state folder, in Kafka's form (22 url-safe base64 chars)."""
        id_file = self.state_dir / "cluster.id"
        if id_file.is_file():
            return id_file.read_text().strip()
        cluster_id = "-"
        while cluster_id.startswith("-"):  # Kafka never issues ids that read like an option
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        id_file.write_text(cluster_id + "\n")
        return cluster_id

    def _format_storage(self, java: str, libs: Path) -> None:
        if (self.data_dir / "meta.properties").is_file():
            return
        log.info("formatting Kafka storage in %s", self.data_dir)
        args = [
            java, "-Xmx256m", *_log4j_options(), "-cp", f"{libs}/*",
            "kafka.tools.StorageTool", "format", "--ignore-formatted",
            "-t", self._cluster_id(), "-c", str(self.config_file),
        ]  # fmt: skip
        result = subprocess.run(args, capture_output=True, text=True, timeout=180, check=False)
        if result.returncode != 0:
            raise StackError(
                f"formatting Kafka storage in {self.data_dir} failed (exit code "
                f"{result.returncode}):\n{_output_tail(result.stdout + result.stderr)}\n"
                f"If the folder is damaged, delete {self.state_dir} and start again."
            )

    def _broker_command(self, java: str, libs: Path) -> list[str]:
        heap = f"{self.heap_mb}m"
        return [
            java, f"-Xmx{heap}", f"-Xms{heap}",
            # Kafka's own JVM defaults, plus caps that keep a test broker small.
            "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent", "-XX:MaxMetaspaceSize=256m",
            "-XX:MaxDirectMemorySize=256m", "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true", f"-Dkafka.logs.dir={self.state_dir}",
            *_log4j_options(), "-cp", f"{libs}/*", "kafka.Kafka", str(self.config_file),
        ]  # fmt: skip


def _java() -> str:
    if shutil.which("java") is None:
        ensure_java_and_maven()
    return shutil.which("java") or "java"


def _log4j_options() -> list[str]:
    return [f"-Dlog4j.configuration=file:{_deploy_file('log4j.properties')}"]


class RedisNode(_LocalProcess):
    """redis-server with AOF persistence (appendfsync everysec) in its own state folder."""

    name = "redis"
    config_name = "redis.conf"
    default_timeout = 20.0

    def __init__(self, state_dir: Path, port: int = DEFAULT_REDIS_PORT) -> None:
        super().__init__(state_dir)
        self.port = port
        self.data_dir = self.state_dir / "data"

    @property
    def url(self) -> str:
        return f"redis://localhost:{self.port}/0"

    @property
    def address(self) -> str:
        return self.url

    def answers(self, timeout: float = 2.0) -> bool:
        return redis_answers(self.url, timeout)

    def start(self, timeout: float = 20.0, *, fresh: bool = False) -> None:
        """Start redis-server and wait for PONG; `fresh` stops it and deletes its data first."""
        if fresh:
            with _file_lock(self._lock_file):
                self._stop_unlocked(30.0)
                shutil.rmtree(self.data_dir, ignore_errors=True)
        self._ensure_started(timeout)

    def _launch(self, timeout: float) -> None:
        server = ensure_redis_server()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self._config())
        self._launch_and_wait([server, str(self.config_file)], timeout)

    def _config(self) -> str:
        return (
            "# Written by payhooks.stack on every start; edits are overwritten.\n"
            f"port {self.port}\n"
            "bind 127.0.0.1 -::1\n"  # "-": skip ::1 where the machine has no IPv6
            "protected-mode yes\n"
            "daemonize no\n"
            "supervised no\n"
            "set-proc-title no\n"  # keep the config path in /proc/<pid>/cmdline: proves it is ours
            f'dir "{self.data_dir}"\n'
            'logfile ""\n'
            "always-show-logo no\n"
            'save ""\n'
            "appendonly yes\n"
            "appendfsync everysec\n"
        )


# --------------------------------------------------------------------------- up / down / status


def _nodes(
    state_dir: Path, kafka_port: int, controller_port: int, redis_port: int
) -> tuple[KafkaNode, RedisNode]:
    kafka = KafkaNode(state_dir / "kafka", port=kafka_port, controller_port=controller_port)
    return kafka, RedisNode(state_dir / "redis", port=redis_port)


def _service(node: _LocalProcess, status: str, pid: int | None) -> ServiceSummary:
    return {
        "address": node.address,
        "status": status,
        "pid": pid,
        "log": str(node.log_file) if pid is not None else None,
    }


def _bring_up(node: _LocalProcess) -> ServiceSummary:
    if not node.is_running() and node.answers():
        return _service(node, EXTERNAL_LEFT_ALONE, None)
    # Locked inside: of two racing `up`s one starts it, the other finds it running.
    launched = node._ensure_started(node.default_timeout)
    return _service(node, STARTED if launched else ALREADY_RUNNING, node.pid())


def _bring_down(node: _LocalProcess) -> ServiceSummary:
    pid = node.pid()
    node.stop()  # also removes a stale pid file
    if pid is not None:
        return _service(node, STOPPED, pid)
    return _service(node, EXTERNAL_LEFT_ALONE if node.answers() else NOT_RUNNING, None)


def _report(node: _LocalProcess) -> ServiceSummary:
    pid = node.pid()
    if pid is not None:
        return _service(node, RUNNING if node.answers() else NOT_ANSWERING, pid)
    return _service(node, EXTERNAL if node.answers() else NOT_RUNNING, None)


def _summary(
    state_dir: Path,
    kafka: KafkaNode,
    redis: RedisNode,
    each: Callable[[_LocalProcess], ServiceSummary],
) -> StackSummary:
    redis_summary = each(redis)  # first: quick, so a missing redis-server shows before Kafka
    return {
        "state_dir": str(state_dir),
        "bootstrap": kafka.bootstrap,
        "redis_url": redis.url,
        "kafka": each(kafka),
        "redis": redis_summary,
    }


def up(
    state_dir: Path,
    *,
    kafka_port: int = DEFAULT_KAFKA_PORT,
    controller_port: int = DEFAULT_CONTROLLER_PORT,
    redis_port: int = DEFAULT_REDIS_PORT,
) -> StackSummary:
    """Make Kafka and Redis answer, starting our own only where nothing answers yet."""
    kafka, redis = _nodes(state_dir, kafka_port, controller_port, redis_port)
    return _summary(state_dir, kafka, redis, _bring_up)


def down(
    state_dir: Path,
    *,
    kafka_port: int = DEFAULT_KAFKA_PORT,
    controller_port: int = DEFAULT_CONTROLLER_PORT,
    redis_port: int = DEFAULT_REDIS_PORT,
    only: Collection[str] = ("kafka", "redis"),
) -> StackSummary:
    """Stop the processes whose pid files are under `state_dir`, and only those (of `only`)."""
    kafka, redis = _nodes(state_dir, kafka_port, controller_port, redis_port)

    def each(node: _LocalProcess) -> ServiceSummary:
        name = "kafka" if node is kafka else "redis"
        return _bring_down(node) if name in only else _report(node)

    return _summary(state_dir, kafka, redis, each)


def prepare() -> dict[str, str]:
    """Install what the stack needs on a fresh machine, without starting anything."""
    ensure_java_and_maven()
    redis_server = ensure_redis_server()
    jars = fetch_kafka_jars()
    return {"redis_server": redis_server, "kafka_jars": str(jars), "kafka_version": KAFKA_VERSION}


def status(
    state_dir: Path,
    *,
    kafka_port: int = DEFAULT_KAFKA_PORT,
    controller_port: int = DEFAULT_CONTROLLER_PORT,
    redis_port: int = DEFAULT_REDIS_PORT,
) -> StackSummary:
    """What runs: ours (pid file under `state_dir`), external, or nothing."""
    kafka, redis = _nodes(state_dir, kafka_port, controller_port, redis_port)
    return _summary(state_dir, kafka, redis, _report)


# --------------------------------------------------------------------------- command line


def _display_path(path: str) -> str:
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _human_line(name: str, service: ServiceSummary) -> str:
    details = []
    if service["pid"] is not None:
        details.append(f"pid {service['pid']}")
    if service["log"] is not None:
        details.append(f"log {_display_path(service['log'])}")
    suffix = f" ({', '.join(details)})" if details else ""
    return f"{name:<6} {service['address']:<26} {service['status']}{suffix}"


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m payhooks.stack",
        description="Start, stop or inspect the local Kafka (localhost:9092) and Redis "
        "(localhost:6379) in the background, without Docker.",
    )
    parser.add_argument("command", choices=["up", "down", "status", "prepare"])
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("PAYHOOKS_STATE_DIR", ".stack")),
        help="config, data, pid files and logs (default: $PAYHOOKS_STATE_DIR or ./.stack)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m payhooks.stack up|down|status [--state-dir DIR] [--json]`."""
    args = _parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)  # progress goes to stderr, the summary to stdout
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    commands = {"up": up, "down": down, "status": status}
    try:
        if args.command == "prepare":
            ready = prepare()
            sys.stdout.write(json.dumps(ready, indent=2) + "\n" if args.json else
                             f"ready: {ready['redis_server']}, Kafka {KAFKA_VERSION} jars in "
                             f"{ready['kafka_jars']}\n")
            return 0
        summary = commands[args.command](args.state_dir)
    except (StackError, OSError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    if args.json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    else:
        lines = [_human_line(name, summary[name]) for name in ("kafka", "redis")]
        sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
