"""The receiver's Starlette application: webhook route, health, readiness and metrics."""

from __future__ import annotations

import contextlib
import functools
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson
import structlog
import yaml
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ingest.envelopes import records_for, traceparent
from ingest.errors import (
    IngestError,
    InternalError,
    Overloaded,
    PayloadTooLarge,
    UnknownEndpoint,
    UnsupportedMediaType,
    VerificationFailed,
)
from ingest.problems import problem_response
from ingest.publisher import Publisher
from ingest.schemes import RawRequest, Scheme, Verified, build_scheme
from payhooks.config import Settings
from payhooks.metrics import IngestMetrics
from payhooks.tracing import Tracing
from schemas import timefmt

log = structlog.get_logger("payhooks.ingest")

OPENAPI_PATH = Path(__file__).with_name("openapi.yaml")

#: the webhook route, as the receive span names it
WEBHOOK_ROUTE = "/webhooks/{endpoint}"

#: metric label for requests to endpoints that are not configured (bounded cardinality)
UNKNOWN_ENDPOINT_LABEL = "_unknown"

_OUTCOMES = {
    400: "malformed",
    401: "unauthorized",
    404: "unknown_endpoint",
    413: "too_large",
    415: "unsupported_media_type",
    503: "unavailable",
}


@dataclass(frozen=True, slots=True)
class _Accepted:
    requests: Counter
    events: Counter
    publish_seconds: Histogram


