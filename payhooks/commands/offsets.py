"""``payhooks offsets show | reset``: the worker group's committed offsets."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING

import click

from payhooks.clikit import EXIT_FAILED, EXIT_REFUSED, EXIT_USAGE, emit, fail, settings_of
from payhooks.commands._operator import IsoTime, begin_audit, kafka_down, now, write_audit

if TYPE_CHECKING:
    from consumers.group_offsets import GroupView, Move
    from payhooks.config import Settings


@click.group()
def offsets() -> None:
    """The worker group's committed offsets on the raw topic: show, reset."""


@offsets.command("show")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
@click.pass_context
def offsets_show(ctx: click.Context, as_json: bool) -> None:
    """Committed offset, end offset and lag per partition, the group's state and members.

    Reads only (it never joins the group). Exit codes: 0 done, 1 failed (Kafka).

    \b
    Examples:
      payhooks offsets show
      payhooks offsets show --json | jq .lag
    """
    from aiokafka.errors import KafkaError  # noqa: PLC0415  (keep `--help` fast)

    from consumers.group_offsets import view  # noqa: PLC0415

    settings = settings_of(ctx)
    try:
        group = asyncio.run(view(settings))
    except (KafkaError, TimeoutError, OSError) as exc:
        fail(kafka_down(settings, exc), EXIT_FAILED)

    def human() -> None:
        click.echo(f"group {group.group} on {group.topic}: {group.state}, "
                   f"{len(group.members)} members, lag {group.lag}")
        for m in group.members:
            click.echo(f"  member {m.client_id}@{m.host} partitions {list(m.partitions)}")
        click.echo(f"  {'PARTITION':>9} {'COMMITTED':>10} {'END':>10} {'LAG':>8}")
        for p in group.partitions:
            committed = "-" if p.committed is None else str(p.committed)
            click.echo(f"  {p.partition:>9} {committed:>10} {p.end:>10} {p.lag:>8}")

    emit(group.as_dict(), as_json, human)


def _execute(settings: Settings, moves: list[Move]
             ) -> tuple[str, str | None, str | None, int]:
    """Forget the decisions of the records to re-read, then commit: (outcome, error, refusal,
    decisions forgotten)."""
    from aiokafka.errors import KafkaError  # noqa: PLC0415
    from redis.exceptions import RedisError  # noqa: PLC0415

    from consumers import group_offsets  # noqa: PLC0415

    forgotten = 0
    try:
        # forget first: the decisions of records below the committed offsets are never
        # needed again unless the group rewinds, and a failed commit after this is harmless
        forgotten = asyncio.run(_forget(settings, moves))
        asyncio.run(group_offsets.commit(settings, moves))
    except group_offsets.ResetRefused as exc:
        return "refused", str(exc), str(exc), forgotten
    except (KafkaError, TimeoutError, OSError) as exc:
        return "failed", kafka_down(settings, exc), None, forgotten
    except RedisError as exc:
        return "failed", (
            f"Redis at {settings.redis.url} did not answer ({type(exc).__name__}) while "
            "forgetting the decisions of the records to re-read; no offset was moved: run "
            "the same reset again once Redis is up"), None, forgotten
    return "done", None, None, forgotten


async def _forget(settings: Settings, moves: list[Move]) -> int:
    from redis.asyncio import Redis  # noqa: PLC0415

    from consumers import group_offsets  # noqa: PLC0415

    redis = Redis.from_url(settings.redis.url)
    try:
        return await group_offsets.forget_decisions(settings, redis, moves)
    finally:
        await redis.aclose()


async def _plan(settings: Settings, target: str | None, to_time: datetime | None,
                partitions: tuple[int, ...]) -> tuple[GroupView, list[Move]]:
    from consumers import group_offsets  # noqa: PLC0415

    group = await group_offsets.view(settings)
    known = {p.partition for p in group.partitions}
    unknown = sorted(set(partitions) - known)
    if unknown:
        raise ValueError(f"{settings.topics.raw!r} has partitions {sorted(known)}, not {unknown}")
    at_time = None
    if to_time is not None:
        at_time = await group_offsets.offsets_at(settings, sorted(set(partitions) or known),
                                                 to_time)
    return group, group_offsets.plan(group, target or "time", partitions, at_time)


@offsets.command("reset")
@click.option("--to-earliest", "target", flag_value="earliest",
              help="Move to the first retained record (re-read everything).")
