"""`payhooks offsets show | reset` against real Kafka and a real worker group: lag and members
are shown, a reset is refused while workers run, dry runs commit nothing, executed resets move
exactly the chosen partitions, and every executed reset leaves one audit record."""

from __future__ import annotations

import time

import orjson
import pytest
from redis.asyncio import Redis

from payhooks.clikit import EXIT_REFUSED
from payhooks.config import Settings
from tests.conftest import running_worker
from tests.integration.operator_support import (
    audit_records,
    authorized,
    end_offsets,
    envelope,
    group_offsets,
    invoke,
    json_of,
    produce_envelopes,
)
from tests.support import eventually

pytestmark = [pytest.mark.integration]


async def processed(settings: Settings, redis: Redis, count: int,
                    timestamp_ms: int | None = None) -> dict[int, int]:
    """``count`` records on the raw topic, read and committed by a worker that then stops."""
    await produce_envelopes(settings, [(envelope("stripe", f"pi_{i}", f"evt_{i}", "x"),
                                        timestamp_ms) for i in range(count)])
    ends = {p: e for p, e in (await end_offsets(settings, settings.topics.raw)).items() if e}
    async with running_worker(settings, redis):
        async def caught_up() -> bool:
            return await group_offsets(settings) == ends

        await eventually(caught_up)
    return ends


async def test_show_reports_committed_end_lag_and_members(settings: Settings,
                                                          redis_client: Redis) -> None:
    ends = await processed(settings, redis_client, 6)
    await produce_envelopes(settings, [(envelope("stripe", "pi_0", "evt_late", "x"), None)])

    shown = json_of(await invoke(settings, "offsets", "show", "--json"))

    assert shown["group"] == settings.consumer.group_id
    assert shown["members"] == []
    assert shown["lag"] == 1
    by_partition = {p["partition"]: p for p in shown["partitions"]}
    assert {p: v["committed"] for p, v in by_partition.items() if v["committed"]} == ends
    async with running_worker(settings, redis_client):
        async def joined() -> bool:
            return len(json_of(await invoke(settings, "offsets", "show", "--json"))["members"]) == 1

        await eventually(joined)


async def test_a_reset_is_refused_while_workers_run_even_with_force(
        settings: Settings, redis_client: Redis) -> None:
    ends = await processed(settings, redis_client, 4)
    async with running_worker(settings, redis_client):
        async def joined() -> bool:
            shown = json_of(await invoke(settings, "offsets", "show", "--json"))
            return shown["state"] == "Stable" and len(shown["members"]) == 1

        await eventually(joined)
        refused = await invoke(settings, "offsets", "reset", "--to-earliest", "--execute",
                               "--reason", "INC-5", "--json")
        forced = await invoke(settings, "offsets", "reset", "--to-earliest", "--execute",
                              "--force", "--reason", "INC-5 forced", "--json")
        assert await group_offsets(settings) == ends
    assert refused.exit_code == EXIT_REFUSED, refused.output
    assert "stop the workers" in refused.stderr
    assert forced.exit_code == EXIT_REFUSED, forced.output
    audits = await audit_records(settings, expect=2)
    assert [(a["action"], a["outcome"]) for a in audits] == [("offsets.reset", "refused")] * 2


async def test_a_dry_run_commits_nothing_and_an_executed_reset_moves_only_chosen_partitions(
        settings: Settings, redis_client: Redis) -> None:
    ends = await processed(settings, redis_client, 9)
    chosen = min(ends)

    dry = await invoke(settings, "offsets", "reset", "--to-earliest", "--partition", str(chosen),
                       "--reason", "INC-6", "--json")
    assert dry.exit_code == 0, dry.output
    assert json_of(dry)["moves"] == [{"partition": chosen, "before": ends[chosen], "after": 0}]
    assert await group_offsets(settings) == ends
    assert await audit_records(settings, expect=0) == []

    done = await invoke(settings, "offsets", "reset", "--to-earliest", "--partition",
                        str(chosen), "--execute", "--reason", "INC-6", "--json")
    assert done.exit_code == 0, done.output
    assert await group_offsets(settings) == {**ends, chosen: 0}
    [audit] = await audit_records(settings, expect=1)
    assert (audit["action"], audit["outcome"], audit["counts"]["moved"]) == (
        "offsets.reset", "done", 1)
    assert audit["range"]["moves"] == [{"partition": chosen, "before": ends[chosen], "after": 0}]


