"""The webhook route in-process: status codes, problem+json bodies, limits, logs.

Kafka is replaced by a recording publisher here because these tests are about HTTP answers; what
reaches Kafka is tested against a real broker in tests/integration.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

import httpx
import orjson
import pytest
import structlog
from prometheus_client import CollectorRegistry

from ingest.app import create_app
from ingest.errors import PublishTimeout
from ingest.schemes.paypal import PayPalScheme, format_transmission_time
from ingest.schemes.paypal_certs import CertSourceUnavailable
from payhooks.config import EndpointSettings, Settings
from payhooks.kafka import Record
from payhooks.logging import redact
from tests.conftest import STRIPE_OLD_SECRET, STRIPE_SECRET, make_settings
from tests.support import stripe_event, stripe_headers


class RecordingPublisher:
    def __init__(self) -> None:
        self.published: list[Record] = []
        self.fail_with: Exception | None = None
        self.delay = 0.0

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def ready(self) -> bool:
        return True

    async def publish(self, records: Sequence[Record], timeout: float) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_with:
            raise self.fail_with
        self.published.extend(records)


@pytest.fixture
def http_settings() -> Settings:
    return make_settings("unused:9092", "redis://unused")


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def client(http_settings: Settings, publisher: RecordingPublisher,
                 registry: CollectorRegistry) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(http_settings, publisher, registry=registry)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_genuine_webhook_is_accepted_and_published(
        client: httpx.AsyncClient, publisher: RecordingPublisher, registry: CollectorRegistry
) -> None:
    body = orjson.dumps(stripe_event("evt_a", pi="pi_a"))
    response = await client.post("/webhooks/stripe", content=body, headers=stripe_headers(body))
    assert response.status_code == 200
    assert response.json() == {"received": True}
    assert [r.key for r in publisher.published] == [b"stripe:pi_a"]
    assert sample(registry, "payhooks_ingest_requests_total", endpoint="stripe",
                  outcome="accepted") == 1
    assert sample(registry, "payhooks_ingest_key_ring_matches_total", endpoint="stripe",
                  key_index="0") == 1


async def test_old_key_match_is_counted_by_ring_position(
        client: httpx.AsyncClient, registry: CollectorRegistry) -> None:
    body = orjson.dumps(stripe_event())
    response = await client.post("/webhooks/stripe", content=body,
                                 headers=stripe_headers(body, secret=STRIPE_OLD_SECRET))
    assert response.status_code == 200
    assert sample(registry, "payhooks_ingest_key_ring_matches_total", endpoint="stripe",
                  key_index="1") == 1


@pytest.mark.parametrize(("headers_for", "reason"), [
    (lambda b: stripe_headers(b, secret="whsec_wrong"), "signature_mismatch"),
    (lambda b: stripe_headers(b, timestamp=1_000_000_000), "timestamp_too_old"),
    (lambda b: stripe_headers(b, timestamp=4_000_000_000), "timestamp_in_future"),
    (lambda b: {"content-type": "application/json"}, "missing_header"),
])
async def test_unauthentic_webhook_gets_401_and_is_not_published(
        client: httpx.AsyncClient, publisher: RecordingPublisher, registry: CollectorRegistry,
        headers_for: object, reason: str) -> None:
    body = orjson.dumps(stripe_event())
    headers = headers_for(body)  # type: ignore[operator]
    response = await client.post("/webhooks/stripe", content=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 401
    assert publisher.published == []
    assert sample(registry, "payhooks_ingest_verification_failures_total", provider="stripe",
                  reason=reason) == 1


async def test_garbage_non_ascii_signature_header_gets_401_not_500(
        client: httpx.AsyncClient, publisher: RecordingPublisher) -> None:
    body = orjson.dumps(stripe_event())
    # raw non-ASCII bytes in the header, the way a hostile or broken client sends them
    header = f"t={int(time.time())},v1=".encode() + "\u00e9\u00e8\u00ff\u00a0".encode("latin-1")
    response = await client.post("/webhooks/stripe", content=body,
                                 headers={"content-type": b"application/json",
                                          "stripe-signature": header})
    assert response.status_code == 401
    assert publisher.published == []


async def test_unknown_endpoint_gets_404(client: httpx.AsyncClient,
                                         registry: CollectorRegistry) -> None:
    body = orjson.dumps(stripe_event())
    response = await client.post("/webhooks/nope", content=body, headers=stripe_headers(body))
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert sample(registry, "payhooks_ingest_requests_total", endpoint="_unknown",
                  outcome="unknown_endpoint") == 1


async def test_body_over_the_limit_gets_413(client: httpx.AsyncClient,
                                            publisher: RecordingPublisher) -> None:
    body = b"{" + b" " * (1024 * 1024) + b"}"
    response = await client.post("/webhooks/stripe", content=body, headers=stripe_headers(body))
    assert response.status_code == 413
    assert publisher.published == []


async def test_form_post_to_stripe_gets_415(client: httpx.AsyncClient) -> None:
    response = await client.post("/webhooks/stripe", content=b"a=b",
                                 headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415


async def test_signed_body_that_is_not_an_event_gets_400(client: httpx.AsyncClient) -> None:
    body = b'{"hello": "world"}'
    response = await client.post("/webhooks/stripe", content=body, headers=stripe_headers(body))
    assert response.status_code == 400


async def test_publish_timeout_gets_503_with_retry_after(
        client: httpx.AsyncClient, publisher: RecordingPublisher) -> None:
    publisher.fail_with = PublishTimeout("Kafka did not acknowledge 1 record(s) within 5 s")
    body = orjson.dumps(stripe_event())
    response = await client.post("/webhooks/stripe", content=body, headers=stripe_headers(body))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["title"] == "Kafka did not confirm in time"


class PayPalCertHostDown:
    """PayPal's certificate host during an outage."""

    def __init__(self) -> None:
        self.calls = 0

    async def fetch(self, url: str) -> bytes:
        self.calls += 1
        raise CertSourceUnavailable("certificate host answered 503")


