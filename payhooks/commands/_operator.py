"""What the audited operator commands share: the command line, times, progress bars, audit."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from payhooks.clikit import EXIT_FAILED, EXIT_USAGE, fail

if TYPE_CHECKING:
    from consumers.audit import AuditRecord
    from payhooks.config import Settings


def command_line(ctx: click.Context) -> str:
    """The command as typed, rebuilt from what click parsed (for the audit record)."""
    parts = [ctx.command_path]
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        if not isinstance(param, click.Option) or value in (None, False, ()):
            continue
        flag = max(param.opts, key=len)
        if param.is_flag:
            # options sharing one parameter (--to-earliest / --to-latest -> target): only the
            # one whose value was chosen was typed
            if param.is_bool_flag or param.flag_value == value:
                parts.append(flag)
            continue
        for item in value if isinstance(value, tuple) else (value,):
            text = item.isoformat() if isinstance(item, datetime) else str(item)
            parts.append(f"{flag} {_quote(text)}")
    return " ".join(parts)


def _quote(text: str) -> str:
    return text if text and all(c.isalnum() or c in "-_.:/@+=" for c in text) else repr(text)


class IsoTime(click.ParamType[datetime, str]):
    """An ISO 8601 time with a zone (``2026-11-24T10:00:00Z``); naive times are refused."""

    name = "ISO-TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time, e.g. 2026-11-24T10:00:00Z", param, ctx)
        if moment.tzinfo is None:
            self.fail(f"{value!r} has no time zone; add Z (UTC) or +01:00", param, ctx)
        return moment.astimezone(UTC)


def kafka_down(settings: Settings, exc: BaseException) -> str:
    return (f"Kafka at {settings.kafka.bootstrap_servers} did not answer ({type(exc).__name__}: "
            f"{exc}); is the broker up? (`make stack-up` starts a local one)")


def now() -> datetime:
    return datetime.now(UTC)


def begin_audit(ctx: click.Context, action: str, reason: str) -> AuditRecord:
    from consumers.audit import AuditRecord  # noqa: PLC0415  (keep `--help` fast)

    try:
        return AuditRecord.begin(action, reason, command_line(ctx), now(), os.environ)
    except ValueError as exc:
        fail(f"{exc}; say why with --reason, e.g. --reason 'INC-1234: ...'", EXIT_USAGE)


def write_audit(settings: Settings, audit: AuditRecord) -> None:
    """Write the audit record; failing to is a failure of the command (exit 1)."""
    from aiokafka.errors import KafkaError  # noqa: PLC0415

    from consumers.audit import write  # noqa: PLC0415

    try:
        asyncio.run(write(settings, audit))
    except (KafkaError, TimeoutError, OSError) as exc:
        fail(f"the action ended ({audit.outcome}) but its audit record {audit.id} could not be "
             f"written to {settings.topics.audit!r}: {kafka_down(settings, exc)}; record it by "
             "hand in the incident ticket", EXIT_FAILED)


@contextlib.contextmanager
def progress_bar(enabled: bool, what: str) -> Iterator[Any]:
    """A callback ``(passed, total, matched, written)`` drawing a rich bar on stderr, or a no-op
    when ``enabled`` is false or stderr is not a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TaskProgressColumn(),
               TextColumn("matched {task.fields[matched]}  written {task.fields[written]}"),
               TextColumn("{task.fields[rate]} rec/s"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(what, total=None, matched=0, written=0, rate="0")

        def update(passed: int, total: int, matched: int, written: int) -> None:
            elapsed = bar.tasks[0].elapsed or 0.0
            rate = f"{passed / elapsed:.0f}" if elapsed > 0 else "0"
            bar.update(task, completed=passed, total=total or None, matched=matched,
                       written=written, rate=rate)

        yield update


def counts_table(title: str, counts: Mapping[Any, int]) -> None:
    click.echo(f"  {title}:")
    if not counts:
        click.echo("    (none)")
    for name, count in counts.items():
        click.echo(f"    {name!s:<40} {count}")
