"""OpenTelemetry spans along one webhook's path, with the trace context carried in Kafka headers.

One webhook is one trace: the receiver's ``receive`` span (a child of the PSP's or proxy's
``traceparent`` when one came with the request) holds ``verify`` and ``publish``; the
``webhooks.raw`` records carry the ``publish`` span's context in their ``traceparent`` header; the
worker's ``consume`` span continues from that header and holds ``apply`` and ``produce``, whose
context the downstream records carry on.

Tracing is off by default. Off means no :class:`Tracing` object at all: callers hold ``None`` and
take their untraced path after one ``if``, and the OpenTelemetry SDK is never imported. The
provider is built here and passed around, never installed as OpenTelemetry's global one, so tests
can give the receiver and the worker a provider with an in-memory exporter.

Attribute names follow the OpenTelemetry semantic conventions for HTTP servers and Kafka
messaging. Span attributes may name payment and event ids; they never hold bodies, signatures,
secrets or exception messages (an error is recorded by its class name only).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from payhooks import __version__
from payhooks.config import TracingSettings

if TYPE_CHECKING:
    from aiokafka.structs import ConsumerRecord
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span
    from opentelemetry.util.types import AttributeValue

# --- span names --------------------------------------------------------------------------------
SPAN_RECEIVE = "receive"  # the receiver's HTTP server span, one per request
SPAN_VERIFY = "verify"  # the signature check
SPAN_PUBLISH = "publish"  # the request's records sent to webhooks.raw (producer)
SPAN_CONSUME = "consume"  # one webhooks.raw record in a worker (consumer)
SPAN_APPLY = "apply"  # the handler's decision: dedupe, state machine, outputs
SPAN_PRODUCE = "produce"  # the decision's records sent in the partition's transaction (producer)

# --- semantic-convention attribute names (HTTP, messaging) and ours ----------------------------
_HTTP_METHOD = "http.request.method"
_HTTP_ROUTE = "http.route"
_HTTP_STATUS = "http.response.status_code"
_URL_PATH = "url.path"
_ERROR_TYPE = "error.type"
_MSG_SYSTEM = "messaging.system"
_MSG_OPERATION_TYPE = "messaging.operation.type"
_MSG_OPERATION_NAME = "messaging.operation.name"
_MSG_DESTINATION = "messaging.destination.name"
_MSG_PARTITION = "messaging.destination.partition.id"
_MSG_GROUP = "messaging.consumer.group.name"
_MSG_BATCH_COUNT = "messaging.batch.message_count"
_MSG_KAFKA_KEY = "messaging.kafka.message.key"
_MSG_KAFKA_OFFSET = "messaging.kafka.offset"
_PAYHOOKS_ENDPOINT = "payhooks.endpoint"
_PAYHOOKS_PROVIDER = "payhooks.provider"
_PAYHOOKS_DELIVERY_ID = "payhooks.delivery_id"
_PAYHOOKS_EVENT_IDS = "payhooks.event_ids"
_PAYHOOKS_KEY_INDEX = "payhooks.key_index"
_PAYHOOKS_OUTCOMES = "payhooks.outcomes"
_PAYHOOKS_REDELIVERED = "payhooks.redelivered"
_PAYHOOKS_TOPICS = "payhooks.output_topics"

_TRACEPARENT = "traceparent"  # the W3C header, in HTTP requests and in Kafka records
_propagator = TraceContextTextMapPropagator()


class Tracing:
    """A tracer over a provider this object owns; :meth:`shutdown` flushes and closes it."""

    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("payhooks")

    def shutdown(self) -> None:
        """Export what is still buffered and stop the exporter (call once, on exit)."""
        self._provider.shutdown()

    # --- receiver ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def receive(self, headers: Mapping[str, str], path: str, route: str) -> Iterator[Span]:
        """The HTTP server span, a child of the request's ``traceparent`` when it is valid."""
        parent = _extract(headers.get(_TRACEPARENT))
        attributes = {_HTTP_METHOD: "POST", _HTTP_ROUTE: route, _URL_PATH: path}
        with self._span(SPAN_RECEIVE, SpanKind.SERVER, attributes, parent) as span:
            yield span

    @staticmethod
    def responded(span: Span, status: int, endpoint: str, delivery_id: str) -> None:
        span.set_attributes({_HTTP_STATUS: status, _PAYHOOKS_ENDPOINT: endpoint,
                             _PAYHOOKS_DELIVERY_ID: delivery_id})
        if status >= 500:  # a server span is an error only when the server failed
            span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))

    @contextlib.contextmanager
    def verify(self, provider: str) -> Iterator[Span]:
        with self._span(SPAN_VERIFY, SpanKind.INTERNAL, {_PAYHOOKS_PROVIDER: provider}) as span:
            yield span

    @staticmethod
    def verified(span: Span, key_index: int) -> None:
        span.set_attribute(_PAYHOOKS_KEY_INDEX, key_index)

    @contextlib.contextmanager
    def publish(self, topic: str, event_ids: Sequence[str]) -> Iterator[str]:
        """The producer span of a request's records; yields the ``traceparent`` they carry."""
        attributes: dict[str, AttributeValue] = {
            **_KAFKA, _MSG_OPERATION_TYPE: "send", _MSG_OPERATION_NAME: SPAN_PUBLISH,
            _MSG_DESTINATION: topic, _PAYHOOKS_EVENT_IDS: list(event_ids)}
        if len(event_ids) > 1:
            attributes[_MSG_BATCH_COUNT] = len(event_ids)
        with self._span(SPAN_PUBLISH, SpanKind.PRODUCER, attributes) as span:
            yield traceparent_of(span)

    # --- worker --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def consume(self, record: ConsumerRecord, group: str, start_ns: int | None = None
                ) -> Iterator[Span]:
        """One record's consumer span, a child of the context in its ``traceparent`` header
        (``start_ns``: when its batch was taken up, if before now)."""
        attributes: dict[str, AttributeValue] = {
            **_KAFKA, _MSG_OPERATION_TYPE: "process", _MSG_OPERATION_NAME: SPAN_CONSUME,
            _MSG_DESTINATION: record.topic, _MSG_PARTITION: str(record.partition),
            _MSG_KAFKA_OFFSET: record.offset, _MSG_GROUP: group}
        if record.key is not None:
            attributes[_MSG_KAFKA_KEY] = record.key.decode("utf-8", "replace")
        parent = _extract(header_traceparent(record.headers))
        with self._span(SPAN_CONSUME, SpanKind.CONSUMER, attributes, parent,
                        start_ns=start_ns) as span:
            yield span

    @contextlib.contextmanager
    def apply(self) -> Iterator[Span]:
        with self._span(SPAN_APPLY, SpanKind.INTERNAL, {}) as span:
            yield span

    def applied(self, outcomes: Sequence[str], redelivered: bool, start_ns: int, end_ns: int,
                batch_size: int) -> None:
        """A finished ``apply`` span under the current (consume) span for one record decided in
        a partition batch: it covers the batch's decision, from ``start_ns`` to ``end_ns``."""
        span = self._tracer.start_span(SPAN_APPLY, kind=SpanKind.INTERNAL, start_time=start_ns,
                                       attributes={_MSG_BATCH_COUNT: batch_size})
        self.decided(span, outcomes, redelivered)
        span.end(end_time=end_ns)

    @staticmethod
    def decided(span: Span, outcomes: Sequence[str], redelivered: bool) -> None:
        span.set_attributes({_PAYHOOKS_OUTCOMES: list(outcomes),
                             _PAYHOOKS_REDELIVERED: redelivered})

    @contextlib.contextmanager
    def produce(self, topics: Sequence[str]) -> Iterator[str]:
        """The producer span of one decision's records; yields the ``traceparent`` they carry."""
        attributes: dict[str, AttributeValue] = {
            **_KAFKA, _MSG_OPERATION_TYPE: "send", _MSG_OPERATION_NAME: SPAN_PRODUCE,
            _PAYHOOKS_TOPICS: sorted(set(topics))}
        if len(topics) > 1:
            attributes[_MSG_BATCH_COUNT] = len(topics)
        with self._span(SPAN_PRODUCE, SpanKind.PRODUCER, attributes) as span:
            yield traceparent_of(span)

    # --- the one way spans are made ------------------------------------------------------------

    @contextlib.contextmanager
    def _span(self, name: str, kind: SpanKind, attributes: Mapping[str, AttributeValue],
              parent: Context | None = None, start_ns: int | None = None) -> Iterator[Span]:
        # exceptions are recorded by class only: their messages may quote what must not leave
        with self._tracer.start_as_current_span(
                name, context=parent, kind=kind, attributes=attributes, start_time=start_ns,
                record_exception=False, set_status_on_exception=False) as span:
            try:
                yield span
            except BaseException as exc:
                span.set_attribute(_ERROR_TYPE, type(exc).__name__)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise


