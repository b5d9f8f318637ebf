"""One webhook is one trace: from the HTTP request through webhooks.raw to the downstream topics,
against a real receiver, a real worker, Kafka and Redis, with in-memory span exporters."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import httpx
import orjson
import pytest
from aiokafka.structs import ConsumerRecord
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from redis.asyncio import Redis

from payhooks.config import Settings
from payhooks.tracing import Tracing
from schemas import wire
from tests.conftest import running_receiver, running_worker
from tests.support import read_topic, stripe_event, stripe_headers

pytestmark = pytest.mark.integration

DOWNSTREAM = ("events", "transitions", "state")


def in_memory_tracing() -> tuple[Tracing, InMemorySpanExporter]:
    """A service's tracing with its spans kept in memory (exported as each span ends)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(provider), exporter


def authorization(event_id: str, pi: str) -> dict[str, Any]:
    """A Stripe authorization: applied at once, so it writes an event, a transition and state."""
    event = stripe_event(event_id, kind="payment_intent.amount_capturable_updated", pi=pi,
                         amount=1234)
    event["data"]["object"]["amount_capturable"] = 1234
    return event


async def deliver(url: str, event: dict[str, Any], traceparent: str | None) -> str:
    """POST a signed delivery; its Stripe-Signature header."""
    body = orjson.dumps(event)
    headers = stripe_headers(body)
    if traceparent is not None:
        headers["traceparent"] = traceparent
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{url}/webhooks/stripe", content=body, headers=headers)
    assert response.status_code == 200
    return headers["stripe-signature"]


def header(record: ConsumerRecord, name: str) -> str | None:
    values = [v.decode() for k, v in record.headers if k == name]
    assert len(values) <= 1
    return values[0] if values else None


def ids(traceparent: str | None) -> tuple[str, str]:
    """(trace id, span id) of a W3C traceparent value."""
    assert traceparent is not None
    version, trace_id, span_id, _flags = traceparent.split("-")
    assert version == "00"
    return trace_id, span_id


def by_name(spans: Sequence[ReadableSpan]) -> dict[str, ReadableSpan]:
    named: dict[str, ReadableSpan] = {}
    for span in spans:
        assert span.name not in named, f"two {span.name} spans"
        named[span.name] = span
    return named


def span_ids(span: ReadableSpan) -> tuple[str, str]:
    context = span.get_span_context()
    assert context is not None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def parent_id(span: ReadableSpan) -> str | None:
    return None if span.parent is None else f"{span.parent.span_id:016x}"


async def downstream(settings: Settings) -> dict[str, list[ConsumerRecord]]:
    topics = settings.topics
    return {
        "events": await read_topic(settings, topics.events, expect=1),
        "transitions": await read_topic(settings, topics.transitions, expect=1),
        "state": await read_topic(settings, topics.state, expect=1),
        "snapshots": await read_topic(settings, topics.snapshots, expect=1),
    }