@click.option("--to-latest", "target", flag_value="latest",
              help="Move to the end (skip everything not yet read).")
@click.option("--to-time", type=IsoTime(), default=None,
              help="Move to the first record at or after this time (ISO 8601 with a zone).")
@click.option("--partition", "partitions", type=click.IntRange(0), multiple=True,
              help="Only this partition (repeatable) [default: all].")
@click.option("--force", is_flag=True,
              help="Try even though the group has members (the broker still refuses a live "
                   "group's commit: stop the workers).")
@click.option("--execute", is_flag=True, help="Commit the offsets (without it: a dry run).")
@click.option("--reason", required=True, help="Why (a ticket id): goes into the audit record.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
@click.pass_context
def offsets_reset(ctx: click.Context, target: str | None, to_time: datetime | None,
                  partitions: tuple[int, ...], force: bool, execute: bool, reason: str,
                  as_json: bool) -> None:
    """Move the worker group's committed offsets on the raw topic (stop the workers first).

    A dry run unless --execute: it shows each partition's offset before and after. Refused
    (exit 3) while the group has members unless --force. The commit comes from a consumer that
    never joins the group. Rewinding makes the workers re-read records whose outputs are
    already committed: the reset forgets the decisions Redis stored for them, so each is
    found a duplicate by event id and nothing is written twice; to re-feed records into the
    pipeline, `payhooks replay` is the tool.
    Every executed reset, refused or not, writes an audit record; a dry run writes nothing
    (it exits 3 when the reset would be refused).

    Exit codes: 0 done, 1 failed (Kafka), 2 usage, 3 refused (the group has members).

    \b
    Examples:
      payhooks offsets reset --to-latest --reason INC-42
      payhooks offsets reset --to-time 2026-11-24T09:00:00Z --partition 3 --reason INC-42
      payhooks offsets reset --to-earliest --reason 'INC-42: rebuild' --execute
    """
    from aiokafka.errors import KafkaError  # noqa: PLC0415

    settings = settings_of(ctx)
    if (target is None) == (to_time is None):
        fail("choose one target: --to-earliest, --to-latest or --to-time ISO (see --help)",
             EXIT_USAGE)
    audit = begin_audit(ctx, "offsets.reset", reason)
    try:
        group, moves = asyncio.run(_plan(settings, target, to_time, partitions))
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    except (KafkaError, TimeoutError, OSError) as exc:
        fail(kafka_down(settings, exc), EXIT_FAILED)
    range_ = {"group": group.group, "topic": group.topic, "target": target or "time",
              "to_time": to_time.isoformat() if to_time else None,
              "moves": [m.as_dict() for m in moves]}
    data: dict[str, object] = {"dry_run": not execute, "group": group.group,
                               "state": group.state, "members": len(group.members),
                               "moves": [m.as_dict() for m in moves], "audit_id": None}
    refusal = None
    if group.active and not force:
        refusal = (f"group {group.group} has {len(group.members)} active members "
                   f"({group.state}): stop the workers (`payhooks consume`) and check with "
                   "`payhooks offsets show`, or pass --force")
    outcome, error = "done", None
    if execute and refusal is None:
        outcome, error, refusal, data["decisions_forgotten"] = _execute(settings, moves)
    if refusal is not None:
        outcome, error = "refused", refusal
    if execute:  # a dry run writes nothing, not even when it would be refused
        audit = audit.finish(now(), outcome=outcome, range_=range_, error=error,
                             counts={"partitions": len(moves),
                                     "moved": sum(m.before != m.after for m in moves)})
        write_audit(settings, audit)
        data["audit_id"] = audit.id
    data["outcome"], data["error"] = outcome, error

    def human() -> None:
        head = "DRY RUN: would move" if not execute else (
            "moved" if outcome == "done" else "did NOT move")
        click.echo(f"{head} group {group.group} on {group.topic} ({group.state}, "
                   f"{len(group.members)} members):")
        for m in moves:
            before = "-" if m.before is None else str(m.before)
            click.echo(f"  partition {m.partition:>3}: {before:>10} -> {m.after}")
        if not execute:
            click.echo("nothing was committed; add --execute to commit these offsets")

    emit(data, as_json, human)
    if refusal is not None:
        fail(f"{'refused' if execute else 'would be refused'}: {refusal}", EXIT_REFUSED)
    if error is not None:
        fail(error, EXIT_FAILED)
