"""Operator command tests: run the CLI in-process, read offsets and audit records."""

from __future__ import annotations

import asyncio
from typing import Any

import jsonschema
import orjson
from aiokafka import TopicPartition
from click.testing import CliRunner, Result

from payhooks import kafka
from payhooks.cli import cli
from payhooks.config import Settings
from schemas import registry, wire
from schemas.envelope import Envelope
from tests.support import read_topic, stripe_event

OPERATOR = "oncall-tester"


async def invoke(settings: Settings, *args: str) -> Result:
    """``payhooks ARGS`` with the test's settings, in a thread (the command runs its own loop)."""
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, cli, list(args), obj={"settings": settings},
                                   env={"PAYHOOKS_OPERATOR": OPERATOR}, catch_exceptions=False)


def json_of(result: Result) -> Any:
    assert result.stdout.strip(), result.output
    return orjson.loads(result.stdout)


async def group_offsets(settings: Settings) -> dict[int, int]:
    """The worker group's committed offsets on the raw topic, by partition."""
    admin = kafka.admin(settings.kafka)
    await admin.start()
    try:
        answer = await admin.list_consumer_group_offsets(settings.consumer.group_id)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in answer.items()
            if tp.topic == settings.topics.raw}


async def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    consumer = kafka.consumer(settings.kafka, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in await kafka.partitions_of(settings.kafka, topic)]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in ends.items()}


def envelope(provider: str, ref: str, event_id: str, event_type: str,
             payload: bytes = b"{}") -> Envelope:
    return Envelope(delivery_id=f"d-{event_id}", endpoint=provider, provider=provider,
                    event_id=event_id, event_type=event_type, payment_ref=ref,
                    received_at="2026-11-24T00:00:00.000Z", key_index=0, payload=payload)


async def produce_envelopes(settings: Settings, items: list[tuple[Envelope, int | None]]
                            ) -> list[tuple[int, int]]:
    """Write envelopes to the raw topic as the receiver would (timestamp_ms when given);
    returns their (partition, offset)."""
    producer = kafka.producer(settings.kafka)
    await producer.start()
    coordinates = []
    try:
        for env, timestamp_ms in items:
            meta = await producer.send_and_wait(
                settings.topics.raw, env.to_json(), key=env.partition_key.encode(),
                timestamp_ms=timestamp_ms,
                headers=[(wire.HEADER_PROVIDER, env.provider.encode()),
                         (wire.HEADER_EVENT_ID, env.event_id.encode()),
                         (wire.HEADER_SCHEMA, wire.SCHEMA_ENVELOPE_V1.encode())])
            coordinates.append((meta.partition, meta.offset))
    finally:
        await producer.stop()
    return coordinates


async def audit_records(settings: Settings, expect: int | None = None) -> list[dict[str, Any]]:
    """Every audit record, each checked against payhooks.audit.v1."""
    records = await read_topic(settings, settings.topics.audit, expect=expect, timeout=10,
                               settle=1)
    docs = [orjson.loads(r.value) for r in records]
    for doc in docs:
        jsonschema.validate(doc, registry.load(wire.SCHEMA_AUDIT_V1))
    return docs


def authorized(event_id: str, pi: str) -> dict[str, Any]:
    """A Stripe event that authorizes a payment (it applies at once: no predecessor needed)."""
    event = stripe_event(event_id, "payment_intent.amount_capturable_updated", pi=pi)
    event["data"]["object"]["amount_capturable"] = event["data"]["object"]["amount"]
    return event


def header_of(record: Any, name: str) -> str | None:
    value = dict(record.headers or ()).get(name)
    return None if value is None else bytes(value).decode()
