"""docs/runbooks: every alert's runbook exists, has the sections on-call needs, and cannot drift.

The `payhooks ...` command lines of the runbooks' shell blocks are parsed by the real click CLI
(options, arguments, types, required values), the metric names they mention are the ones
payhooks/metrics.py exports, their PromQL parses and selects existing metrics and labels, and the
alert names they use are the rules' own.
"""

from __future__ import annotations

import re
import shlex
import warnings
from collections.abc import Iterator
from pathlib import Path

import click
import promql_parser
import pytest

from payhooks import metrics_catalogue
from payhooks.cli import cli
from payhooks.promql import selectors

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK_DIR = ROOT / "docs" / "runbooks"
INDEX = RUNBOOK_DIR / "README.md"
RUNBOOKS = sorted(p for p in RUNBOOK_DIR.glob("*.md") if p != INDEX)
#: the runbooks the on-call tooling issue asks for, whether or not an alert links to them yet
REQUIRED = {"signature-failures", "kafka-outage", "consumer-lag", "dlq-growth", "parked-ageing",
            "provider-silence", "secret-rotation", "duplicate-capture-or-refund", "replay"}
#: level-2 headings every runbook has, in this order (a heading may carry a suffix:
#: "## Fix (the rotation)")
SECTIONS = ("Symptoms", "Alerts and metrics", "Diagnose", "Fix", "Verify it is fixed",
            "Escalate when")
#: labels Prometheus adds to every scraped series
TARGET_LABELS = frozenset({"job", "instance"})

RULES = metrics_catalogue.rules()
ALERTS = {r.name: r for r in RULES if r.is_alert}
RECORDED = {r.name for r in RULES if not r.is_alert}
METRICS = {name: doc for doc in metrics_catalogue.catalogue()
           for name in doc.series_names | {doc.name}}

_FENCE = re.compile(r"^[ \t]*```(\w*)\n(.*?)^[ \t]*```", re.MULTILINE | re.DOTALL)
#: a metric name, or a grep pattern naming several: payhooks_ingest_(requests_total|in_flight)
_METRIC_WORD = re.compile(r"(?<![\w:.])(payhooks_[a-z0-9_]+)(?:\(([a-z0-9_|]+)\))?")
_ALERT_WORD = re.compile(r"\bPayhooks[A-Z][A-Za-z]+\b")
_LINK = re.compile(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)")
_ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def blocks(text: str, language: str) -> list[str]:
    """The bodies of the fenced code blocks of ``language`` in ``text``."""
    return [body for lang, body in _FENCE.findall(text) if lang == language]


def metric_names(text: str) -> set[str]:
    """Every metric name ``text`` mentions, grep alternations expanded."""
    names: set[str] = set()
    for prefix, alternatives in _METRIC_WORD.findall(text):
        if alternatives:
            names.update(prefix + a for a in alternatives.split("|"))
        else:
            names.add(prefix)
    return names


def shell_lines(block: str) -> Iterator[str]:
    """Logical lines of a shell block: continuations joined, comments and blanks dropped."""
    for line in block.replace("\\\n", " ").splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            yield stripped


