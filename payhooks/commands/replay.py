"""``payhooks replay``: re-feed a range of a topic into the pipeline."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from payhooks.clikit import EXIT_FAILED, EXIT_USAGE, emit, fail, settings_of
from payhooks.commands._operator import (
    IsoTime,
    begin_audit,
    counts_table,
    kafka_down,
    now,
    progress_bar,
    write_audit,
)

if TYPE_CHECKING:
    from consumers.ranges import RangeRequest
    from consumers.selection import Filters

DEFAULT_RATE = 200.0


def writing_options(command: Any) -> Any:
    """The options of every command that writes records: --rate, --execute, --reason, --json."""
    for option in reversed((
        click.option("--rate", type=click.FloatRange(min=0, min_open=True),
                     default=DEFAULT_RATE, show_default=True,
                     help="Records written per second, at most."),
        click.option("--execute", is_flag=True, help="Write the records (without it: a dry run)."),
        click.option("--reason", required=True,
                     help="Why (a ticket id): goes into the audit record."),
        click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout."),
    )):
        command = option(command)
    return command


def run_replay(ctx: click.Context, action: str, request: RangeRequest, filters: Filters, *,
               execute: bool, rate: float | None, reason: str, as_json: bool) -> None:
    """Dry-run or execute a replay, print the summary, write the audit record when executed."""
    from aiokafka.errors import KafkaError  # noqa: PLC0415  (keep `--help` fast)

    from consumers.ranges import RangeError  # noqa: PLC0415
    from consumers.replay import Tally, replay  # noqa: PLC0415

    settings = settings_of(ctx)
    audit = begin_audit(ctx, action, reason)
    tally = Tally()
    outcome, error = "done", None
    verb = "replaying" if execute else "counting"
    try:
        with progress_bar(not as_json, f"{verb} {request.topic}") as progress:
            asyncio.run(replay(settings, request, filters, tally, execute=execute,
                               audit_id=audit.id, rate=rate, progress=progress))
    except RangeError as exc:
        fail(f"{exc}", EXIT_USAGE)  # nothing was read or written: no audit record
    except (KafkaError, TimeoutError, OSError) as exc:
        outcome, error = "failed", kafka_down(settings, exc)
    except KeyboardInterrupt:
        outcome, error = "interrupted", "interrupted by the operator (Ctrl-C)"
    range_ = {**request.as_dict(), "partitions": [r.as_dict() for r in tally.ranges],
              "filters": filters.as_dict()}
    if execute:
        audit = audit.finish(now(), outcome=outcome, counts=tally.counts(), range_=range_,
                             error=error)
        write_audit(settings, audit)
    data = {"dry_run": not execute, "audit_id": audit.id if execute else None,
            "outcome": outcome, "error": error, "topic": request.topic, "target": (
                settings.topics.raw), "filters": filters.as_dict(), "rate": rate,
            **tally.as_dict()}

    noun = "redrive" if action == "dlq.redrive" else "replay"

    def human() -> None:
        if not execute:
            click.echo(f"DRY RUN: would {noun} {tally.matched} of {tally.scanned} records of "
                       f"{request.topic} into {settings.topics.raw}")
        else:
            click.echo(f"{noun}: wrote {tally.written} of {tally.matched} selected records of "
                       f"{request.topic} into {settings.topics.raw} (audit id {audit.id}, "
                       f"outcome {outcome})")
        click.echo("  ranges: " + (", ".join(f"p{r.partition} [{r.start}, {r.end})"
                                             for r in tally.ranges) or "(none)"))
        if filters.as_dict():
            click.echo(f"  filters: {filters.as_dict()}")
        counts_table("by partition", {f"partition {p}": n
                                      for p, n in sorted(tally.by_partition.items())})
        counts_table("by type", dict(sorted(tally.by_type.items())))
        if tally.skipped:
            counts_table("skipped", dict(tally.skipped))
        if not execute:
            click.echo(f"nothing was written; add --execute to {noun} these records")

    missing = len(filters.coordinates) - tally.selected if filters.coordinates else 0
    data["not_found"] = missing
    emit(data, as_json, human)
    if missing:
        click.echo(f"payhooks: {missing} of the {len(filters.coordinates)} chosen ids are not "
                   f"records of {request.topic}; check them with `payhooks dlq list`", err=True)
    if error is not None:
        fail(f"{error}; {tally.written} records were written before it stopped (audit id "
             f"{audit.id}); the workers dedupe, so running the same command again is safe",
             EXIT_FAILED)


@click.command("replay")
@click.option("--topic", required=True,
              help="Topic to read: the raw topic (webhooks.raw) or the DLQ (webhooks.dlq).")
@click.option("--partition", "partitions", type=click.IntRange(0), multiple=True,
              help="Only this partition (repeatable) [default: all].")
@click.option("--from-offset", type=click.IntRange(0), default=None,
              help="First offset to read (inclusive).")
@click.option("--to-offset", type=click.IntRange(0), default=None,
              help="Last offset to read (INCLUSIVE) [default: the end when the command starts].")
@click.option("--from-time", type=IsoTime(), default=None,
              help="Only records at or after this time (ISO 8601 with a zone).")
@click.option("--to-time", type=IsoTime(), default=None,
              help="Only records before this time (EXCLUSIVE): the window is FROM <= t < TO.")
@click.option("--payment", default=None,
              help="Only this payment: the record key, e.g. stripe:pi_3N...")
@click.option("--provider", default=None, help="Only this provider, e.g. stripe.")
@click.option("--type", "event_type", default=None,
              help="Only this provider event type as received, e.g. payment_intent.succeeded.")
@writing_options
@click.pass_context
def replay(ctx: click.Context, topic: str, partitions: tuple[int, ...], from_offset: int | None,
           to_offset: int | None, from_time: datetime | None, to_time: datetime | None,
           payment: str | None, provider: str | None, event_type: str | None, rate: float,
           execute: bool, reason: str, as_json: bool) -> None:
    """Re-feed a range of webhooks.raw (or dead letters of webhooks.dlq) into the pipeline.

    A dry run unless --execute: it reads the range and says how many records would be
    replayed, per partition and per type. With --execute every selected record is appended
    to the raw topic with a `replay` header naming the audit record; the workers dedupe by
    event id, so events already applied create no new transitions. The live worker group is
    never joined and its offsets are never touched. One audit record per executed run.

    Ranges: --from-offset N [--to-offset M] (M inclusive), or --from-time T1 [--to-time T2]:
    the records with T1 <= timestamp < T2 (found with Kafka's offsets-for-times, read to the
    partition's end because producer timestamps need not grow with offsets). The end is fixed
    when the command starts: records written meanwhile are not read.

    Exit codes: 0 done, 1 failed (Kafka), 2 usage.

    \b
    Examples:
      payhooks replay --topic webhooks.raw --partition 0 --from-offset 1200 --to-offset 1300 \\
          --reason INC-42
      payhooks replay --topic webhooks.raw --from-time 2026-11-24T09:00:00Z \\
          --to-time 2026-11-24T10:00:00Z --provider stripe --reason INC-42 --execute
      payhooks replay --topic webhooks.raw --from-offset 0 --payment stripe:pi_3N... \\
          --reason INC-42 --json
      payhooks replay --topic webhooks.dlq --from-offset 0 --type payment_intent.succeeded \\
          --reason 'INC-42: normaliser fixed in 1.4.2' --execute
    """
    from consumers.ranges import RangeError, RangeRequest  # noqa: PLC0415
    from consumers.selection import Filters  # noqa: PLC0415

    if from_offset is None and from_time is None:
        fail("say where to start: --from-offset N or --from-time ISO (see --help)", EXIT_USAGE)
    try:
        request = RangeRequest(topic, partitions, from_offset, to_offset, from_time, to_time)
        settings = settings_of(ctx)
        from consumers.replay import check_topic  # noqa: PLC0415

        check_topic(settings.topics, topic)
    except RangeError as exc:
        fail(str(exc), EXIT_USAGE)
    run_replay(ctx, "replay", request, Filters(payment, provider, event_type), execute=execute,
               rate=rate, reason=reason, as_json=as_json)

