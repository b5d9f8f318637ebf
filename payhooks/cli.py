"""The ``payhooks`` command line: one group, one subcommand per SPEC command.

Exit codes: 0 done, 1 failed, 2 usage error (or not built yet), 3 refused by a safety check.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from payhooks import __version__
from payhooks.clikit import EXIT_FAILED, EXIT_USAGE
from payhooks.clikit import emit as _emit
from payhooks.clikit import fail as _fail
from payhooks.clikit import settings_of as _settings
from payhooks.commands import dlq, offsets, replay, trace
from payhooks.config import ConfigError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="payhooks")
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="PAYHOOKS_CONFIG",
    help="TOML configuration file [env: PAYHOOKS_CONFIG; default: ./payhooks.toml].",
)
@click.pass_context
def cli(ctx: click.Context, config: Path | None) -> None:
    """payhooks: verified PSP webhooks into Kafka, and ordered payment state out of it.

    Every command reads the same configuration; any value can be overridden with
    PAYHOOKS_<SECTION>__<KEY> environment variables (see README, "Configuration").
    """
    ctx.ensure_object(dict)["config"] = config


@cli.command()
@click.option("--host", default=None, help="Interface to bind [default: ingest.host, 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [default: ingest.port, 8080].")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run the webhook receiver (uvicorn).

    \b
    Example:
      payhooks serve --host 0.0.0.0 --port 8080
    """
    from payhooks import services  # noqa: PLC0415  (keep `--help` fast)

    settings = _settings(ctx)
    try:
        services.serve(settings, host or settings.ingest.host, port or settings.ingest.port)
    except ConfigError as exc:
        _fail(f"configuration error: {exc}", EXIT_USAGE)


@cli.command()
@click.option("--metrics-port", type=int, default=None,
              help="Serve Prometheus metrics on METRICS_HOST:PORT (/metrics).")
@click.option("--metrics-host", default="127.0.0.1", show_default=True,
              help="Interface for the metrics server (0.0.0.0 in containers).")
@click.pass_context
def consume(ctx: click.Context, metrics_port: int | None, metrics_host: str) -> None:
    """Run one worker of the consumer group (run several for more partitions).

    \b
    Example:
      payhooks consume --metrics-port 9101
      payhooks consume --metrics-host 0.0.0.0 --metrics-port 9101   # in a container
    """
    from payhooks import services  # noqa: PLC0415

    settings = _settings(ctx)
    asyncio.run(services.consume(settings, metrics_port, metrics_host))


@cli.group()
def topics() -> None:
    """Kafka topics as code (deploy/topics.yaml)."""


@topics.command("apply")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Topics file [default: deploy/topics.yaml].")
@click.option("--partitions", type=int, default=None,
              help="Override every topic's partition count (small local stacks, tests).")
@click.option("--dry-run", is_flag=True, help="Show what would be created; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def topics_apply(ctx: click.Context, path: Path | None, partitions: int | None, dry_run: bool,
                 as_json: bool) -> None:
    """Create missing topics and report drift of existing ones (idempotent).

    Exits 0 when every topic exists as declared, 1 when an existing topic drifted.

    \b
    Example:
      payhooks topics apply --dry-run
    """
    from aiokafka.errors import KafkaError  # noqa: PLC0415

    from payhooks import topics as topics_mod  # noqa: PLC0415

    settings = _settings(ctx)
    try:
        specs = topics_mod.load_specs(settings, path or topics_mod.DEFAULT_TOPICS_FILE, partitions)
        report = asyncio.run(topics_mod.apply(settings, specs, dry_run=dry_run))
    except topics_mod.TopicsFileError as exc:
        _fail(str(exc), EXIT_USAGE)
    except KafkaError as exc:
        _fail(f"Kafka at {settings.kafka.bootstrap_servers} did not answer ({exc}); "
              "is the broker up? (`make stack-up` starts a local one)")

    def human() -> None:
        for note in report.notes:
            click.echo(f"note: {note}")
        for t in report.topics:
            click.echo(f"{t.action:<13} {t.name}")
            for line in t.drift:
                click.echo(f"{'':<13}   {line}")

    _emit({"brokers": report.brokers, "notes": list(report.notes),
           "topics": [{"role": t.role, "name": t.name, "action": t.action, "drift": list(t.drift)}
                      for t in report.topics]}, as_json, human)
    if report.drifted:
        sys.exit(EXIT_FAILED)


