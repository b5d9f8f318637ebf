"""docs/metrics.md is what the code generates; the catalogue and the PromQL reader are right."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from payhooks import metrics_catalogue
from payhooks.metrics import ConsumerMetrics, IngestMetrics
from payhooks.promql import Selector, metric_names, selectors


def test_docs_metrics_md_is_what_the_code_generates() -> None:
    expected = metrics_catalogue.render(metrics_catalogue.catalogue(), metrics_catalogue.rules())
    current = metrics_catalogue.DOC_FILE.read_text(encoding="utf-8")
    assert current == expected, (
        f"docs/metrics.md is out of date; regenerate it: {metrics_catalogue.REGENERATE}")


def test_catalogue_lists_every_metric_the_classes_register() -> None:
    registry = CollectorRegistry()
    IngestMetrics(registry)
    ConsumerMetrics(registry)
    registered = {family.name for family in registry.collect()}
    catalogued = {m.name.removesuffix("_total") for m in metrics_catalogue.catalogue()}
    assert catalogued == registered


def test_catalogue_gives_names_types_and_labels_as_exported() -> None:
    registry = CollectorRegistry()
    ingest, consumer = IngestMetrics(registry), ConsumerMetrics(registry)
    # one child per labelled metric, so that every sample name appears in the exposition
    ingest.requests.labels("stripe", "accepted").inc()
    ingest.verification_failures.labels("stripe", "signature_mismatch").inc()
    ingest.key_ring_matches.labels("stripe", "0").inc()
    ingest.events_published.labels("stripe", "stripe").inc()
    ingest.publish_seconds.labels("stripe").observe(0.01)
    ingest.request_seconds.labels("stripe").observe(0.01)
    consumer.records.labels("applied").inc()
    consumer.transitions.labels("captured", "false").inc()
    consumer.lag.labels("0").set(1)
    consumer.retries.labels("redis").inc()
    families = list(text_string_to_metric_families(generate_latest(registry).decode()))
    samples = {s.name: set(s.labels) for f in families for s in f.samples}
    kinds = {f.name: f.type for f in families}
    for metric in metrics_catalogue.catalogue():
        assert kinds[metric.name.removesuffix("_total")] == metric.kind
        assert metric.series_names <= set(samples), metric.name
        assert metric.name in samples or metric.kind == "histogram"
        for series in metric.series_names:
            assert samples[series] - {"le"} == set(metric.labels), series


def test_every_metric_has_a_note_and_every_note_a_metric() -> None:
    names = {m.name for m in metrics_catalogue.catalogue()}
    assert set(metrics_catalogue.NOTES) == names


def test_documented_label_values_belong_to_a_metric_label() -> None:
    labels = {(m.name, label) for m in metrics_catalogue.catalogue() for label in m.labels}
    assert set(metrics_catalogue.LABEL_VALUES) <= labels


def test_check_reports_a_stale_document(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    doc = tmp_path / "metrics.md"
    monkeypatch.setattr(metrics_catalogue, "DOC_FILE", doc)
    monkeypatch.setattr(metrics_catalogue, "ROOT", tmp_path)
    doc.write_text("# Metrics\n")
    assert metrics_catalogue.main(["--check"]) == 1
    assert metrics_catalogue.REGENERATE in capsys.readouterr().err
    assert metrics_catalogue.main(["--write"]) == 0
    assert metrics_catalogue.main(["--check"]) == 0


def test_alert_usage_follows_recording_rules() -> None:
    rules = metrics_catalogue.rules()
    requests = next(m for m in metrics_catalogue.catalogue()
                    if m.name == "payhooks_ingest_requests_total")
    # PayhooksSignatureFailuresHigh reads the requests counter through a recording rule
    assert "PayhooksSignatureFailuresHigh" in metrics_catalogue.uses(requests, rules)


# --- the PromQL reader ------------------------------------------------------------------------


def test_aggregations_functions_and_label_lists_are_not_metric_names() -> None:
    expr = ('sum by (job, le) (rate(payhooks_ingest_publish_seconds_bucket{endpoint="x"}[5m])) '
            '/ on (job) group_left (endpoint) max without (instance) (payhooks_consumer_ready)')
    assert metric_names(expr) == {"payhooks_ingest_publish_seconds_bucket",
                                  "payhooks_consumer_ready"}


def test_matcher_labels_are_collected_and_strings_skipped() -> None:
    expr = 'payhooks_ingest_requests_total{outcome=~"unauthorized|fake_metric", endpoint!="a}b"}'
    assert selectors(expr) == [Selector("payhooks_ingest_requests_total",
                                        frozenset({"outcome", "endpoint"}))]


def test_grafana_variables_durations_offsets_and_numbers_are_skipped() -> None:
    expr = ('histogram_quantile(0.99, sum(rate(payhooks_consumer_batch_seconds_bucket'
            '{job=~"$job"}[$__rate_interval])) by (le)) > 1e3 and '
            'increase(payhooks_consumer_records_total[1h] offset 1w) > ${threshold} # comment x')
    assert metric_names(expr) == {"payhooks_consumer_batch_seconds_bucket",
                                  "payhooks_consumer_records_total"}


def test_aggregation_with_postfix_by_and_bool_comparison() -> None:
    expr = "count(up == bool 1) by (job) or vector(0) unless absent(payhooks_consumer_ready)"
    assert metric_names(expr) == {"up", "payhooks_consumer_ready"}


def test_recorded_series_are_recognised() -> None:
    [selector] = selectors("job_endpoint:payhooks_ingest_requests_unauthorized:ratio_rate10m > 0.5")
    assert selector.is_recorded
