"""`payhooks replay` against real Kafka and Redis: dry runs write nothing, replays of processed
ranges create no transitions and never touch the live group, time windows and filters select
exactly what they name, and every executed replay leaves one audit record."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest
import structlog
from redis.asyncio import Redis

from payhooks.clikit import EXIT_USAGE
from payhooks.config import Settings
from schemas import wire
from tests.conftest import running_receiver, running_worker
from tests.integration.operator_support import (
    OPERATOR,
    audit_records,
    authorized,
    end_offsets,
    envelope,
    group_offsets,
    header_of,
    invoke,
    json_of,
    produce_envelopes,
)
from tests.integration.test_cli_services import write_config
from tests.support import eventually, post_stripe, read_topic

pytestmark = [pytest.mark.integration]


async def test_a_dry_run_counts_per_partition_and_type_and_writes_nothing(
        settings: Settings) -> None:
    items = [(envelope("stripe", f"pi_{i}", f"evt_{i}",
                       "payment_intent.succeeded" if i % 3 else "charge.refunded"), None)
             for i in range(12)]
    coordinates = await produce_envelopes(settings, items)
    before = await end_offsets(settings, settings.topics.raw)

    result = await invoke(settings, "replay", "--topic", settings.topics.raw, "--from-offset",
                          "0", "--reason", "INC-1 dry", "--json")

    assert result.exit_code == 0, result.output
    summary = json_of(result)
    assert summary["dry_run"] is True
    assert summary["audit_id"] is None
    assert summary["matched"] == summary["scanned"] == 12
    assert summary["written"] == 0
    assert summary["by_partition"] == {str(p): n for p, n in Counter(
        p for p, _ in coordinates).items()}
    assert summary["by_type"] == {"charge.refunded": 4, "payment_intent.succeeded": 8}
    assert await end_offsets(settings, settings.topics.raw) == before
    assert await audit_records(settings, expect=0) == []


async def test_a_replay_of_a_processed_range_adds_no_transitions_and_leaves_the_group_alone(
        settings: Settings, redis_client: Redis) -> None:
    payments = 6
    async with running_receiver(settings) as url, running_worker(settings, redis_client):
        async with httpx.AsyncClient() as client:
            for i in range(payments):
                answer = await post_stripe(client, f"{url}/webhooks/stripe",
                                           authorized(f"evt_r{i}", f"pi_r{i}"))
                assert answer.status_code == 200
        ends = await end_offsets(settings, settings.topics.raw)

        async def caught_up() -> bool:
            return await group_offsets(settings) == {p: e for p, e in ends.items() if e}

        await eventually(caught_up)
    transitions = await read_topic(settings, settings.topics.transitions, expect=payments)
    assert len(transitions) == payments  # one authorization each
    events = await read_topic(settings, settings.topics.events, expect=payments)
    committed = await group_offsets(settings)

    # the worker is stopped: whatever the replay does to the group would stay visible
    result = await invoke(settings, "replay", "--topic", settings.topics.raw, "--from-offset",
                          "0", "--rate", "1000", "--execute", "--reason", "INC-2 replay",
                          "--json")
    assert result.exit_code == 0, result.output
    summary = json_of(result)
    assert summary["written"] == summary["matched"] == payments
    assert await group_offsets(settings) == committed
    replayed = [r for r in await read_topic(settings, settings.topics.raw, expect=2 * payments)
                if header_of(r, wire.HEADER_REPLAY)]
    assert len(replayed) == payments
    assert {header_of(r, wire.HEADER_REPLAY) for r in replayed} == {summary["audit_id"]}
    [audit] = await audit_records(settings, expect=1)
    assert audit["id"] == summary["audit_id"]
    assert (audit["action"], audit["outcome"], audit["operator"]) == ("replay", "done", OPERATOR)
    assert audit["reason"] == "INC-2 replay"
    assert audit["counts"]["written"] == payments
    assert "--execute" in audit["command"]

    # the worker reads the replayed records: every one is a duplicate, nothing new downstream
    new_ends = await end_offsets(settings, settings.topics.raw)
    async with running_worker(settings, redis_client) as metrics:
        async def replay_consumed() -> bool:
            return await group_offsets(settings) == {p: e for p, e in new_ends.items() if e}

        await eventually(replay_consumed)
        duplicates = metrics.records.labels("duplicate")._value.get()
    assert duplicates == payments
    after = await read_topic(settings, settings.topics.transitions, expect=len(transitions) + 1,
                             timeout=5)
    assert len(after) == len(transitions)
    assert len(await read_topic(settings, settings.topics.events, expect=len(events) + 1,
                                timeout=5)) == len(events)


async def test_a_time_window_selects_exactly_the_records_inside_it(settings: Settings) -> None:
    base = (int(time.time()) - 3600) * 1000
    # per payment: records at base + 0, 10, 20, 30, 40 s; the window is [10 s, 30 s)
    items = [(envelope("stripe", f"pi_t{p}", f"evt_t{p}_{s}", "payment_intent.succeeded"),
              base + s * 1000) for p in range(4) for s in (0, 10, 20, 30, 40)]
    coordinates = await produce_envelopes(settings, items)
    inside = Counter(partition for (partition, _), (_, ts) in zip(coordinates, items, strict=True)
                     if base + 10_000 <= ts < base + 30_000)

    def iso(millis: int) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(millis / 1000))

    result = await invoke(settings, "replay", "--topic", settings.topics.raw,
                          "--from-time", iso(base + 10_000), "--to-time", iso(base + 30_000),
                          "--reason", "INC-3 window", "--execute", "--rate", "1000", "--json")
    assert result.exit_code == 0, result.output
    summary = json_of(result)
    assert summary["written"] == 8
    assert summary["by_partition"] == {str(p): n for p, n in inside.items()}
    replayed = [r for r in await read_topic(settings, settings.topics.raw, expect=28)
                if header_of(r, wire.HEADER_REPLAY)]
    ids = sorted(orjson.loads(r.value)["event_id"] for r in replayed)
    assert ids == sorted(f"evt_t{p}_{s}" for p in range(4) for s in (10, 20))


@pytest.mark.parametrize(("option", "value", "expected"), [
    ("--payment", "stripe:pi_f1", {"evt_f1_a", "evt_f1_b"}),
    ("--provider", "adyen", {"evt_f3_a", "evt_f3_b"}),
    ("--type", "charge.refunded", {"evt_f1_b", "evt_f2_b", "evt_f3_b"}),
])
async def test_filters_select_exactly_what_they_name(settings: Settings, option: str,
                                                      value: str, expected: set[str]) -> None:
    items = [(envelope(provider, ref, f"evt_{ref[3:]}_{suffix}", kind), None)
             for provider, ref in (("stripe", "pi_f1"), ("stripe", "pi_f2"), ("adyen", "pi_f3"))
             for suffix, kind in (("a", "payment_intent.succeeded"), ("b", "charge.refunded"))]
    await produce_envelopes(settings, items)

    result = await invoke(settings, "replay", "--topic", settings.topics.raw, "--from-offset",
                          "0", option, value, "--reason", "INC-4 filter", "--execute",
                          "--rate", "1000", "--json")

    assert result.exit_code == 0, result.output
    assert json_of(result)["written"] == len(expected)
    replayed = [r for r in await read_topic(settings, settings.topics.raw, expect=8)
                if header_of(r, wire.HEADER_REPLAY)]
    assert {orjson.loads(r.value)["event_id"] for r in replayed} == expected
    assert len(replayed) == len(expected)


async def test_a_replay_without_a_start_is_a_usage_error_and_writes_nothing(
        settings: Settings) -> None:
    result = await invoke(settings, "replay", "--topic", settings.topics.raw, "--reason", "x",
                          "--execute")
    assert result.exit_code == EXIT_USAGE
    assert "--from-offset" in result.stderr
    assert await audit_records(settings, expect=0) == []


async def test_a_replay_of_another_topic_is_refused_as_usage(settings: Settings) -> None:
    result = await invoke(settings, "replay", "--topic", settings.topics.transitions,
                          "--from-offset", "0", "--reason", "x")
    assert result.exit_code == EXIT_USAGE
    assert settings.topics.raw in result.stderr


async def test_the_command_reads_the_services_configuration_file(settings: Settings,
                                                                 tmp_path: Path) -> None:
    await produce_envelopes(settings, [(envelope("stripe", "pi_c", "evt_c", "charge.refunded"),
                                        None)])
    config = write_config(settings, tmp_path / "payhooks.toml", port=8080)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "payhooks", "replay", "--topic", settings.topics.raw,
        "--from-offset", "0", "--reason", "INC-8", "--json",
        env={**os.environ, "PAYHOOKS_CONFIG": str(config)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err
    assert orjson.loads(out)["by_type"] == {"charge.refunded": 1}


async def test_an_executed_replay_logs_the_operator_action(settings: Settings) -> None:
    await produce_envelopes(settings, [(envelope("stripe", "pi_l", "evt_l", "x"), None)])
    with structlog.testing.capture_logs() as logs:
        result = await invoke(settings, "replay", "--topic", settings.topics.raw,
                              "--from-offset", "0", "--execute", "--reason", "INC-9", "--json")
    assert result.exit_code == 0, result.output
    [line] = [entry for entry in logs if entry["event"] == "operator_action"]
    assert line["audit_id"] == json_of(result)["audit_id"]
    assert (line["operator"], line["reason"], line["outcome"]) == (OPERATOR, "INC-9", "done")