@cli.command()
@click.option("--url", default=None,
              help="Webhook URL [default: http://<ingest.host>:<ingest.port>/webhooks/<endpoint>].")
@click.option("--provider", default="stripe", show_default=True,
              help="Provider scheme to simulate (stripe, adyen, checkout, ...).")
@click.option("--endpoint", default=None,
              help="Configured endpoint whose key ring signs the traffic [default: first of the "
                   "provider].")
@click.option("--payments", type=int, default=5, show_default=True,
              help="Payment lifecycles to send.")
@click.option("--duplicates", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of events delivered twice.")
@click.option("--reorder", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of payments whose events arrive shuffled.")
@click.option("--rate", type=float, default=None, help="Requests per second [default: max].")
@click.option("--concurrency", type=int, default=8, show_default=True)
@click.option("--attempts", type=click.IntRange(1, 20), default=4, show_default=True,
              help="Tries per delivery: connection errors and 429/5xx answers are retried, "
                   "as a PSP would.")
@click.option("--seed", type=int, default=None, help="Random seed, for repeatable traffic.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def sim(ctx: click.Context, url: str | None, provider: str, endpoint: str | None, payments: int,
        duplicates: float, reorder: float, rate: float | None, concurrency: int,
        attempts: int, seed: int | None, as_json: bool) -> None:
    """Send realistic, correctly signed PSP webhooks: whole payment lifecycles.

    \b
    Examples:
      payhooks sim --payments 20 --duplicates 0.2 --reorder 0.3
      payhooks sim --url http://127.0.0.1:8080/webhooks/stripe --rate 50 --json
    """
    from payhooks import sim as sim_mod  # noqa: PLC0415

    settings = _settings(ctx)
    if provider not in sim_mod.PROVIDERS:
        _fail(f"provider {provider!r} is not simulated; try: {', '.join(sim_mod.PROVIDERS)}",
              EXIT_USAGE)
    candidates = [e for e in settings.endpoints.values() if e.provider == provider]
    default = candidates[0] if candidates else None
    chosen = settings.endpoints.get(endpoint) if endpoint else default
    if chosen is None or chosen.provider != provider:
        _fail(f"no {provider} endpoint {endpoint or ''} in the configuration to sign with; "
              f"add [endpoints.<name>] provider = \"{provider}\" with its secrets", EXIT_USAGE)
    target = url or f"http://{settings.ingest.host}:{settings.ingest.port}/webhooks/{chosen.name}"
    deliveries, summary = sim_mod.plan(provider, payments, duplicates=duplicates,
                                       reorder=reorder, seed=seed)
    summary = asyncio.run(sim_mod.send(target, provider, chosen, deliveries, summary,
                                       rate=rate, concurrency=concurrency,
                                       attempts=attempts))
    data = summary.as_dict()

    def human() -> None:
        click.echo(f"sent {data['sent']} webhooks for {data['payments']} payments to {target} "
                   f"in {data['seconds']} s ({data['duplicates']} duplicates, "
                   f"{data['reordered']} payments reordered)")
        click.echo(f"answers: {data['statuses']}" + (f", errors: {data['errors']}"
                                                      if data["errors"] else "")
                   + (f", {data['retries']} retried" if data["retries"] else ""))

    _emit(data, as_json, human)
    if summary.accepted != summary.sent:
        sys.exit(EXIT_FAILED)


for _command in (replay.replay, dlq.dlq, offsets.offsets, trace.trace):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="payhooks")
