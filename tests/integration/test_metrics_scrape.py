"""A running receiver and worker export every metric the catalogue, alerts and dashboards name.

The receiver is scraped at its own /metrics; the worker's registry is served the way
``payhooks consume --metrics-port`` serves it (prometheus_client's HTTP server) and scraped too.
Traffic first: accepted, old-key, bad-signature and duplicate webhooks, a parked capture, an
applied authorization and a poison record, so that the labelled series exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from consumers.worker import Worker
from payhooks import kafka, metrics_catalogue
from payhooks.config import Settings
from payhooks.metrics import ConsumerMetrics
from payhooks.promql import metric_names
from tests.conftest import STRIPE_OLD_SECRET, free_port, running_receiver
from tests.support import eventually, post_stripe, stripe_event

pytestmark = pytest.mark.integration

DASHBOARDS = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards"
_LABEL_VALUES_QUERY = re.compile(r"label_values\(\s*([^,)]+)")


@dataclass(frozen=True, slots=True)
class Scrape:
    """One /metrics answer: family types, and the label sets of each sample name."""

    types: dict[str, str]
    samples: dict[str, list[dict[str, str]]]

    @classmethod
    def parse(cls, text: str) -> Scrape:
        types: dict[str, str] = {}
        samples: dict[str, list[dict[str, str]]] = {}
        for family in text_string_to_metric_families(text):
            types[family.name] = family.type
            for sample in family.samples:
                samples.setdefault(sample.name, []).append(dict(sample.labels))
        return cls(types, samples)

    def exports(self, name: str) -> bool:
        """``name`` (as a query writes it) is a series here, or would be once a label child
        exists: a family of the right type is declared (labelled metrics without children have
        HELP and TYPE lines but no samples)."""
        if name in self.samples or self.types.get(name) == "gauge":
            return True
        for suffix, kinds in (("_total", {"counter"}), ("_created", {"counter", "histogram"}),
                              ("_bucket", {"histogram"}), ("_sum", {"histogram"}),
                              ("_count", {"histogram"})):
            if name.endswith(suffix) and self.types.get(name.removesuffix(suffix)) in kinds:
                return True
        return False

    def has(self, name: str, **labels: str) -> bool:
        """A sample ``name`` with (at least) these labels exists."""
        return any(labels.items() <= found.items() for found in self.samples.get(name, []))


def dashboard_exprs() -> list[str]:
    """Every PromQL expression of deploy/grafana/dashboards/*.json (panels, rows, variables)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "expr" and isinstance(value, str):
                    found.append(value)
                elif key in {"query", "definition"} and isinstance(value, str):
                    found.extend(_LABEL_VALUES_QUERY.findall(value))
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for path in sorted(DASHBOARDS.glob("*.json")):
        walk(json.loads(path.read_text(encoding="utf-8")))
    return found


def names_read_by(exprs: list[str]) -> set[str]:
    """payhooks metric names the expressions read (recorded series, other exporters left out)."""
    return {name for expr in exprs for name in metric_names(expr)
            if name.startswith("payhooks_") and ":" not in name}


@contextlib.contextmanager
def metrics_server(registry: CollectorRegistry) -> Iterator[str]:
    """``registry`` served over HTTP as ``payhooks consume --metrics-port`` serves it."""
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@contextlib.asynccontextmanager
async def served_worker(settings: Settings, redis: Redis) -> AsyncIterator[str]:
    """A real worker of the settings' group, its metrics scrapeable at the URL yielded."""
    registry = CollectorRegistry()
    worker = Worker(settings, redis, ConsumerMetrics(registry))
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        with metrics_server(registry) as url:
            yield url
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def scrape(client: httpx.AsyncClient, url: str) -> Scrape:
    response = await client.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape.parse(response.text)


async def send_traffic(client: httpx.AsyncClient, webhook_url: str, settings: Settings) -> None:
    """One of each: accepted, old key, bad signature, duplicate, parked, applied, poison."""
    capture = stripe_event("evt_scrape_capture", pi="pi_scrape_parked", amount=1500)
    authorize = stripe_event("evt_scrape_auth", kind="payment_intent.amount_capturable_updated",
                             pi="pi_scrape_applied", amount=900)
    authorize["data"]["object"]["amount_capturable"] = 900
    answers = [
        await post_stripe(client, webhook_url, capture),  # parks: no authorization yet
        await post_stripe(client, webhook_url, capture),  # duplicate
        await post_stripe(client, webhook_url, authorize, secret=STRIPE_OLD_SECRET),  # applied
        await post_stripe(client, webhook_url, stripe_event("evt_scrape_bad"),
                          secret="whsec_wrong_secret_for_this_test"),
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 401]
    producer = kafka.producer(settings.kafka)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topics.raw, b"not an envelope",
                                     key=b"stripe:pi_scrape_poison")
    finally:
        await producer.stop()


async def test_running_services_export_every_catalogued_alerted_and_charted_metric(
        settings: Settings, redis_client: Redis) -> None:
    async with (running_receiver(settings) as receiver_url,
                served_worker(settings, redis_client) as worker_url,
                httpx.AsyncClient(timeout=10) as client):
        await send_traffic(client, f"{receiver_url}/webhooks/stripe", settings)

        async def worker_saw_everything() -> bool:
            found = await scrape(client, worker_url)
            return all(found.has("payhooks_consumer_records_total", outcome=outcome)
                       for outcome in ("parked", "duplicate", "applied", "dlq"))

        await eventually(worker_saw_everything, timeout=60)
        receiver = await scrape(client, f"{receiver_url}/metrics")
        worker = await scrape(client, worker_url)

    # the series the traffic above must have created, with their labels
    assert receiver.has("payhooks_ingest_requests_total", endpoint="stripe", outcome="accepted")
    assert receiver.has("payhooks_ingest_requests_total", endpoint="stripe",
                        outcome="unauthorized")
    assert receiver.has("payhooks_ingest_verification_failures_total", provider="stripe",
                        reason="signature_mismatch")
    assert receiver.has("payhooks_ingest_key_ring_matches_total", endpoint="stripe",
                        key_index="0")
    assert receiver.has("payhooks_ingest_key_ring_matches_total", endpoint="stripe",
                        key_index="1")
    assert receiver.has("payhooks_ingest_events_published_total", endpoint="stripe",
                        provider="stripe")
    assert receiver.has("payhooks_ingest_publish_seconds_bucket", endpoint="stripe", le="+Inf")
    assert receiver.has("payhooks_ingest_request_seconds_count", endpoint="stripe")
    assert worker.has("payhooks_consumer_transitions_total", to_state="authorized",
                      inferred="false")
    assert worker.has("payhooks_consumer_lag_records")
    assert worker.has("payhooks_consumer_parking_window_seconds")

    # every catalogued metric is declared by the process that the catalogue says exports it
    for metric in metrics_catalogue.catalogue():
        scraped = receiver if metric.component == "receiver" else worker
        family = metric.name.removesuffix("_total")
        assert scraped.types.get(family) == metric.kind, f"{metric.name} missing or mistyped"

    both = Scrape({**receiver.types, **worker.types}, {**receiver.samples, **worker.samples})
    # docs/metrics.md names families (histograms without a suffix)
    documented = re.findall(r"^### `(\w+)`", metrics_catalogue.DOC_FILE.read_text(), re.MULTILINE)
    assert len(documented) == len(metrics_catalogue.catalogue())
    missing = sorted(n for n in documented if n.removesuffix("_total") not in both.types)
    assert not missing, f"docs/metrics.md names metrics no running service exports: {missing}"
    # queries name series (counters with _total, histograms with _bucket, _sum or _count)
    queried = {
        "alert rules": names_read_by([r.expr for r in metrics_catalogue.rules()]),
        "dashboards": names_read_by(dashboard_exprs()),
    }
    for source, names in queried.items():
        assert names, f"no metric names found in {source}"
        missing = sorted(name for name in names if not both.exports(name))
        assert not missing, f"{source} query series no running service exports: {missing}"
