"""Topics as code: read ``deploy/topics.yaml``, create what is missing, report drift of the rest."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from aiokafka.admin import NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError, for_code

from payhooks import kafka
from payhooks.config import Settings

DEFAULT_TOPICS_FILE = Path(__file__).resolve().parent.parent / "deploy" / "topics.yaml"
_MIN_ISR = "min.insync.replicas"


class TopicsFileError(Exception):
    """``deploy/topics.yaml`` is unusable; the message names the offending entry."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    role: str  # raw, events, ... (the key in topics.yaml and in [topics])
    name: str  # the configured topic name
    partitions: int
    replication_factor: int
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TopicReport:
    role: str
    name: str
    action: str  # created | ok | drift
    drift: tuple[str, ...] = ()  # human-readable differences, e.g. "partitions: 3 (wanted 12)"


@dataclass(frozen=True, slots=True)
class ApplyReport:
    brokers: int
    notes: tuple[str, ...]
    topics: tuple[TopicReport, ...]

    @property
    def drifted(self) -> bool:
        return any(t.action == "drift" for t in self.topics)


def load_specs(
    settings: Settings, path: Path = DEFAULT_TOPICS_FILE, partitions: int | None = None
) -> list[TopicSpec]:
    """The topics of ``path`` under their configured names; ``partitions`` overrides all counts."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TopicsFileError(f"{path}: cannot be read ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("topics"), dict):
        raise TopicsFileError(f"{path}: needs a 'topics' mapping")
    defaults = doc.get("defaults") or {}
    names = settings.topics.by_role()
    specs = []
    for role, declared in doc["topics"].items():
        if role not in names:
            raise TopicsFileError(f"{path}: topics.{role} is not a role of [topics]")
        entry = declared or {}
        configs = {**defaults.get("configs", {}), **entry.get("configs", {})}
        specs.append(
            TopicSpec(
                role=role,
                name=names[role],
                partitions=int(partitions or entry.get("partitions", 1)),
                replication_factor=int(
                    entry.get("replication_factor", defaults.get("replication_factor", 1))
                ),
                configs={str(k): str(v) for k, v in configs.items()},
            )
        )
    missing = set(names) - {s.role for s in specs}
    if missing:
        raise TopicsFileError(f"{path}: no entry for topic role(s) {', '.join(sorted(missing))}")
    return specs


def fit_to_cluster(specs: list[TopicSpec], brokers: int) -> tuple[list[TopicSpec], list[str]]:
    """Lower replication (and min ISR) to the broker count of a small cluster, saying so."""
    notes: list[str] = []
    fitted = []
    for spec in specs:
        if spec.replication_factor <= brokers:
            fitted.append(spec)
            continue
        configs = dict(spec.configs)
        if _MIN_ISR in configs and int(configs[_MIN_ISR]) > brokers:
            configs[_MIN_ISR] = str(brokers)
        fitted.append(replace(spec, replication_factor=brokers, configs=configs))
    if fitted != specs:
        notes.append(
            f"the cluster has {brokers} broker(s): replication lowered to {brokers} "
            "(fine for a local stack, never for production)"
        )
    return fitted, notes


async def apply(settings: Settings, specs: list[TopicSpec], dry_run: bool = False) -> ApplyReport:
    """Create the missing topics and compare the existing ones with their specs."""
    client = kafka.admin(settings.kafka)
    await client.start()
    try:
        cluster = await client.describe_cluster()
        brokers = len(cluster["brokers"])
        specs, notes = fit_to_cluster(specs, brokers)
        existing = await _describe(client, [s.name for s in specs])
        reports = []
        to_create = [s for s in specs if s.name not in existing]
        if to_create and not dry_run:
            already = await _create(client, to_create)
            # a topic this broker's metadata did not show yet, but the controller knows: describe
            # it properly (metadata catches up within moments) and check it like any other
            deadline = time.monotonic() + 10
            while already - existing.keys() and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                existing.update(await _describe(client, sorted(already)))
        for spec in specs:
            if spec.name not in existing:
                action = "would create" if dry_run else "created"
                reports.append(TopicReport(spec.role, spec.name, action))
                continue
            drift = _shape_drift(spec, existing[spec.name])
            drift += await _config_drift(client, spec)
            reports.append(
                TopicReport(spec.role, spec.name, "drift" if drift else "ok", tuple(drift))
            )
        return ApplyReport(brokers=brokers, notes=tuple(notes), topics=tuple(reports))
    finally:
        await client.close()


async def _describe(client: Any, names: list[str]) -> dict[str, Any]:
    """The described topics among ``names`` that exist (as this broker's metadata sees them)."""
    return {t["topic"]: t for t in await client.describe_topics(names) if t["error_code"] == 0}


async def _create(client: Any, specs: list[TopicSpec]) -> set[str]:
    """Create ``specs``; the names of those that turned out to exist already."""
    already: set[str] = set()
    response = await client.create_topics(
        [
            NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=dict(s.configs))
            for s in specs
        ]
    )
    for topic_error in response.topic_errors:
        name, code = topic_error[0], topic_error[1]
        if code == 0:
            continue
        error = for_code(code)
        if error is TopicAlreadyExistsError:  # created meanwhile, or metadata was behind
            already.add(name)
            continue
        message = topic_error[2] if len(topic_error) > 2 else ""
        raise error(f"cannot create topic {name}: {message}")
    return already


def _shape_drift(spec: TopicSpec, described: Mapping[str, Any]) -> list[str]:
    partitions = described["partitions"]
    drift = []
    if len(partitions) != spec.partitions:
        drift.append(f"partitions: {len(partitions)} (wanted {spec.partitions})")
    replicas = min((len(p["replicas"]) for p in partitions), default=0)
    if replicas != spec.replication_factor:
        drift.append(f"replication_factor: {replicas} (wanted {spec.replication_factor})")
    return drift


async def _config_drift(client: Any, spec: TopicSpec) -> list[str]:
    if not spec.configs:
        return []
    responses = await client.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, spec.name, configs=dict.fromkeys(spec.configs))]
    )
    actual: dict[str, str | None] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            for entry in resource["config_entries"]:
                actual[entry["config_names"]] = entry["config_value"]
    return [
        f"{key}: {actual.get(key)!r} (wanted {wanted!r})"
        for key, wanted in sorted(spec.configs.items())
        if actual.get(key) != wanted
    ]
