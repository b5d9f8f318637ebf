"""`payhooks serve`, `consume` and `sim` as real processes: traffic flows, SIGTERM stops them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from payhooks.config import Settings
from tests.conftest import STRIPE_SECRET, free_port
from tests.support import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def write_config(settings: Settings, path: Path, port: int) -> Path:
    topics = "".join(f'{role} = "{name}"\n' for role, name in settings.topics.by_role().items())
    path.write_text(
        f'[kafka]\nbootstrap_servers = "{settings.kafka.bootstrap_servers}"\n'
        f'[redis]\nurl = "{settings.redis.url}"\nkey_prefix = "{settings.redis.key_prefix}"\n'
        f'[consumer]\ngroup_id = "{settings.consumer.group_id}"\npoll_timeout_ms = 200\n'
        f'[ingest]\nport = {port}\n[topics]\n{topics}'
        f'[endpoints.stripe]\nprovider = "stripe"\nsecrets = ["{STRIPE_SECRET}"]\n'
    )
    return path


def payhooks(config: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PAYHOOKS_CONFIG": str(config)}
    return subprocess.Popen([sys.executable, "-m", "payhooks", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


async def test_serve_consume_and_sim_move_a_payment_flow_and_stop_on_sigterm(
        settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    config = write_config(settings, tmp_path / "payhooks.toml", port)
    receiver = payhooks(config, "serve")
    worker = payhooks(config, "consume")
    try:
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient(timeout=1) as client:
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.2)
        sim = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "payhooks", "sim", "--payments", "5", "--duplicates", "0.5",
            "--seed", "7", "--json", env={**os.environ, "PAYHOOKS_CONFIG": str(config)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await asyncio.wait_for(sim.communicate(), 60)
        assert sim.returncode == 0, out + err
        summary = orjson.loads(out)
        assert summary["accepted"] == summary["sent"] > 0
        unique = summary["sent"] - summary["duplicates"]
        events = await read_topic(settings, settings.topics.events, expect=unique, settle=2)
        ids = [orjson.loads(r.value)["event_id"] for r in events]
        assert len(ids) == len(set(ids)) == unique
    finally:
        for process in (receiver, worker):
            process.send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=30) for p in (receiver, worker)]
    logs = [p.stdout.read().decode() if p.stdout else "" for p in (receiver, worker)]
    # uvicorn re-raises the SIGTERM it handled once its shutdown is complete (so -15 is a clean
    # exit for the receiver); the worker returns normally
    assert codes[0] in (0, -signal.SIGTERM), logs[0]
    assert codes[1] == 0, logs[1]
    assert '"receiver_stopped"' in logs[0]
    assert '"worker_stopped"' in logs[1]
    assert "Traceback" not in logs[0] + logs[1]
