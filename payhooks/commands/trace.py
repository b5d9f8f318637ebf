"""``payhooks trace``: one payment's timeline across every topic and Redis."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from payhooks.clikit import EXIT_USAGE, emit, fail, settings_of

if TYPE_CHECKING:
    from consumers.timeline import Timeline
    from consumers.trace import Progress

_EPILOG = """\b
Rows are ordered by when payhooks wrote them (the Kafka record timestamp; a parked event in
Redis by its parked_at); the record's own time (received_at, occurred_at, applied_at,
updated_at) is shown beside it. Only the partition the payment's key maps to is read on each
topic; no consumer group is joined and nothing is written.

\b
Exit codes: 0 found, 1 not found or Kafka unreachable, 2 usage error.
"""


@click.command(epilog=_EPILOG)
@click.argument("payment_id")
@click.option("--since", default=None, metavar="WHEN",
              help="Only records written at or after WHEN: an ISO time (2026-11-23T10:00:00Z) "
                   "or a duration back from now (90s, 15m, 2h, 3d, 1w).")
@click.option("--until", default=None, metavar="WHEN",
              help="Only records written before WHEN (same forms as --since).")
@click.option("--payload", is_flag=True,
              help="Also show the provider payloads of raw and dead-lettered records, with "
                   "secrets, card numbers and sensitive fields redacted.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (same rows).")
@click.pass_context
def trace(ctx: click.Context, payment_id: str, since: str | None, until: str | None,
          payload: bool, as_json: bool) -> None:
    """One payment's timeline: webhooks.raw, payments.events, payments.transitions,
    payments.state, webhooks.dlq and its live Redis state, in time order.

    PAYMENT_ID is the records' key: {provider}:{payment reference}.

    \b
    Examples:
      payhooks trace stripe:pi_3PqX2aLkdIwHu7ix
      payhooks trace stripe:pi_3PqX2aLkdIwHu7ix --since 2h
      payhooks trace adyen:8835511210681328 --since 2026-11-23T10:00:00Z --until 2026-11-23T12:00Z
      payhooks trace stripe:pi_3PqX2aLkdIwHu7ix --json | jq '.rows[] | select(.role == "dlq")'
    """
    from consumers import timeline as timelines  # noqa: PLC0415  (keep `--help` fast)
    from consumers import trace as tracing  # noqa: PLC0415
    from payhooks.config import PROVIDERS  # noqa: PLC0415

    settings = settings_of(ctx)
    problem = timelines.check_payment_id(payment_id, PROVIDERS)
    if problem:
        fail(problem, EXIT_USAGE)
    now = datetime.now(UTC)
    try:
        window = timelines.Window(
            since=timelines.parse_when(since, now) if since else None,
            until=timelines.parse_when(until, now) if until else None)
    except ValueError as exc:
        fail(f"--since/--until: {exc}", EXIT_USAGE)
    if window.since and window.until and window.since >= window.until:
        fail("--since must be before --until", EXIT_USAGE)
    with _progress(enabled=not as_json and sys.stderr.isatty()) as progress, _quiet("aiokafka"):
        try:
            timeline = asyncio.run(tracing.trace(settings, payment_id, now=now, window=window,
                                                 payload=payload, progress=progress))
        except tracing.TraceError as exc:
            fail(str(exc))
    if not timeline.found and not as_json:
        fail(_not_found(timeline))
    emit(timeline.as_dict(), as_json, lambda: _print(timeline))
    if not timeline.found:
        fail(_not_found(timeline))


def _not_found(timeline: Timeline) -> str:
    read = ", ".join(f"{s.topic}[{s.partition}] offsets {s.start}..{s.end}"
                     for s in timeline.scans)
    redis = ("Redis was unreachable" if timeline.live.status == "unreachable"
             else "no snapshot in Redis")
    wider = (" Widen the time window (--since/--until) or drop it."
             if timeline.window.since or timeline.window.until else "")
    return (f"no record of {timeline.payment_id} ({read or 'no topic read'}) and {redis}.{wider}"
            " Check the id: it is the records' key {provider}:{payment reference}, e.g. "
            "stripe:pi_3PqX2aLkdIwHu7ix (the PaymentIntent, not the event or charge id).")


@contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Silence ``logger`` meanwhile: its connection errors would repeat what we say once."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


@contextmanager
def _progress(*, enabled: bool) -> Iterator[Progress | None]:
    """A transient progress bar per partition on stderr, or nothing (--json, not a terminal)."""
    if not enabled:
        yield None
        return
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn  # noqa: PLC0415

    bars = Progress(TextColumn("reading {task.description}"), BarColumn(), MofNCompleteColumn(),
                    console=Console(stderr=True), transient=True)
    tasks: dict[str, Any] = {}

    def report(label: str, done: int, total: int) -> None:
        if label not in tasks:
            tasks[label] = bars.add_task(label, total=total)
        bars.update(tasks[label], completed=done, total=total)

    with bars:
        yield report


def _print(timeline: Timeline) -> None:
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    # a terminal wraps long cells; a pipe or a file gets one line per row (for grep)
    console = Console(width=None if sys.stdout.isatty() else 1000, highlight=False,
                      markup=False)
    table = Table(title=f"payment {timeline.payment_id}", title_justify="left",
                  show_lines=False, pad_edge=False)
    for name in ("time", "where", "outcome", "delivery id", "event id", "type", "v",
                 "own time", "detail"):
        table.add_column(name, overflow="fold", no_wrap=name in ("time", "v"))
    for row in timeline.rows:
        table.add_row(row.at, row.where, row.outcome, row.delivery_id or "",
                      row.event_id or row.provider_event_id or "", row.type or "",
                      "" if row.version is None else str(row.version), row.own_time or "",
                      row.detail)
    console.print(table)
    payloads = [r for r in timeline.rows if r.payload is not None]
    for row in payloads:
        console.print(f"payload of {row.where} (redacted):")
        console.print_json(data=row.payload)
    console.print(_live_line(timeline))
    for note in timeline.notes:
        console.print(f"note: {note}")
    read = "; ".join(f"{s.topic}[{s.partition}] offsets {s.start}..{s.end} ({s.matched} matched)"
                     for s in timeline.scans)
    console.print(f"read: {read}" if read else "read: nothing", style="dim")


def _live_line(timeline: Timeline) -> str:
    live = timeline.live
    if live.status == "unreachable":
        return f"live (Redis): unreachable ({live.message}); showing Kafka only"
    snap = live.snapshot
    if snap is None:
        return "live (Redis): no snapshot (the workers have not handled this payment)"
    totals = " ".join(f"{k} {v}" for k, v in snap.totals.as_dict().items())
    return (f"live (Redis): {snap.state or '(nothing applied)'} v{snap.version}, {totals}"
            f"{' ' + snap.currency if snap.currency else ''}, {len(snap.parked)} parked, "
            f"{len(snap.seen)} event ids remembered, updated {snap.updated_at or '-'}"
            + ("" if live.trusted else " [Redis not marked ready by the workers: may be behind]"))

