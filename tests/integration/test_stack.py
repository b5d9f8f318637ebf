"""The local stack runs a real Kafka and Redis, and up/down only touch what they started."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from redis.asyncio import Redis

from payhooks.stack import (
    ALREADY_RUNNING,
    EXTERNAL_LEFT_ALONE,
    NOT_RUNNING,
    RUNNING,
    STARTED,
    STOPPED,
    KafkaNode,
    RedisNode,
    StackError,
    StackSummary,
    down,
    ensure_redis_server,
    kafka_answers,
    redis_answers,
    status,
    up,
)

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Stack:
    state_dir: Path
    kafka_port: int
    controller_port: int
    redis_port: int
    summary: StackSummary

    def kafka(self) -> KafkaNode:
        return KafkaNode(
            self.state_dir / "kafka", port=self.kafka_port, controller_port=self.controller_port
        )

    def redis(self) -> RedisNode:
        return RedisNode(self.state_dir / "redis", port=self.redis_port)

    def up_again(self) -> StackSummary:
        return up(self.state_dir, **self.ports())

    def ports(self) -> dict[str, int]:
        return {
            "kafka_port": self.kafka_port,
            "controller_port": self.controller_port,
            "redis_port": self.redis_port,
        }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One Kafka and one Redis for the whole module, on free ports, started by `up`."""
    state_dir = tmp_path_factory.mktemp("stack")
    ports = {"kafka_port": free_port(), "controller_port": free_port(), "redis_port": free_port()}
    try:
        summary = up(state_dir, **ports)
        yield Stack(state_dir, summary=summary, **ports)
    finally:
        down(state_dir, **ports)