async def test_a_reset_to_a_time_moves_to_the_first_record_at_or_after_it(
        settings: Settings, redis_client: Redis) -> None:
    old = (int(time.time()) - 7200) * 1000
    await processed(settings, redis_client, 5, timestamp_ms=old)
    cut = int(time.time()) - 3600
    late = await produce_envelopes(settings, [(envelope("stripe", f"pi_{i}", f"evt_new{i}", "x"),
                                               None) for i in range(5)])
    first_late = {p: min(o for q, o in late if q == p) for p, _ in late}
    ends = await end_offsets(settings, settings.topics.raw)

    result = await invoke(settings, "offsets", "reset", "--to-time",
                          time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(cut)), "--execute",
                          "--reason", "INC-7", "--json")

    assert result.exit_code == 0, result.output
    committed = await group_offsets(settings)
    assert {p: committed[p] for p in first_late} == first_late
    assert all(committed[p] == e for p, e in ends.items() if p not in first_late and e)


async def test_a_rewind_re_reads_committed_records_without_writing_any_output_twice(
        settings: Settings, redis_client: Redis) -> None:
    items = [(envelope("stripe", f"pi_rw_{i}", f"evt_rw_{i}",
                       "payment_intent.amount_capturable_updated",
                       orjson.dumps(authorized(f"evt_rw_{i}", f"pi_rw_{i}"))), None)
             for i in range(6)]
    await produce_envelopes(settings, items)
    ends = {p: e for p, e in (await end_offsets(settings, settings.topics.raw)).items() if e}
    async with running_worker(settings, redis_client) as metrics:
        await eventually(lambda: metrics.records.labels("applied")._value.get() == 6)
    outputs = {topic: await end_offsets(settings, topic) for topic in (
        settings.topics.events, settings.topics.transitions, settings.topics.state)}

    done = await invoke(settings, "offsets", "reset", "--to-earliest", "--execute",
                        "--reason", "INC-7", "--json")
    assert done.exit_code == 0, done.output
    # the workers forget a batch's decisions once it commits; a reset forgets any left over
    assert json_of(done)["decisions_forgotten"] == 0
    assert set((await group_offsets(settings)).values()) == {0}

    async with running_worker(settings, redis_client) as metrics:
        async def caught_up() -> bool:
            return await group_offsets(settings) == ends

        await eventually(caught_up)
        assert metrics.records.labels("duplicate")._value.get() == 6
        assert metrics.records.labels("redelivered")._value.get() == 0
    for topic, before in outputs.items():
        assert await end_offsets(settings, topic) == before, topic


async def test_a_rewind_forgets_exactly_the_decisions_of_the_records_to_re_read(
        settings: Settings, redis_client: Redis) -> None:
    from consumers.group_offsets import Move, forget_decisions  # noqa: PLC0415
    from consumers.store import PaymentStore  # noqa: PLC0415

    store = PaymentStore(redis_client, settings.redis.key_prefix)
    raw = settings.topics.raw
    keys = {(p, o): store.decision_key(raw, p, o) for p in (0, 1) for o in range(10)}
    for key in keys.values():
        await redis_client.set(key, b"{}")
    moves = [Move(0, before=8, after=3), Move(1, before=5, after=7)]  # a rewind, a skip ahead
    assert await forget_decisions(settings, redis_client, moves) == 5
    left = {k for k, key in keys.items() if await redis_client.exists(key)}
    assert left == set(keys) - {(0, o) for o in range(3, 8)}
