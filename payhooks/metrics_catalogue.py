"""docs/metrics.md, generated from the metric classes and the alert rules so neither can drift.

    python -m payhooks.metrics_catalogue            # print the catalogue
    python -m payhooks.metrics_catalogue --write    # rewrite docs/metrics.md
    python -m payhooks.metrics_catalogue --check    # exit 1 when docs/metrics.md is out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from consumers.state import STATES
from ingest.errors import VerificationFailed
from payhooks.metrics import ConsumerMetrics, IngestMetrics
from payhooks.promql import metric_names

ROOT = Path(__file__).resolve().parent.parent
DOC_FILE = ROOT / "docs" / "metrics.md"
RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"
REGENERATE = "python -m payhooks.metrics_catalogue --write"

# the sample-name suffixes of each metric type in the text exposition format
_SUFFIXES: Mapping[str, tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
}

#: what each metric is for and what to alert on; a test fails when a metric has no note here or a
#: note names no metric, so the two lists cannot drift
NOTES: Mapping[str, str] = {
    "payhooks_ingest_requests_total": (
        "RED rate and errors of the receiver. `outcome=\"unauthorized\"` over all requests of an "
        "endpoint is its signature-failure ratio; `unavailable` and `overloaded` are the 503s "
        "(Kafka did not confirm in time, or too many requests in flight). Unhandled errors (500) "
        "are logged with their traceback and not counted here."
    ),
    "payhooks_ingest_verification_failures_total": (
        "Why requests were refused with 401, by provider: `signature_mismatch` after a secret "
        "rotation on one side only, `timestamp_too_old` for clock skew or replayed requests, "
        "`basic_auth_failed` for a wrong Basic-auth password set at the provider. Read it next "
        "to the signature-failure alerts."
    ),
    "payhooks_ingest_key_ring_matches_total": (
        "Key-ring usage. After a rotation the new secret is first in the ring (`key_index=\"0\"`); "
        "while `key_index=\"1\"` still grows the provider still signs with the old secret and it "
        "must stay in the ring."
    ),
    "payhooks_ingest_events_published_total": (
        "Provider events stored in `webhooks.raw` (a GoCardless batch or an Adyen delivery counts "
        "each item). Its rate by provider, compared with the same hour a day and a week ago, "
        "tells when a provider has gone silent."
    ),
    "payhooks_ingest_publish_seconds": (
        "Publish latency: the Kafka part of an accepted request. A p99 near "
        "`ingest.publish_timeout_seconds` means requests are about to be answered 503."
    ),
    "payhooks_ingest_request_seconds": (
        "RED duration of the receiver, every outcome included (401s are fast, accepted requests "
        "wait for Kafka)."
    ),
    "payhooks_ingest_in_flight_requests": (
        "Saturation of one receiver; at `ingest.max_in_flight` new requests are answered 503 "
        "(`outcome=\"overloaded\"`)."
    ),
    "payhooks_consumer_records_total": (
        "Outcomes of the workers. `dlq` is the dead-letter rate (events that could not apply "
        "even after the parking window); `stale` events repeat money already counted (a PSP sent "
        "a capture or refund again under a new id); `parked` and `released`/`inferred` show "
        "out-of-order delivery; `redelivered` counts records re-read after a crash."
    ),
    "payhooks_consumer_transitions_total": (
        "State changes written to `payments.transitions`; `inferred=\"true\"` are the steps "
        "implied when a parked event's window expired."
    ),
    "payhooks_consumer_parking_window_seconds": (
        "The configured `consumer.parking_window_seconds`, exported so that alerts compare the "
        "oldest parked age with the window actually in force."
    ),
    "payhooks_consumer_batch_seconds": "Time per polled batch; with the records rate, throughput.",
    "payhooks_consumer_transaction_seconds": (
        "Transaction latency per partition: writes to the output topics plus the offset commit."
    ),
    "payhooks_consumer_lag_records": (
        "Consumer lag per partition, updated after each batch of that partition (a worker that "
        "processes nothing does not update it: the stalled-consumer alert covers that case)."
    ),
    "payhooks_consumer_parked_payments": "Payments waiting for a predecessor event.",
    "payhooks_consumer_oldest_parked_age_seconds": (
        "Parked age, measured every 5 seconds from Redis (every worker reports the same value). "
        "Above the parking window, expired events are not being released."
    ),
    "payhooks_consumer_ready": (
        "0 while a worker cannot reach Kafka or a trusted Redis (it retries with backoff)."
    ),
    "payhooks_consumer_retries_total": (
        "Batches abandoned and read again, by cause; `fenced` is expected once per rebalance."
    ),
    "payhooks_consumer_redis_rebuilds_total": (
        "Redis rebuilt from `payhooks.snapshots` after it restarted empty or untrusted."
    ),
}


#: label values fixed by the code, taken from where the code defines them
LABEL_VALUES: Mapping[tuple[str, str], tuple[str, ...]] = {
    ("payhooks_ingest_verification_failures_total", "reason"):
        tuple(sorted(VerificationFailed.REASONS)),
    ("payhooks_consumer_transitions_total", "to_state"): tuple(STATES),
    ("payhooks_consumer_transitions_total", "inferred"): ("false", "true"),
}
_TEMPLATE = re.compile(r"\{\{\s*\$(labels\.)?(\w+)[^}]*\}\}")


@dataclass(frozen=True, slots=True)
class MetricDoc:
    """One exported metric: its name as queried, type, label names, help text and exporter."""

    name: str  # counters end in _total, as they are queried
    kind: str  # counter, gauge or histogram
    labels: tuple[str, ...]
    help: str
    component: str  # receiver or worker

    @property
    def series_names(self) -> frozenset[str]:
        """Names its samples carry in the exposition format (``_bucket``, ``_created``...)."""
        base = self.name.removesuffix("_total")
        return frozenset(base + suffix for suffix in _SUFFIXES[self.kind])


@dataclass(frozen=True, slots=True)
class RuleDoc:
    """One alerting or recording rule of deploy/prometheus/rules."""

    name: str
    is_alert: bool
    expr: str
    severity: str
    duration: str  # the rule's `for`, "0s" when absent
    runbook: str
    summary: str


def catalogue() -> tuple[MetricDoc, ...]:
    """Every metric of IngestMetrics and ConsumerMetrics, read from fresh instances."""
    found: list[MetricDoc] = []
    for component, metrics in (("receiver", IngestMetrics(CollectorRegistry())),
                               ("worker", ConsumerMetrics(CollectorRegistry()))):
        for value in vars(metrics).values():
            if isinstance(value, MetricWrapperBase):
                found.append(_metric_doc(value, component))
    return tuple(found)


def _metric_doc(metric: MetricWrapperBase, component: str) -> MetricDoc:
    # prometheus_client has no public accessor for a metric's label names; these attributes are
    # set by every MetricWrapperBase constructor
    kind = str(metric._type)
    name: str = metric._name + ("_total" if kind == "counter" else "")
    labels: tuple[str, ...] = tuple(metric._labelnames)
    help_text: str = metric._documentation
    return MetricDoc(name, kind, labels, help_text, component)


def rules(rules_dir: Path = RULES_DIR) -> tuple[RuleDoc, ...]:
    """The rules of every ``*.yml`` file in ``rules_dir``, in file and group order."""
    found: list[RuleDoc] = []
    for path in sorted(rules_dir.glob("*.yml")):
        document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in document.get("groups", []):
            for rule in group.get("rules", []):
                annotations = rule.get("annotations", {})
                found.append(RuleDoc(
                    name=rule.get("alert") or rule["record"],
                    is_alert="alert" in rule,
                    expr=str(rule["expr"]),
                    severity=rule.get("labels", {}).get("severity", ""),
                    duration=str(rule.get("for", "0s")),
                    runbook=annotations.get("runbook_url", ""),
                    summary=annotations.get("summary", ""),
                ))
    return tuple(found)


def uses(metric: MetricDoc, rule_list: Iterable[RuleDoc]) -> list[str]:
    """Names of the alerts that read ``metric`` (through recording rules too)."""
    recorded = {r.name: metric_names(r.expr) for r in rule_list if not r.is_alert}
    wanted = metric.series_names | {metric.name}

    def reads(expr: str) -> bool:
        names = metric_names(expr)
        return bool(names & wanted) or any(recorded[n] & wanted for n in names if n in recorded)

    return [r.name for r in rule_list if r.is_alert and reads(r.expr)]


def render(metrics: Sequence[MetricDoc], rule_list: Sequence[RuleDoc]) -> str:
    """The whole of docs/metrics.md."""
    lines = [
        "# Metrics",
        "",
        f"<!-- generated by `{REGENERATE}` from payhooks/metrics.py, the notes in",
        "payhooks/metrics_catalogue.py and deploy/prometheus/rules; edit those, not this file -->",
        "",
        "The receiver serves `/metrics` on its own port (`payhooks serve`); each worker serves it",
        "when started with `payhooks consume --metrics-port N` (and `--metrics-host 0.0.0.0` in",
        "a container). Labels are of low cardinality only: endpoint and provider names, fixed",
        "outcome, reason and cause words, partition numbers, key-ring positions; never an event,",
        "payment or delivery id.",
        "",
        "Names are given as they are queried: counters end in `_total`; a histogram `h` is",
        "queried as `h_bucket`, `h_sum` and `h_count`. RED for the receiver: rate and errors from",
        "`payhooks_ingest_requests_total`, duration from `payhooks_ingest_request_seconds`.",
        "",
    ]
    for component, title in (("receiver", "Receiver (`payhooks serve`)"),
                             ("worker", "Workers (`payhooks consume --metrics-port N`)")):
        lines += [f"## {title}", "", "| Metric | Type | Labels | Meaning |", "|---|---|---|---|"]
        lines += [
            f"| `{m.name}` | {m.kind} | {', '.join(f'`{x}`' for x in m.labels) or '-'} | "
            f"{_cell(m.help)} |"
            for m in metrics if m.component == component
        ]
        lines.append("")
    lines += ["## What each metric tells, and the alerts that read it", ""]
    for m in metrics:
        alerts = uses(m, rule_list)
        used = ", ".join(f"`{a}`" for a in alerts) if alerts else "none (dashboards only)"
        lines += [f"### `{m.name}`", "", NOTES.get(m.name, "(no note)"), ""]
        lines += [f"Values of `{label}`: {', '.join(f'`{v}`' for v in values)}.\n"
                  for (name, label), values in LABEL_VALUES.items() if name == m.name]
        lines += [f"Alerts: {used}.", ""]
    lines += [
        "## Alerts",
        "",
        "Defined in `deploy/prometheus/rules/`, unit-tested in `deploy/prometheus/tests/` with",
        "`promtool test rules` (run by `make test`). `runbook_url` is a path in this repository;",
        "prefix it with your repository's browse URL in the Alertmanager template.",
        "",
        "| Alert | Severity | For | Runbook | Summary |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| `{r.name}` | {r.severity} | {r.duration} | [{Path(r.runbook).name}]"
        f"({Path(r.runbook).relative_to('docs').as_posix()}) | {_cell(r.summary)} |"
        for r in rule_list if r.is_alert
    ]
    recorded = [r for r in rule_list if not r.is_alert]
    if recorded:
        lines += ["", "Recording rules: " + ", ".join(f"`{r.name}`" for r in recorded) + "."]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text safe inside one Markdown table cell; alert templates shown as `<label>`."""
    text = " ".join(text.split()).replace("|", "\\|")
    return _TEMPLATE.sub(lambda m: f"`<{m.group(2)}>`", text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m payhooks.metrics_catalogue",
        description="Print, write or check docs/metrics.md, generated from payhooks/metrics.py "
        "and deploy/prometheus/rules.",
        epilog=f"example: {REGENERATE}   (after changing a metric or an alert)",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help=f"rewrite {DOC_FILE.name}")
    action.add_argument("--check", action="store_true",
                        help=f"exit 1 when {DOC_FILE.name} differs from what the code generates")
    args = parser.parse_args(argv)
    text = render(catalogue(), rules())
    if args.write:
        DOC_FILE.write_text(text, encoding="utf-8")
        sys.stdout.write(f"wrote {DOC_FILE.relative_to(ROOT)}\n")
    elif args.check:
        current = DOC_FILE.read_text(encoding="utf-8") if DOC_FILE.exists() else ""
        if current != text:
            sys.stderr.write(f"{DOC_FILE.relative_to(ROOT)} is out of date; run: {REGENERATE}\n")
            return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