class Receiver:
    """Holds what the webhook route needs: schemes per endpoint, the publisher, limits, metrics."""

    def __init__(
        self,
        settings: Settings,
        publisher: Publisher,
        metrics: IngestMetrics,
        clock: Callable[[], float],
        schemes: Mapping[str, Scheme] | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.settings = settings
        self.tracing = tracing
        self.publisher = publisher
        self.metrics = metrics
        self.clock = clock
        self.schemes: Mapping[str, Scheme] = {
            name: build_scheme(endpoint) for name, endpoint in settings.endpoints.items()
        } | dict(schemes or {})
        self.in_flight = 0
        self._accepted: dict[str, _Accepted] = {}

    async def webhook(self, request: Request) -> Response:
        name = request.path_params["endpoint"]
        label = name if name in self.schemes else UNKNOWN_ENDPOINT_LABEL
        delivery_id = str(uuid.uuid4())
        if self.tracing is None:
            return await self._admit(request, name, label, delivery_id)
        with self.tracing.receive(request.headers, request.url.path, WEBHOOK_ROUTE) as span:
            response = await self._admit(request, name, label, delivery_id)
            self.tracing.responded(span, response.status_code, label, delivery_id)
            return response

    async def _admit(self, request: Request, name: str, label: str, delivery_id: str
                     ) -> Response:
        structlog.contextvars.bind_contextvars(
            request_id=_request_id(request.headers) or delivery_id,
            delivery_id=delivery_id,
            endpoint=label,
        )
        limit = self.settings.ingest.max_in_flight
        if self.in_flight >= limit:
            # answer at once instead of queueing without bound; the PSP retries
            return self._refuse(label, Overloaded(f"more than {limit} requests in flight"))
        self.in_flight += 1
        self.metrics.in_flight.inc()
        started = time.perf_counter()
        try:
            return await self._handle(request, name, label, delivery_id)
        except IngestError as error:
            return self._refuse(label, error)
        except Exception:
            # a bug: counted here, answered 500 (problem+json, nothing echoed) by the app's
            # exception handler, which logs it; the PSP retries
            self.metrics.requests.labels(label, "internal_error").inc()
            raise
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.dec()
            self.metrics.request_seconds.labels(label).observe(time.perf_counter() - started)
            structlog.contextvars.unbind_contextvars("request_id", "delivery_id", "endpoint")

    async def _handle(self, request: Request, name: str, label: str, delivery_id: str) -> Response:
        scheme = self.schemes.get(name)
        if scheme is None:
            raise UnknownEndpoint(f"no endpoint named {name[:64]!r} is configured")
        _check_media_type(request, scheme)
        body = await _read_body(request, self.settings.ingest.max_body_bytes)
        now = self.clock()
        raw = RawRequest(body=body, headers=request.headers)
        tracing = self.tracing
        if tracing is None:
            verified = await self._verify(scheme, raw, now)
        else:
            with tracing.verify(scheme.provider) as span:
                verified = await self._verify(scheme, raw, now)
                tracing.verified(span, verified.key_index)
        build = functools.partial(records_for, verified, endpoint=name, provider=scheme.provider,
                                  delivery_id=delivery_id, received_at=timefmt.from_unix(now),
                                  topic=self.settings.topics.raw)
        if tracing is None:
            records = build(traceparent=traceparent(request.headers))
            started = time.perf_counter()
            await self.publisher.publish(records, self.settings.ingest.publish_timeout_seconds)
        else:
            # the records carry the publish span's context: the workers continue this trace
            event_ids = [e.event_id for e in verified.events]
            with tracing.publish(self.settings.topics.raw, event_ids) as context:
                records = build(traceparent=context)
                started = time.perf_counter()
                await self.publisher.publish(records,
                                             self.settings.ingest.publish_timeout_seconds)
        accepted = self._accepted_metrics(label, scheme.provider)
        accepted.publish_seconds.observe(time.perf_counter() - started)
        accepted.events.inc(len(records))
        accepted.requests.inc()
        self.metrics.key_ring_matches.labels(label, str(verified.key_index)).inc()
        # debug, not info: an accepted delivery is on record in webhooks.raw (delivery id,
        # event ids) and in the metrics; a log line per request costs more than the rest of
        # the request path (BENCHMARKS.md)
        log.debug(
            "webhook_accepted",
            provider=scheme.provider,
            events=len(records),
            event_ids=[e.event_id for e in verified.events],
            key_index=verified.key_index,
        )
        return Response(scheme.success_body, media_type=scheme.success_media_type)

    async def _verify(self, scheme: Scheme, raw: RawRequest, now: float) -> Verified:
        try:
            return await scheme.verify(raw, now)
        except VerificationFailed as failure:
            self.metrics.verification_failures.labels(scheme.provider, failure.reason).inc()
            log.warning("verification_failed", provider=scheme.provider, reason=failure.reason)
            raise

    def _accepted_metrics(self, label: str, provider: str) -> _Accepted:
        """The label children of the success path, looked up once per endpoint."""
        found = self._accepted.get(label)
        if found is None:
            found = self._accepted[label] = _Accepted(
                requests=self.metrics.requests.labels(label, "accepted"),
                events=self.metrics.events_published.labels(label, provider),
                publish_seconds=self.metrics.publish_seconds.labels(label),
            )
        return found

    def _refuse(self, label: str, error: IngestError) -> Response:
        outcome = "overloaded" if isinstance(error, Overloaded) else _OUTCOMES[error.status]
        self.metrics.requests.labels(label, outcome).inc()
        if error.status >= 500:
            log.warning("webhook_unavailable", error=type(error).__name__, detail=error.detail)
        elif not isinstance(error, VerificationFailed):
            log.info("webhook_refused", status=error.status, detail=error.detail)
        return problem_response(error, self.settings.ingest.retry_after_seconds)


def _request_id(headers: Mapping[str, str]) -> str | None:
    """The caller's X-Request-Id when it is a plain token (it ends up in logs), else None."""
    value = headers.get("x-request-id", "")
    if 0 < len(value) <= 64 and all(c.isascii() and (c.isalnum() or c in "-_.:") for c in value):
        return value
    return None


def _check_media_type(request: Request, scheme: Scheme) -> None:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in scheme.content_types:
        allowed = ", ".join(sorted(scheme.content_types))
        raise UnsupportedMediaType(f"{scheme.provider} deliveries are sent as {allowed}")


async def _read_body(request: Request, limit: int) -> bytes:
    """The body exactly as received, refusing early once it passes ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    settings: Settings,
    publisher: Publisher,
    *,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], float] = time.time,
    schemes: Mapping[str, Scheme] | None = None,
    tracing: Tracing | None = None,
) -> Starlette:
    """The receiver. The app starts the publisher on start-up and stops (flushes) it on shutdown.

    ``schemes`` replaces the schemes built from the settings for some endpoints (tests give
    PayPal a certificate fetcher and trust store of their own this way). ``tracing`` (None: off)
    makes spans for each webhook; its owner shuts it down.
    """
    registry = registry if registry is not None else CollectorRegistry()
    receiver = Receiver(settings, publisher, IngestMetrics(registry), clock, schemes,
                        tracing)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        if await publisher.ready():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "kafka unreachable"}, status_code=503)

    async def metrics(_request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def openapi(_request: Request) -> Response:
        return Response(openapi_document(), media_type="application/json")

    async def internal_error(_request: Request, exc: Exception) -> Response:
        # a bug, not the caller's fault: log it with its traceback, answer without one; the PSP
        # retries a 500, and the event is not lost
        log.error("unhandled_error", error=type(exc).__name__, exc_info=exc)
        return problem_response(InternalError("unexpected error; it has been logged"), 0)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await publisher.start()
        log.info("receiver_started", endpoints=sorted(receiver.schemes))
        try:
            yield
        finally:
            # uvicorn has stopped accepting and finished in-flight requests: flush and close
            await publisher.stop()
            log.info("receiver_stopped")

    return Starlette(
        routes=[
            Route(WEBHOOK_ROUTE, receiver.webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
        ],
        exception_handlers={500: internal_error},
        lifespan=lifespan,
    )


@functools.cache
def openapi_document() -> bytes:
    """The OpenAPI description of the receiver (ingest/openapi.yaml), as JSON."""
    return orjson.dumps(yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8")))