@pytest.mark.parametrize("incoming", ["psp", "none"])
async def test_one_webhook_is_one_trace_from_http_to_the_downstream_records(
        settings: Settings, redis_client: Redis, incoming: str) -> None:
    psp_trace, psp_span = secrets.token_hex(16), secrets.token_hex(8)
    traceparent = f"00-{psp_trace}-{psp_span}-01" if incoming == "psp" else None
    receiver_tracing, receiver_spans = in_memory_tracing()
    worker_tracing, worker_spans = in_memory_tracing()

    async with running_receiver(settings, receiver_tracing) as url:
        signature = await deliver(url, authorization("evt_tr_1", "pi_tr_1"), traceparent)
    [raw] = await read_topic(settings, settings.topics.raw, expect=1)
    async with running_worker(settings, redis_client, worker_tracing):
        outputs = await downstream(settings)

    received = by_name(receiver_spans.get_finished_spans())
    worked = by_name(worker_spans.get_finished_spans())
    assert set(received) == {"receive", "verify", "publish"}
    assert set(worked) == {"consume", "apply", "produce"}
    spans = {**received, **worked}
    [trace_id] = {span_ids(span)[0] for span in spans.values()}
    if incoming == "psp":  # the PSP's (or proxy's) trace continues, under its span
        assert trace_id == psp_trace
        assert parent_id(spans["receive"]) == psp_span
    else:
        assert spans["receive"].parent is None
    # receive > verify, publish; publish > (webhooks.raw) > consume > apply, produce
    receive_id = span_ids(spans["receive"])[1]
    assert parent_id(spans["verify"]) == receive_id
    assert parent_id(spans["publish"]) == receive_id
    assert parent_id(spans["consume"]) == span_ids(spans["publish"])[1]
    assert parent_id(spans["apply"]) == span_ids(spans["consume"])[1]
    assert parent_id(spans["produce"]) == span_ids(spans["consume"])[1]
    assert [spans[n].kind for n in ("receive", "publish", "consume", "produce")] == [
        SpanKind.SERVER, SpanKind.PRODUCER, SpanKind.CONSUMER, SpanKind.PRODUCER]

    # the raw record carries the publish span's context, the downstream ones the produce span's
    assert ids(header(raw, wire.HEADER_TRACEPARENT)) == span_ids(spans["publish"])
    for role in DOWNSTREAM:
        [record] = outputs[role]
        assert ids(header(record, wire.HEADER_TRACEPARENT)) == span_ids(spans["produce"]), role
    [snapshot] = outputs["snapshots"]
    assert header(snapshot, wire.HEADER_TRACEPARENT) is None  # internal: no trace context

    # what the spans say, in the conventions' names; nothing of the body or signature
    attributes = {name: dict(span.attributes or {}) for name, span in spans.items()}
    assert attributes["receive"]["http.response.status_code"] == 200
    assert attributes["receive"]["http.route"] == "/webhooks/{endpoint}"
    assert attributes["verify"]["payhooks.provider"] == "stripe"
    assert attributes["publish"]["messaging.destination.name"] == settings.topics.raw
    assert attributes["publish"]["payhooks.event_ids"] == ("evt_tr_1",)
    assert attributes["consume"]["messaging.system"] == "kafka"
    assert attributes["consume"]["messaging.destination.name"] == settings.topics.raw
    assert attributes["consume"]["messaging.destination.partition.id"] == str(raw.partition)
    assert attributes["consume"]["messaging.kafka.offset"] == raw.offset
    assert attributes["consume"]["messaging.consumer.group.name"] == settings.consumer.group_id
    assert attributes["apply"]["payhooks.outcomes"] == ("applied",)
    assert attributes["produce"]["payhooks.output_topics"] == tuple(sorted(
        getattr(settings.topics, role) for role in (*DOWNSTREAM, "snapshots")))
    digest = signature.split("v1=")[1]
    for span in spans.values():
        text = span.to_json()
        assert "amount_capturable" not in text
        assert digest not in text


async def test_a_refused_request_is_one_receive_span_with_a_failed_verify(
        settings: Settings) -> None:
    tracing, exporter = in_memory_tracing()
    body = orjson.dumps(authorization("evt_tr_bad", "pi_tr_bad"))
    async with running_receiver(settings, tracing) as url, httpx.AsyncClient() as client:
        response = await client.post(f"{url}/webhooks/stripe", content=body,
                                     headers=stripe_headers(body, secret="whsec_wrong"))
    assert response.status_code == 401
    spans = by_name(exporter.get_finished_spans())
    assert set(spans) == {"receive", "verify"}
    assert dict(spans["receive"].attributes or {})["http.response.status_code"] == 401
    assert spans["receive"].status.is_unset  # a 4xx is the caller's error, not the server's
    assert dict(spans["verify"].attributes or {})["error.type"] == "VerificationFailed"
    assert not spans["verify"].status.is_ok
    assert not spans["verify"].status.is_unset


async def test_with_tracing_off_the_incoming_traceparent_flows_through_unchanged(
        settings: Settings, redis_client: Redis) -> None:
    traceparent = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
    async with running_receiver(settings) as url:
        await deliver(url, authorization("evt_tr_off", "pi_tr_off"), traceparent)
    [raw] = await read_topic(settings, settings.topics.raw, expect=1)
    assert header(raw, wire.HEADER_TRACEPARENT) == traceparent
    async with running_worker(settings, redis_client):
        outputs = await downstream(settings)
    for role in DOWNSTREAM:
        [record] = outputs[role]
        assert header(record, wire.HEADER_TRACEPARENT) == traceparent, role
