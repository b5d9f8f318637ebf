"""deploy/ files parse and agree with the code (no Docker engine here, so checked statically)."""

from __future__ import annotations

from pathlib import Path

import yaml

from payhooks import stack
from payhooks.config import TopicSettings, load_settings
from payhooks.topics import DEFAULT_TOPICS_FILE, load_specs

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_compose_runs_the_pinned_kafka_and_a_persistent_redis_on_the_stack_ports() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    kafka, redis = compose["services"]["kafka"], compose["services"]["redis"]
    assert kafka["image"] == f"apache/kafka:{stack.KAFKA_VERSION}"
    assert "9092:9092" in kafka["ports"]
    assert "6379:6379" in redis["ports"]
    assert "--appendonly" in redis["command"]
    for service in (kafka, redis):
        for volume in service["volumes"]:
            assert volume.split(":")[0] in compose["volumes"]


def test_topics_file_declares_every_topic_role_and_compacts_state() -> None:
    specs = {s.role: s for s in load_specs(load_settings(environ={}), DEFAULT_TOPICS_FILE)}
    assert set(specs) == set(TopicSettings().by_role())
    assert specs["state"].configs["cleanup.policy"] == "compact"
    assert all(s.configs.get("min.insync.replicas") == "2" for s in specs.values())
    assert all(s.replication_factor == 3 for s in specs.values())


def test_local_configuration_loads_and_serves_stripe() -> None:
    settings = load_settings(DEPLOY / "local" / "payhooks.toml", environ={})
    assert settings.endpoints["stripe"].provider == "stripe"
    assert settings.kafka.bootstrap_servers == "localhost:9092"