_KAFKA: Mapping[str, AttributeValue] = {_MSG_SYSTEM: "kafka"}


def build(settings: TracingSettings, component: str) -> Tracing | None:
    """The configured tracing for ``component`` (``receiver``, ``worker``), or None when off.

    Only here, and only when tracing is on, is the OpenTelemetry SDK imported.
    """
    if not settings.enabled:
        return None
    # the SDK loads only when tracing is on
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased  # noqa: PLC0415

    exporter: SpanExporter
    if settings.exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )

        # OTEL_EXPORTER_OTLP_HEADERS / _TRACES_HEADERS (collector credentials) are read by the
        # exporter itself, so they stay out of payhooks' settings and logs
        exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint)
    else:
        exporter = ConsoleSpanExporter(out=sys.stdout)  # today's stdout, not the import-time one
    resource = Resource.create({
        "service.name": settings.service_name or f"payhooks-{component}",
        "service.version": __version__,
    })
    # a request's sampled flag wins, so the receiver and the workers keep or drop a trace together
    provider = TracerProvider(resource=resource,
                              sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return Tracing(provider)


def traceparent_of(span: Span) -> str:
    """``span``'s context as a W3C ``traceparent`` value."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=trace.set_span_in_context(span))
    return carrier[_TRACEPARENT]


def header_traceparent(headers: Sequence[tuple[str, bytes]] | None) -> str | None:
    """The ``traceparent`` header of a Kafka record, if it has one."""
    for key, value in headers or ():
        if key == _TRACEPARENT:
            return value.decode("ascii", "replace")
    return None


def _extract(value: str | None) -> Context:
    """The remote parent named by a ``traceparent`` value; an empty context (a new trace) when
    there is none or it is not valid W3C trace context."""
    return _propagator.extract({_TRACEPARENT: value} if value else {}, context=Context())
