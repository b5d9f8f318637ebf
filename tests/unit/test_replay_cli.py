"""The operator commands' shell: help with examples everywhere, usage errors and an unreachable
Kafka give exit codes 2 and 1 with a next step, never a traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from payhooks.cli import cli
from payhooks.clikit import EXIT_FAILED, EXIT_USAGE
from payhooks.config import KafkaSettings, Settings
from tests.conftest import free_port

COMMANDS = [("replay",), ("dlq", "list"), ("dlq", "show"), ("dlq", "redrive"),
            ("offsets", "show"), ("offsets", "reset")]


def run(settings: Settings, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), obj={"settings": settings})
    return result.exit_code, result.stdout, result.stderr


def nowhere() -> Settings:
    """Settings whose Kafka is a closed port on this machine."""
    return Settings(kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}"))


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_operator_command_has_help_with_examples(command: tuple[str, ...]) -> None:
    code, out, _ = run(Settings(), *command, "--help")
    assert code == 0
    assert "Example" in out
    assert "payhooks " + " ".join(command) in out.split("Example", 1)[1]


@pytest.mark.parametrize("args", [
    ("replay", "--topic", "webhooks.raw", "--from-offset", "0", "--reason", "x", "--json"),
    ("dlq", "list", "--json"),
    ("offsets", "show", "--json"),
    ("offsets", "reset", "--to-latest", "--reason", "x", "--execute"),
], ids=lambda a: " ".join(a[:2]))
def test_an_unreachable_kafka_fails_with_exit_1_and_says_what_to_do(args: tuple[str, ...]
                                                                    ) -> None:
    code, _, err = run(nowhere(), *args)
    assert code == EXIT_FAILED, err
    assert "is the broker up?" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(("args", "hint"), [
    (("replay", "--topic", "webhooks.raw", "--reason", "x"), "--from-offset"),
    (("replay", "--topic", "webhooks.raw", "--from-offset", "0", "--reason", " "), "--reason"),
    (("replay", "--topic", "webhooks.raw", "--from-time", "2026-11-24T10:00:00",
      "--reason", "x"), "time zone"),
    (("replay", "--topic", "webhooks.raw", "--from-offset", "5", "--to-offset", "4",
      "--reason", "x"), "before"),
    (("replay", "--topic", "payments.events", "--from-offset", "0", "--reason", "x"),
     "webhooks.raw"),
    (("replay", "--topic", "webhooks.raw", "--from-offset", "0"), "--reason"),
    (("dlq", "show", "12"), "PARTITION:OFFSET"),
    (("dlq", "redrive", "--reason", "x"), "--id"),
    (("dlq", "redrive", "--id", "0:1", "--all", "--reason", "x"), "--id"),
    (("offsets", "reset", "--reason", "x"), "--to-earliest"),
    (("offsets", "reset", "--to-latest", "--to-time", "2026-11-24T10:00:00Z", "--reason", "x"),
     "--to-earliest"),
])
def test_usage_errors_exit_2_and_name_the_fix(args: tuple[str, ...], hint: str) -> None:
    code, _, err = run(nowhere(), *args)
    assert code == EXIT_USAGE, err
    assert hint in err


@pytest.mark.parametrize("args", [
    ("--to-latest", "--partition", "3", "--partition", "5", "--reason", "INC-1", "--execute"),
    ("--to-earliest", "--reason", "INC 1: rebuild", "--force"),
])
def test_the_audited_command_line_is_the_one_typed(args: tuple[str, ...]) -> None:
    from payhooks.commands._operator import command_line  # noqa: PLC0415
    from payhooks.commands.offsets import offsets_reset  # noqa: PLC0415

    ctx = offsets_reset.make_context("payhooks offsets reset", list(args))
    line = command_line(ctx)
    chosen = args[0]
    other = "--to-earliest" if chosen == "--to-latest" else "--to-latest"
    assert line.startswith("payhooks offsets reset ")
    assert chosen in line
    assert other not in line
    assert ("--execute" in line) == ("--execute" in args)
    assert ("--force" in line) == ("--force" in args)
    assert ("--partition 3 --partition 5" in line) == ("3" in args)
