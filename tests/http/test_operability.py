"""OpenAPI document, unexpected errors, request ids and graceful shutdown of the receiver."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx
import orjson
import pytest
import structlog
from prometheus_client import CollectorRegistry
from starlette.routing import Route

from ingest import errors
from ingest.app import create_app, openapi_document
from payhooks.config import Settings
from payhooks.kafka import Record
from tests.conftest import make_settings, serving
from tests.http.test_receiver_http import RecordingPublisher
from tests.support import stripe_event, stripe_headers


@pytest.fixture
def http_settings() -> Settings:
    return make_settings("unused:9092", "redis://unused")


def test_openapi_describes_exactly_the_routes_the_app_serves(http_settings: Settings) -> None:
    app = create_app(http_settings, RecordingPublisher(), registry=CollectorRegistry())
    served = {(route.path, method.lower()) for route in app.routes if isinstance(route, Route)
              for method in (route.methods or ()) if method != "HEAD"}
    document = orjson.loads(openapi_document())
    described = {(path, method) for path, item in document["paths"].items() for method in item}
    assert served == described


def test_openapi_lists_every_status_the_webhook_route_can_answer() -> None:
    document = orjson.loads(openapi_document())
    answers = document["paths"]["/webhooks/{endpoint}"]["post"]["responses"]
    statuses = {cls.status for cls in vars(errors).values()
                if isinstance(cls, type) and issubclass(cls, errors.IngestError)
                and cls not in (errors.IngestError, errors.InternalError)}
    assert {int(code) for code in answers} == statuses | {200}


async def test_openapi_document_is_served(http_settings: Settings) -> None:
    app = create_app(http_settings, RecordingPublisher(), registry=CollectorRegistry())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.1")


class ExplodingPublisher(RecordingPublisher):
    async def publish(self, records: Sequence[Record], timeout: float) -> None:
        raise RuntimeError("bug with a secret whsec_should_not_leak inside")


async def test_unexpected_error_is_a_problem_500_without_traceback(http_settings: Settings
                                                                    ) -> None:
    registry = CollectorRegistry()
    app = create_app(http_settings, ExplodingPublisher(), registry=registry)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    body = orjson.dumps(stripe_event())
    with structlog.testing.capture_logs() as logs:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.post("/webhooks/stripe", content=body,
                                         headers=stripe_headers(body))
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "Traceback" not in response.text
    assert "whsec_should_not_leak" not in response.text
    assert any(e["event"] == "unhandled_error" for e in logs)
    assert registry.get_sample_value("payhooks_ingest_requests_total",
                                     {"endpoint": "stripe", "outcome": "internal_error"}) == 1


async def test_callers_request_id_is_bound_to_log_lines(http_settings: Settings) -> None:
    app = create_app(http_settings, RecordingPublisher(), registry=CollectorRegistry())
    body = orjson.dumps(stripe_event())
    with structlog.testing.capture_logs(
            processors=[structlog.contextvars.merge_contextvars]) as logs:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://t") as client:
            await client.post("/webhooks/stripe", content=body,
                              headers={**stripe_headers(body), "x-request-id": "req-42"})
            await client.post("/webhooks/stripe", content=body,
                              headers={**stripe_headers(body), "x-request-id": "bad id\n{"})
    assert logs[0]["request_id"] == "req-42"
    assert logs[1]["request_id"] == logs[1]["delivery_id"]  # unusable ids are not logged


class SlowPublisher(RecordingPublisher):
    def __init__(self) -> None:
        super().__init__()
        self.delay = 1.0
        self.stopped_after: list[int] = []

    async def stop(self) -> None:
        self.stopped_after.append(len(self.published))


async def test_shutdown_finishes_in_flight_requests_then_flushes_the_publisher(
        http_settings: Settings) -> None:
    publisher = SlowPublisher()
    app = create_app(http_settings, publisher, registry=CollectorRegistry())
    body = orjson.dumps(stripe_event())
    async with serving(app) as (url, server), httpx.AsyncClient(timeout=10) as client:
        in_flight = asyncio.create_task(client.post(
            f"{url}/webhooks/stripe", content=body, headers=stripe_headers(body)))
        await asyncio.sleep(0.3)  # the request is inside the slow publish now
        server.should_exit = True  # what SIGTERM does
        response = await in_flight
    assert response.status_code == 200
    assert publisher.stopped_after == [1]  # stopped once, after the in-flight record was published
