"""Topics as code against a real broker: create what is missing, then report drift, idempotently."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from payhooks import topics
from payhooks.config import Settings
from tests.conftest import make_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def fresh_settings(kafka_bootstrap: str, redis_url: str) -> Settings:
    return make_settings(kafka_bootstrap, redis_url)


async def test_apply_creates_every_topic_then_reports_ok(fresh_settings: Settings) -> None:
    specs = topics.load_specs(fresh_settings, partitions=2)
    first = await topics.apply(fresh_settings, specs)
    assert {t.role: t.action for t in first.topics} == dict.fromkeys(
        fresh_settings.topics.by_role(), "created")
    second = await topics.apply(fresh_settings, specs)
    assert {t.action for t in second.topics} == {"ok"}
    assert not second.drifted


async def test_state_topic_is_compacted(fresh_settings: Settings) -> None:
    specs = topics.load_specs(fresh_settings, partitions=1)
    await topics.apply(fresh_settings, specs)
    state = next(s for s in specs if s.role == "state")
    wrong = dataclasses.replace(state, configs={**state.configs, "cleanup.policy": "delete"})
    report = await topics.apply(fresh_settings, [wrong])
    [only] = report.topics
    assert only.action == "drift"
    assert only.drift == ("cleanup.policy: 'compact' (wanted 'delete')",)


async def test_partition_drift_is_reported_not_changed(fresh_settings: Settings) -> None:
    await topics.apply(fresh_settings, topics.load_specs(fresh_settings, partitions=1))
    report = await topics.apply(fresh_settings, topics.load_specs(fresh_settings, partitions=4))
    assert report.drifted
    assert all("partitions: 1 (wanted 4)" in t.drift for t in report.topics)


async def test_dry_run_creates_nothing(fresh_settings: Settings) -> None:
    specs = topics.load_specs(fresh_settings, partitions=1)
    report = await topics.apply(fresh_settings, specs, dry_run=True)
    assert {t.action for t in report.topics} == {"would create"}
    again = await topics.apply(fresh_settings, specs, dry_run=True)
    assert {t.action for t in again.topics} == {"would create"}


def test_cli_apply_prints_json_and_exits_zero(fresh_settings: Settings, tmp_path: Path) -> None:
    config = tmp_path / "payhooks.toml"
    config.write_text(
        f'[kafka]\nbootstrap_servers = "{fresh_settings.kafka.bootstrap_servers}"\n[topics]\n'
        + "".join(f'{role} = "{name}"\n' for role, name in fresh_settings.topics.by_role().items())
    )
    args = [sys.executable, "-m", "payhooks", "--config", str(config), "topics", "apply",
            "--partitions", "1", "--json"]
    first = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert first.returncode == 0, first.stderr
    assert {t["action"] for t in orjson.loads(first.stdout)["topics"]} == {"created"}
    second = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert {t["action"] for t in orjson.loads(second.stdout)["topics"]} == {"ok"}


def test_fit_to_cluster_lowers_replication_and_min_isr_and_says_so() -> None:
    spec = topics.TopicSpec("raw", "r", 3, 3, {"min.insync.replicas": "2"})
    fitted, notes = topics.fit_to_cluster([spec], brokers=1)
    assert fitted[0].replication_factor == 1
    assert fitted[0].configs["min.insync.replicas"] == "1"
    assert notes
    unchanged, none = topics.fit_to_cluster([spec], brokers=3)
    assert unchanged == [spec]
    assert none == []