@pytest.fixture
def foreign_redis(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A redis-server started by hand, not by payhooks.stack."""
    port = free_port()
    process = subprocess.Popen(
        [ensure_redis_server(), "--port", str(port), "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not redis_answers(f"redis://localhost:{port}/0"):
            assert process.poll() is None, "the hand-started redis-server exited"
            assert time.monotonic() < deadline, "the hand-started redis-server did not answer"
            time.sleep(0.1)
        yield process, port
    finally:
        process.kill()
        process.wait()


async def create_topic(bootstrap: str, name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()


async def list_topics(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics: list[str] = await admin.list_topics()
        return topics
    finally:
        await admin.close()


def java_processes_using(config_file: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if str(config_file).encode() in cmdline:
                pids.append(int(entry.name))
    return pids


def test_up_starts_kafka_and_redis_that_answer(stack: Stack) -> None:
    assert stack.summary["kafka"]["status"] == STARTED
    assert stack.summary["redis"]["status"] == STARTED
    assert kafka_answers(stack.summary["bootstrap"])
    assert redis_answers(stack.summary["redis_url"])
    assert Path(stack.summary["kafka"]["log"] or "").is_file()


async def test_a_record_sent_with_acks_all_and_idempotence_comes_back_to_a_consumer(
    stack: Stack,
) -> None:
    bootstrap = stack.summary["bootstrap"]
    topic = f"roundtrip-{uuid.uuid4().hex[:8]}"
    await create_topic(bootstrap, topic)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"captured", key=b"stripe:pi_1")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=20)
    finally:
        await consumer.stop()
    assert (record.key, record.value) == (b"stripe:pi_1", b"captured")


def test_up_again_reuses_the_running_processes(stack: Stack) -> None:
    again = stack.up_again()
    assert again["kafka"]["status"] == ALREADY_RUNNING
    assert again["redis"]["status"] == ALREADY_RUNNING
    assert again["kafka"]["pid"] == stack.summary["kafka"]["pid"]
    assert again["redis"]["pid"] == stack.summary["redis"]["pid"]


def test_starting_a_running_kafka_node_again_starts_no_second_process(stack: Stack) -> None:
    node = stack.kafka()
    node.start()
    assert java_processes_using(node.config_file) == [node.pid()]


def test_status_reports_both_services_as_ours_and_running(stack: Stack) -> None:
    report = status(stack.state_dir, **stack.ports())
    assert (report["kafka"]["status"], report["redis"]["status"]) == (RUNNING, RUNNING)


@pytest.mark.slow
async def test_a_topic_created_before_stop_is_still_there_after_start(stack: Stack) -> None:
    node = stack.kafka()
    topic = f"durable-{uuid.uuid4().hex[:8]}"
    await create_topic(node.bootstrap, topic)
    node.stop()
    assert not node.is_running()
    assert not kafka_answers(node.bootstrap, timeout=1)
    node.start()
    assert topic in await list_topics(node.bootstrap)


@pytest.mark.slow
async def test_a_killed_kafka_node_starts_again_with_its_topics(stack: Stack) -> None:
    node = stack.kafka()
    topic = f"crash-{uuid.uuid4().hex[:8]}"
    await create_topic(node.bootstrap, topic)
    node.kill()
    assert not node.is_running()
    node.start()
    assert topic in await list_topics(node.bootstrap)


async def test_redis_keeps_a_key_across_stop_and_start(stack: Stack) -> None:
    node = stack.redis()
    client = Redis.from_url(node.url)
    await client.set("payhooks:test:kept", "yes")
    await client.aclose()
    node.stop()
    assert not redis_answers(node.url, timeout=0.5)
    node.start()
    client = Redis.from_url(node.url)
    try:
        assert await client.get("payhooks:test:kept") == b"yes"
    finally:
        await client.aclose()


async def test_redis_started_fresh_has_no_data(stack: Stack) -> None:
    node = stack.redis()
    client = Redis.from_url(node.url)
    await client.set("payhooks:test:gone", "yes")
    await client.aclose()
    node.start(fresh=True)
    client = Redis.from_url(node.url)
    try:
        assert await client.dbsize() == 0
    finally:
        await client.aclose()


def test_up_and_down_leave_alone_services_they_did_not_start(
    stack: Stack, foreign_redis: tuple[subprocess.Popen[bytes], int], tmp_path: Path
) -> None:
    process, redis_port = foreign_redis
    ports = {
        "kafka_port": stack.kafka_port,
        "controller_port": free_port(),
        "redis_port": redis_port,
    }
    started = up(tmp_path / "other", **ports)
    stopped = down(tmp_path / "other", **ports)
    assert [started[name]["status"] for name in ("kafka", "redis")] == [EXTERNAL_LEFT_ALONE] * 2
    assert [stopped[name]["status"] for name in ("kafka", "redis")] == [EXTERNAL_LEFT_ALONE] * 2
    assert process.poll() is None
    assert kafka_answers(stack.summary["bootstrap"])


def test_down_ignores_a_pid_file_naming_a_process_it_did_not_start(
    foreign_redis: tuple[subprocess.Popen[bytes], int], tmp_path: Path
) -> None:
    process, redis_port = foreign_redis
    pid_file = tmp_path / "redis" / "redis.pid"
    pid_file.parent.mkdir()
    pid_file.write_text(f"{process.pid}\n")  # as if our redis died and its pid was reused
    report = down(tmp_path, kafka_port=free_port(), redis_port=redis_port)
    assert report["redis"]["status"] == EXTERNAL_LEFT_ALONE
    assert process.poll() is None
    assert not pid_file.exists()


def test_down_stops_what_up_started_and_nothing_else(stack: Stack, tmp_path: Path) -> None:
    ports = {
        "kafka_port": stack.kafka_port,
        "controller_port": free_port(),
        "redis_port": free_port(),
    }
    started = up(tmp_path, **ports)
    first, second = down(tmp_path, **ports), down(tmp_path, **ports)
    assert (started["redis"]["status"], first["redis"]["status"]) == (STARTED, STOPPED)
    assert second["redis"]["status"] == NOT_RUNNING
    assert not redis_answers(started["redis_url"], timeout=0.5)
    assert first["kafka"]["status"] == EXTERNAL_LEFT_ALONE
    assert kafka_answers(stack.summary["bootstrap"])


@pytest.mark.slow
def test_kafka_that_cannot_bind_its_port_raises_a_stack_error_with_the_log_tail(
    tmp_path: Path,
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        node = KafkaNode(tmp_path, port=squatter.getsockname()[1], controller_port=free_port())
        with pytest.raises(StackError) as failure:
            node.start(timeout=60)
    message = str(failure.value)
    assert "Address already in use" in message
    assert str(node.log_file) in message
    assert not node.is_running()
    assert not node.pid_file.exists()


def test_the_command_line_prints_status_as_json_and_as_lines(tmp_path: Path) -> None:
    env = {**os.environ, "PAYHOOKS_STATE_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "payhooks.stack", "status"]
    as_json = subprocess.run(
        [*command, "--json"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True
    )
    as_lines = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert json.loads(as_json.stdout)["state_dir"] == str(tmp_path)
    assert as_lines.returncode == 0
    assert [line.split()[0] for line in as_lines.stdout.splitlines()] == ["kafka", "redis"]