async def test_paypal_certificate_outage_gets_503_with_retry_after_not_401(
        http_settings: Settings, publisher: RecordingPublisher, registry: CollectorRegistry
) -> None:
    down = PayPalCertHostDown()
    paypal = PayPalScheme.from_settings(
        EndpointSettings(name="paypal", provider="paypal", secrets=(),
                         options={"webhook_id": "8PT597110X687430L"}),  # system CA bundle
        fetcher=down)
    app = create_app(http_settings, publisher, registry=registry, schemes={"paypal": paypal})
    headers = {
        "content-type": "application/json",
        "paypal-transmission-id": "4cce5920-5106-11ef-84e2-f38df3f70683",
        "paypal-transmission-time": format_transmission_time(time.time()),
        "paypal-transmission-sig": "c2lnbmF0dXJl",
        "paypal-cert-url": "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-test",
        "paypal-auth-algo": "SHA256withRSA",
    }
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as client:
        response = await client.post("/webhooks/paypal", content=b"{}", headers=headers)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["title"] == "PayPal certificate unavailable"
    assert down.calls == 1
    assert publisher.published == []
    assert sample(registry, "payhooks_ingest_requests_total", endpoint="paypal",
                  outcome="unavailable") == 1
    assert sample(registry, "payhooks_ingest_verification_failures_total", provider="paypal",
                  reason="certificate_rejected") == 0


async def test_requests_over_the_in_flight_limit_get_a_fast_503(
        http_settings: Settings, publisher: RecordingPublisher) -> None:
    settings = replace(http_settings, ingest=replace(http_settings.ingest, max_in_flight=2))
    app = create_app(settings, publisher, registry=CollectorRegistry())
    publisher.delay = 0.5
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as c:
        body = orjson.dumps(stripe_event())
        answers = await asyncio.gather(*[
            c.post("/webhooks/stripe", content=body, headers=stripe_headers(body))
            for _ in range(5)])
    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 200, 503, 503, 503]
    assert all("retry-after" in a.headers for a in answers if a.status_code == 503)


async def test_health_readiness_and_metrics_answer(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/readyz")).status_code == 200
    metrics = await client.get("/metrics")
    assert b"payhooks_ingest_requests_total" in metrics.content


async def test_problem_bodies_never_echo_body_or_signature(client: httpx.AsyncClient) -> None:
    body = orjson.dumps(stripe_event(event_id="evt_marker_4242424242424242"))
    headers = stripe_headers(body, secret="whsec_wrong")
    response = await client.post("/webhooks/stripe", content=body, headers=headers)
    text = response.text
    assert "4242424242424242" not in text
    assert headers["stripe-signature"].split("v1=")[1] not in text
    assert STRIPE_SECRET not in text


def test_redaction_drops_sensitive_keys_and_masks_card_numbers() -> None:
    event = redact(None, "info", {
        "event": "x",
        "authorization": "Basic abc",
        "note": "card 4242 4242 4242 4242 and 4000-0000-0000-0002",
        "nested": {"password": "p", "ok": "order 1234567890123"},
        "signature": "v1=abc",
    })
    assert event["authorization"] == "[redacted]"
    assert event["signature"] == "[redacted]"
    assert event["nested"]["password"] == "[redacted]"
    assert "4242 4242 4242 4242" not in event["note"]
    assert "4000-0000-0000-0002" not in event["note"]
    assert event["note"].count("[pan ...") == 2
    assert event["nested"]["ok"] == "order 1234567890123"  # not Luhn-valid: kept


async def test_log_lines_of_a_request_carry_ids_and_no_secrets(
        client: httpx.AsyncClient) -> None:
    body = orjson.dumps(stripe_event(event_id="evt_logs"))
    with structlog.testing.capture_logs(
            processors=[structlog.contextvars.merge_contextvars]) as logs:
        await client.post("/webhooks/stripe", content=body, headers=stripe_headers(body))
        await client.post("/webhooks/stripe", content=body,
                          headers=stripe_headers(body, secret="whsec_wrong"))
    assert [e["event"] for e in logs] == ["webhook_accepted", "verification_failed"]
    assert all(e.get("delivery_id") and e.get("endpoint") == "stripe" for e in logs)
    flat = repr(logs)
    assert STRIPE_SECRET not in flat
    assert body.decode() not in flat
