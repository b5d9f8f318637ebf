"""The Grafana dashboard queries only metrics, labels and label values the code exports."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import promql_parser as promql
import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from payhooks.metrics import ConsumerMetrics, IngestMetrics
from tests.unit import deploy_support as support

DASHBOARDS = sorted((support.DEPLOY / "grafana" / "dashboards").glob("*.json"))
SCRAPE_LABELS = frozenset({"job", "instance"})  # added by Prometheus to every series
_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
_COUNTER_FUNCTIONS = frozenset({"rate", "irate", "increase"})


@dataclass(frozen=True, slots=True)
class Series:
    """One sample name the code exports, with the metric it belongs to."""

    metric: str
    kind: str
    labels: frozenset[str]
    documentation: str


def exported_series() -> dict[str, Series]:
    registry = CollectorRegistry()
    groups = (IngestMetrics(registry), ConsumerMetrics(registry))
    series = {}
    for group in groups:
        for metric in vars(group).values():
            assert isinstance(metric, MetricWrapperBase)
            family = metric.describe()[0]
            labels = frozenset(metric._labelnames)  # no public accessor
            for suffix in _SUFFIXES[family.type]:
                extra = {"le"} if suffix == "_bucket" else set()
                series[family.name + suffix] = Series(family.name, family.type,
                                                      labels | extra, family.documentation)
    return series


@dataclass(frozen=True, slots=True)
class Selector:
    name: str
    matchers: tuple[tuple[str, str, str], ...]  # (label, op, value)
    in_function: str | None


def selectors(node: Any, function: str | None = None) -> Iterator[Selector]:
    """Every series selector of a parsed expression, with the function applied to it."""
    if isinstance(node, promql.VectorSelector):
        yield Selector(node.name, tuple((m.name, str(m.op), m.value)
                                        for m in node.matchers.matchers), function)
    elif isinstance(node, promql.MatrixSelector):
        yield from selectors(node.vector_selector, function)
    elif isinstance(node, promql.Call):
        for arg in node.args:
            yield from selectors(arg, node.func.name)
    elif isinstance(node, promql.AggregateExpr):
        yield from selectors(node.expr)
    elif isinstance(node, promql.BinaryExpr):
        yield from selectors(node.lhs)
        yield from selectors(node.rhs)
    elif isinstance(node, promql.ParenExpr | promql.UnaryExpr | promql.SubqueryExpr):
        yield from selectors(node.expr, function)


def aggregations(node: Any, under_quantile: bool = False) -> Iterator[tuple[Any, bool]]:
    """Every aggregation of a parsed expression, and whether histogram_quantile reads it."""
    if isinstance(node, promql.AggregateExpr):
        yield node, under_quantile
        yield from aggregations(node.expr)
    elif isinstance(node, promql.Call):
        quantile = node.func.name == "histogram_quantile"
        for arg in node.args:
            yield from aggregations(arg, quantile)
    elif isinstance(node, promql.BinaryExpr):
        yield from aggregations(node.lhs)
        yield from aggregations(node.rhs)
    elif isinstance(node, promql.ParenExpr | promql.UnaryExpr | promql.SubqueryExpr):
        yield from aggregations(node.expr, under_quantile)


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def targets(dashboard: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel["title"], target


def all_exprs() -> list[tuple[str, str]]:
    return [(f"{path.name}: {title}", target["expr"])
            for path in DASHBOARDS
            for title, target in targets(json.loads(path.read_text()))]


def test_there_is_a_dashboard_with_queries() -> None:
    assert DASHBOARDS
    assert len(all_exprs()) >= 10


@pytest.mark.parametrize(("where", "expr"), all_exprs())
def test_every_query_reads_exported_series_with_their_labels(where: str, expr: str) -> None:
    exported = exported_series()
    parsed = promql.parse(expr)  # raises on invalid PromQL
    found = list(selectors(parsed))
    assert found, f"{where}: no series in {expr}"
    for selector in found:
        assert selector.name in exported, f"{where}: {selector.name} is not exported"
        series = exported[selector.name]
        for label, op, value in selector.matchers:
            assert label in series.labels | SCRAPE_LABELS, f"{where}: {selector.name}: no {label}"
            if op == "MatchOp.Equal" and label not in SCRAPE_LABELS:
                # a fixed label value must be one the metric documents (outcome="dlq", ...)
                assert value in series.documentation, f"{where}: {label}={value!r} undocumented"
        if selector.in_function in _COUNTER_FUNCTIONS:
            assert series.kind in {"counter", "histogram"}, (
                f"{where}: {selector.in_function}() of the {series.kind} {selector.name}")
        if series.kind == "histogram":
            assert selector.name.endswith("_bucket") == (
                selector.in_function in _COUNTER_FUNCTIONS and "histogram_quantile" in expr)


@pytest.mark.parametrize(("where", "expr"), all_exprs())
def test_every_grouping_label_exists_on_the_series_it_groups(where: str, expr: str) -> None:
    exported = exported_series()
    parsed = promql.parse(expr)
    for aggregation, under_quantile in aggregations(parsed):
        grouped = list(aggregation.modifier.labels) if aggregation.modifier else []
        if under_quantile:
            assert "le" in grouped, f"{where}: histogram_quantile needs `by (le)`"
        for selector in selectors(aggregation.expr):
            missing = set(grouped) - exported[selector.name].labels - SCRAPE_LABELS
            assert not missing, f"{where}: {selector.name} has no {sorted(missing)}"


def test_dashboard_covers_what_on_call_needs() -> None:
    exprs = [expr for _, expr in all_exprs()]
    read = {s.name: s for expr in exprs for s in selectors(promql.parse(expr))}
    for needed in (
        "payhooks_ingest_events_published_total",       # ingest rate by provider
        "payhooks_ingest_requests_total",               # outcomes
        "payhooks_ingest_verification_failures_total",  # verification failures
        "payhooks_ingest_request_seconds_bucket",       # latency
        "payhooks_consumer_lag_records",                # consumer lag
        "payhooks_consumer_transitions_total",          # transitions by type
        "payhooks_consumer_parked_payments",            # parked
        "payhooks_consumer_oldest_parked_age_seconds",
        "payhooks_consumer_parking_window_seconds",
    ):
        assert needed in read, f"no panel reads {needed}"
    assert any(('outcome', 'MatchOp.Equal', 'dlq') in s.matchers
               for expr in exprs for s in selectors(promql.parse(expr))), "no DLQ panel"
    assert any("by (provider" in expr and "events_published" in expr for expr in exprs)
    assert any("to_state" in expr and "transitions" in expr for expr in exprs)


def test_panels_use_the_provisioned_datasource_and_fit_the_grid() -> None:
    provisioned = yaml.safe_load((support.DEPLOY / "grafana/provisioning/datasources/"
                                  "prometheus.yml").read_text())["datasources"]
    uids = {source["uid"] for source in provisioned}
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"]
        ids = [panel["id"] for panel in panels(dashboard)]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        cells: set[tuple[int, int]] = set()
        for panel in panels(dashboard):
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, panel["title"]
            area = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                    for y in range(grid["y"], grid["y"] + grid["h"])}
            assert not area & cells, f"{path.name}: {panel['title']} overlaps another panel"
            cells |= area
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] in uids, panel["title"]
                ref_ids = [target["refId"] for target in panel["targets"]]
                assert len(ref_ids) == len(set(ref_ids)), panel["title"]
                for target in panel["targets"]:
                    assert target["datasource"]["uid"] in uids, panel["title"]
