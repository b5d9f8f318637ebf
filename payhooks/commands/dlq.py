"""``payhooks dlq list | show | redrive``: dead letters."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import click

from payhooks.clikit import EXIT_FAILED, EXIT_USAGE, emit, fail, settings_of
from payhooks.commands._operator import IsoTime, kafka_down, now, progress_bar
from payhooks.commands.replay import run_replay, writing_options


def _age(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _filter_options(command: Any) -> Any:
    for option in reversed((
        click.option("--payment", default=None, help="Only this payment (the record key)."),
        click.option("--provider", default=None, help="Only this provider, e.g. stripe."),
        click.option("--stage", type=click.Choice(["decode", "normalize", "apply"]),
                     default=None, help="Only dead letters of this stage."),
        click.option("--error", default=None,
                     help="Only this error class (exact) or message text (substring)."),
        click.option("--since", type=IsoTime(), default=None,
                     help="Only dead letters written at or after this time (ISO 8601, zone)."),
    )):
        command = option(command)
    return command


@click.group()
def dlq() -> None:
    """Dead letters of webhooks.dlq: list, show, redrive.

    A dead letter's id is PARTITION:OFFSET on the DLQ topic (`dlq list` shows them).
    """


@dlq.command("list")
@_filter_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
@click.pass_context
def dlq_list(ctx: click.Context, payment: str | None, provider: str | None, stage: str | None,
             error: str | None, since: datetime | None, as_json: bool) -> None:
    """List dead letters with their stage, error and age (oldest first per partition).

    Reads only; writes nothing. Exit codes: 0 done, 1 failed (Kafka), 2 usage.

    \b
    Examples:
      payhooks dlq list
      payhooks dlq list --stage normalize --since 2026-11-24T00:00:00Z
      payhooks dlq list --payment stripe:pi_3N... --json
      payhooks dlq list --error NormalizeError --provider adyen
    """
    from aiokafka.errors import KafkaError  # noqa: PLC0415  (keep `--help` fast)

    from consumers.deadletters import list_dead  # noqa: PLC0415
    from consumers.ranges import RangeError  # noqa: PLC0415
    from consumers.selection import Filters  # noqa: PLC0415

    settings = settings_of(ctx)
    filters = Filters(payment=payment, provider=provider, stage=stage, reason=error)
    try:
        with progress_bar(not as_json, f"reading {settings.topics.dlq}") as bar:
            found = asyncio.run(list_dead(settings, filters, since, progress=(
                None if bar is None else lambda passed: bar(passed, 0, 0, 0))))
    except RangeError as exc:
        fail(str(exc), EXIT_USAGE)
    except (KafkaError, TimeoutError, OSError) as exc:
        fail(kafka_down(settings, exc), EXIT_FAILED)
    at = now()
    rows = [dead.summary(at) for dead in found]

    def human() -> None:
        if not rows:
            click.echo(f"no dead letters on {settings.topics.dlq}"
                       + (f" matching {filters.as_dict()}" if filters.as_dict() else ""))
            return
        click.echo(f"{'ID':<10} {'AGE':>5}  {'STAGE':<9} {'ERROR':<22} {'PAYMENT':<28} "
                   f"{'TYPE':<40} MESSAGE")
        for row in rows:
            click.echo(f"{row['id']:<10} {_age(row['age_seconds']):>5}  {row['stage'] or '-':<9} "
                       f"{(row['error_class'] or '-')[:22]:<22} {row['payment_id'][:28]:<28} "
                       f"{(row['event_type'] or '-')[:40]:<40} "
                       f"{(row['error_message'] or '')[:80]}")
        click.echo(f"{len(rows)} dead letters; `payhooks dlq show ID` shows one, "
                   "`payhooks dlq redrive --id ID --reason ...` puts it back")

    emit({"topic": settings.topics.dlq, "filters": filters.as_dict(), "count": len(rows),
          "dead_letters": rows}, as_json, human)


@dlq.command("show")
@click.argument("dead_letter_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
@click.pass_context
def dlq_show(ctx: click.Context, dead_letter_id: str, as_json: bool) -> None:
    """Show one dead letter: where and why it failed, its headers and its payload, redacted.

    Card numbers, secrets and sensitive fields are masked as in the logs. Reads only.
    Exit codes: 0 done, 1 failed (Kafka), 2 usage (bad or unknown id).

    \b
    Examples:
      payhooks dlq show 0:12
      payhooks dlq show 2:7 --json
    """
    from aiokafka.errors import KafkaError  # noqa: PLC0415

    from consumers.deadletters import one  # noqa: PLC0415
    from consumers.ranges import RangeError  # noqa: PLC0415
    from consumers.selection import parse_ids  # noqa: PLC0415

    settings = settings_of(ctx)
    try:
        [(partition, offset)] = parse_ids([dead_letter_id])
        dead = asyncio.run(one(settings, partition, offset))
    except (RangeError, ValueError) as exc:
        fail(str(exc), EXIT_USAGE)
    except (KafkaError, TimeoutError, OSError) as exc:
        fail(kafka_down(settings, exc), EXIT_FAILED)
    detail = dead.detail(now())

    def human() -> None:
        for name in ("id", "dead_at", "stage", "error_class", "error_message", "payment_id",
                     "provider", "event_type", "event_id", "source"):
            click.echo(f"{name + ':':<15} {detail[name]}")
        click.echo(f"{'age:':<15} {_age(detail['age_seconds'])}")
        click.echo("headers:")
        for key, value in detail["headers"].items():
            click.echo(f"  {key}: {value}")
        click.echo("value (redacted):")
        click.echo(_indent(detail["value"]))

    emit(detail, as_json, human)


def _indent(value: Any) -> str:
    import orjson  # noqa: PLC0415

    text = orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    return "\n".join(f"  {line}" for line in text.splitlines())


@dlq.command("redrive")
@click.option("--id", "ids", multiple=True, metavar="P:O",
              help="A dead letter to redrive (repeatable); see `payhooks dlq list`.")
@click.option("--all", "everything", is_flag=True,
              help="Every dead letter the filters select (no --id).")
@_filter_options
@writing_options
@click.pass_context
def dlq_redrive(ctx: click.Context, ids: tuple[str, ...], everything: bool,
                payment: str | None, provider: str | None, stage: str | None,
                error: str | None, since: datetime | None, rate: float, execute: bool,
                reason: str, as_json: bool) -> None:
    """Put chosen dead letters back on their source topic (webhooks.raw), once fixed.

    The same machinery as `payhooks replay --topic webhooks.dlq`: a dry run unless --execute;
    records go back with their key, value and headers, without the dlq_* headers and with a
    `replay` header naming the audit record. Use it after the cause is fixed (a normaliser
    bug, a configuration): the workers dedupe by event id, so a record they applied meanwhile,
    or a second redrive of the same one, changes nothing. Dead letters of the `apply` stage
    are skipped: the state machine already decided them (an impossible transition, or a parked
    event whose window expired) and would see a duplicate; they need a decision by hand.

    Exit codes: 0 done, 1 failed (Kafka), 2 usage.

    \b
    Examples:
      payhooks dlq redrive --id 0:12 --id 2:7 --reason INC-42
      payhooks dlq redrive --id 0:12 --reason 'INC-42: fixed in 1.4.2' --execute
      payhooks dlq redrive --all --stage normalize --provider adyen --reason INC-43 --execute
    """
    from consumers.ranges import RangeError, RangeRequest  # noqa: PLC0415
    from consumers.selection import Filters, parse_ids  # noqa: PLC0415

    settings = settings_of(ctx)
    if bool(ids) == everything:
        fail("choose dead letters with --id P:O (repeatable) or --all with filters "
             "(see `payhooks dlq list`)", EXIT_USAGE)
    try:
        chosen = parse_ids(ids)
        partitions = tuple(sorted({p for p, _ in chosen}))
        offsets = [o for _, o in chosen]
        request = RangeRequest(
            settings.topics.dlq, partitions,
            from_offset=min(offsets) if offsets else (None if since else 0),
            to_offset=max(offsets) if offsets else None, from_time=None if offsets else since)
    except (RangeError, ValueError) as exc:
        fail(str(exc), EXIT_USAGE)
    filters = Filters(payment=payment, provider=provider, stage=stage, reason=error,
                      coordinates=chosen)
    run_replay(ctx, "dlq.redrive", request, filters, execute=execute, rate=rate, reason=reason,
               as_json=as_json)