def payhooks_commands(line: str) -> list[list[str]]:
    """The argument lists of every `payhooks` command in one shell line (pipes, `;`, `$(...)`)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    found: list[list[str]] = []
    current: list[str] | None = None
    at_start = True
    for token in lexer:
        if token and set(token) <= set("();<>|&"):  # an operator ends the command
            current, at_start = None, True
            continue
        if at_start and _ENV_ASSIGNMENT.match(token):
            continue  # VAR=value before a command
        if at_start:
            at_start = False
            if token == "payhooks":
                current = []
                found.append(current)
            continue
        if current is not None:
            current.append(token)
    return found


def parse_cli(args: list[str]) -> click.Context:
    """Parse ``payhooks ARGS`` with the real command tree, running nothing.

    Raises click's UsageError (unknown command or option, missing or invalid value) on drift.
    """
    command: click.Command = cli
    name, rest, parent = "payhooks", list(args), None
    while True:
        ctx = command.make_context(name, rest, parent=parent)
        if not isinstance(command, click.Group):
            return ctx
        with warnings.catch_warnings():  # click 8.2+ deprecates the attribute, keeps it until 9
            warnings.simplefilter("ignore", DeprecationWarning)
            remaining = [*ctx.protected_args, *ctx.args]
        if not remaining:
            raise click.UsageError(f"`{name}` needs a subcommand", ctx)
        sub_name, sub, rest = command.resolve_command(ctx, remaining)
        assert sub is not None
        assert sub_name is not None
        command, name, parent = sub, sub_name, ctx


def runbook_commands() -> list[tuple[str, str, list[str]]]:
    return [(path.name, line, args)
            for path in [*RUNBOOKS, INDEX]
            for block in blocks(path.read_text(encoding="utf-8"), "sh")
            for line in shell_lines(block)
            for args in payhooks_commands(line)]


def test_every_runbook_the_alerts_link_to_exists() -> None:
    assert ALERTS, "no alert rules found in deploy/prometheus/rules"
    missing = {r.runbook for r in ALERTS.values()
               if not r.runbook.startswith("docs/runbooks/") or not (ROOT / r.runbook).is_file()}
    assert not missing, f"alerts link to runbooks that do not exist: {sorted(missing)}"


def test_every_runbook_of_the_issue_exists() -> None:
    assert {p.stem for p in RUNBOOKS} >= REQUIRED
    assert INDEX.is_file()


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: p.name)
def test_runbook_has_the_sections_in_order(path: Path) -> None:
    headings = re.findall(r"^## (.+)$", path.read_text(encoding="utf-8"), re.MULTILINE)
    found = [next((s for s in SECTIONS if h == s or h.startswith(s + " ")), None)
             for h in headings]
    assert [s for s in found if s] == list(SECTIONS), (
        f"{path.name}: level-2 headings {headings}; expected {list(SECTIONS)} in this order")


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: p.name)
def test_runbook_names_the_alerts_linking_to_it(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    linking = {name for name, r in ALERTS.items() if r.runbook == f"docs/runbooks/{path.name}"}
    assert not {a for a in linking if a not in text}, f"{path.name} does not name its alerts"


@pytest.mark.parametrize("path", [*RUNBOOKS, INDEX], ids=lambda p: p.name)
def test_alert_names_are_real(path: Path) -> None:
    unknown = set(_ALERT_WORD.findall(path.read_text(encoding="utf-8"))) - set(ALERTS)
    assert not unknown, f"{path.name} names alerts that do not exist: {sorted(unknown)}"


def test_index_maps_every_alert_to_its_runbook() -> None:
    text = INDEX.read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        names, links = _ALERT_WORD.findall(line), _LINK.findall(line)
        if line.startswith("|") and len(names) == 1 and len(links) == 1:
            rows[names[0]] = links[0]
    expected = {name: r.runbook.removeprefix("docs/runbooks/") for name, r in ALERTS.items()}
    assert rows == expected
    for rule in ("dry run", "--reason", "--execute", "payhooks.audit"):
        assert rule in text, f"the index does not state the operator rule about {rule!r}"


@pytest.mark.parametrize("path", [*RUNBOOKS, INDEX], ids=lambda p: p.name)
def test_links_resolve(path: Path) -> None:
    broken = [link for link in _LINK.findall(path.read_text(encoding="utf-8"))
              if not (path.parent / link).resolve().is_file()]
    assert not broken, f"{path.name} links to missing files: {broken}"


def test_runbooks_run_payhooks_commands() -> None:
    used = {args[0] for _name, _line, args in runbook_commands() if args}
    assert used >= {"trace", "replay", "dlq", "offsets", "sim", "topics"}


@pytest.mark.parametrize(("runbook", "line", "args"), runbook_commands(),
                         ids=lambda v: v if isinstance(v, str) and v.endswith(".md") else "")
def test_command_parses_with_the_cli(runbook: str, line: str, args: list[str]) -> None:
    try:
        parse_cli(args)
    except click.ClickException as exc:
        pytest.fail(f"{runbook}: `{line}` does not parse: {exc.format_message()}")


@pytest.mark.parametrize("args", [
    ["replay", "--topic", "webhooks.raw", "--frm-offset", "3", "--reason", "INC-1"],
    ["replay", "--topic", "webhooks.raw", "--from-offset", "0"],
    ["trace"],
    ["sim", "--payments", "many"],
    ["topics"],
    ["no-such-command"],
])
def test_the_command_check_catches_drift(args: list[str]) -> None:
    with pytest.raises(click.UsageError):
        parse_cli(args)


def test_command_lines_are_found_in_pipes_and_substitutions() -> None:
    line = ("P=$(payhooks trace stripe:pi_1 --json | jq '.a | .b'); "
            "PAYHOOKS_OPERATOR=me payhooks replay --topic webhooks.raw --reason 'INC 1' | tail -1")
    assert payhooks_commands(line) == [
        ["trace", "stripe:pi_1", "--json"],
        ["replay", "--topic", "webhooks.raw", "--reason", "INC 1"],
    ]
    assert payhooks_commands("curl -s http://127.0.0.1:8080/metrics | grep payhooks") == []


@pytest.mark.parametrize("path", [*RUNBOOKS, INDEX], ids=lambda p: p.name)
def test_metric_names_exist(path: Path) -> None:
    unknown = metric_names(path.read_text(encoding="utf-8")) - set(METRICS)
    assert not unknown, f"{path.name} names metrics payhooks does not export: {sorted(unknown)}"


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: p.name)
def test_promql_parses_and_selects_exported_series(path: Path) -> None:
    queries = blocks(path.read_text(encoding="utf-8"), "promql")
    assert queries, f"{path.name} shows no PromQL query"
    for query in queries:
        promql_parser.parse(query)  # raises on a syntax error
        for selector in selectors(query):
            if selector.is_recorded:
                assert selector.name in RECORDED, f"{path.name}: no recording rule {selector.name}"
                continue
            doc = METRICS.get(selector.name)
            assert doc is not None, f"{path.name}: no metric {selector.name}"
            allowed = set(doc.labels) | TARGET_LABELS
            if selector.name.endswith("_bucket"):
                allowed.add("le")
            assert selector.labels <= allowed, (
                f"{path.name}: {selector.name} has no label {sorted(selector.labels - allowed)}")
