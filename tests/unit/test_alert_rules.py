"""deploy/prometheus: the rules pass promtool, every alert is unit-tested, labelled and linked."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from payhooks import metrics_catalogue
from payhooks.promql import selectors

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS / "tests").glob("*.yml"))
SEVERITIES = {"page", "ticket"}
#: the runbooks alerts may link to (docs/runbooks/, written alongside the alerts)
RUNBOOKS = {
    f"docs/runbooks/{name}.md"
    for name in ("signature-failures", "kafka-outage", "consumer-lag", "dlq-growth",
                 "parked-ageing", "provider-silence", "secret-rotation",
                 "duplicate-capture-or-refund", "replay")
}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is not installed: run `make tools` (installs Debian's prometheus "
                    "package), or put Prometheus' promtool on PATH")
    return found


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=300,
                          check=False, cwd=PROMETHEUS)


def alerts() -> list[dict[str, Any]]:
    return [rule for path in RULE_FILES
            for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"] if "alert" in rule]


def alert_names_fired_in_tests() -> set[str]:
    """Alert names with at least one expected firing in a promtool test."""
    names = set()
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                if case.get("exp_alerts"):
                    names.add(case["alertname"])
    return names


def test_rule_files_exist() -> None:
    assert RULE_FILES, "no rule files in deploy/prometheus/rules"
    assert TEST_FILES, "no promtool tests in deploy/prometheus/tests"


def test_promtool_check_rules_passes() -> None:
    result = run_promtool("check", "rules", *(str(p) for p in RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules_passes() -> None:
    result = run_promtool("test", "rules", *(str(p) for p in TEST_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """A test file expecting an alert that cannot fire is reported as failed."""
    test_file = tmp_path / "wrong.test.yml"
    test_file.write_text(yaml.safe_dump({
        "rule_files": [str(p) for p in RULE_FILES],
        "tests": [{"interval": "1m",
                   "input_series": [{"series": 'payhooks_consumer_ready{job="w"}',
                                     "values": "1x20"}],
                   "alert_rule_test": [{"eval_time": "15m", "alertname": "PayhooksWorkerNotReady",
                                        "exp_alerts": [{"exp_labels": {"severity": "page",
                                                                       "job": "w"}}]}]}],
    }))
    result = run_promtool("test", "rules", str(test_file))
    assert result.returncode != 0
    assert "PayhooksWorkerNotReady" in result.stdout + result.stderr


def test_every_alert_has_a_firing_unit_test() -> None:
    untested = {a["alert"] for a in alerts()} - alert_names_fired_in_tests()
    assert not untested, f"alerts without a promtool test that expects them to fire: {untested}"


def test_every_alert_has_a_severity_summary_description_and_runbook() -> None:
    for alert in alerts():
        name = alert["alert"]
        assert alert.get("labels", {}).get("severity") in SEVERITIES, name
        annotations = alert.get("annotations", {})
        assert annotations.get("summary"), name
        assert annotations.get("description"), name
        assert annotations.get("runbook_url") in RUNBOOKS, (name, annotations.get("runbook_url"))


def test_alert_names_are_unique() -> None:
    names = [a["alert"] for a in alerts()]
    assert len(names) == len(set(names))


def test_rules_read_only_catalogued_metrics_with_their_labels() -> None:
    """Every metric an expression names is exported, and its matchers use labels it has."""
    catalogue = {m.name: m for m in metrics_catalogue.catalogue()}
    by_series = {series: m for m in catalogue.values() for series in m.series_names}
    recorded = {r.name for r in metrics_catalogue.rules() if not r.is_alert}
    target_labels = {"job", "instance", "__name__"}
    for rule in metrics_catalogue.rules():
        for selector in selectors(rule.expr):
            if selector.is_recorded:
                assert selector.name in recorded, (rule.name, selector.name)
                continue
            metric = catalogue.get(selector.name) or by_series.get(selector.name)
            assert metric is not None, f"{rule.name} reads {selector.name}, which is not exported"
            if selector.name.endswith("_created"):
                raise AssertionError(f"{rule.name} reads {selector.name}")
            extra = {"le"} if metric.kind == "histogram" and selector.name.endswith("_bucket") \
                else set()
            unknown = selector.labels - set(metric.labels) - target_labels - extra
            assert not unknown, f"{rule.name}: {selector.name} has no label {unknown}"


def test_runbooks_linked_by_alerts_exist() -> None:
    root = PROMETHEUS.parents[1]
    missing = {a["annotations"]["runbook_url"] for a in alerts()
               if not (root / a["annotations"]["runbook_url"]).is_file()}
    assert not missing, f"alerts link to runbooks that do not exist: {sorted(missing)}"
