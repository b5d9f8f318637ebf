"""Every event of many payments delivered three times in shuffled order, through the real receiver
and real workers: the final states are right and no (payment, version) appears twice downstream."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from datetime import UTC, datetime

import orjson
import pytest
from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from consumers import state as machine
from consumers.normalize import normalize
from ingest.app import create_app
from ingest.envelopes import records_for
from ingest.publisher import KafkaPublisher
from ingest.schemes import RawRequest, build_scheme
from payhooks import sim
from payhooks.config import Settings
from schemas.envelope import Envelope
from schemas.event import PaymentEvent
from tests.conftest import running_worker, serving
from tests.support import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PAYMENTS = 500


async def expected_finals(settings: Settings, provider: str,
                          lifecycles: list[list[sim.SimEvent]]) -> dict[str, machine.Snapshot]:
    """What in-order delivery gives, computed with the pure code on the same events."""
    endpoint = settings.endpoints[provider]
    scheme = build_scheme(endpoint)
    finals = {}
    now = int(time.time())
    for events in lifecycles:
        canonical = []
        for event in events:
            signed = sim.provider_sim(provider).sign([event], endpoint, now)
            verified = await scheme.verify(RawRequest(signed.body, signed.headers), now)
            [record] = records_for(verified, endpoint=endpoint.name, provider=provider,
                                   delivery_id="d", received_at="2026-11-24T00:00:00.000Z",
                                   traceparent="00-" + "1" * 32 + "-" + "1" * 16 + "-01",
                                   topic="raw")
            event_out = normalize(Envelope.from_json(record.value))
            if event_out is not None:
                canonical.append(event_out)
        by_payment: dict[str, list[PaymentEvent]] = defaultdict(list)
        for item in canonical:  # (PayPal refunds name a capture alias: a payment of their own)
            by_payment[item.payment_id].append(item)
        for payment_id, items in by_payment.items():
            decision = machine.replay(machine.Snapshot(payment_id), items, datetime.now(UTC))
            finals[payment_id] = decision.snapshot
    return finals


def latest_by_key(records: list[ConsumerRecord]) -> dict[str, dict[str, object]]:
    latest: dict[str, dict[str, object]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        latest[record.key.decode()] = orjson.loads(record.value)
    return latest


async def test_every_event_three_times_in_shuffled_order_applies_exactly_once(
        settings: Settings, redis_client: Redis) -> None:
    provider = "stripe"
    rng = random.Random(2026)
    module = sim.provider_sim(provider)
    lifecycles = [module.lifecycle(rng, int(time.time())) for _ in range(PAYMENTS)]
    deliveries = [sim.Delivery((event,)) for events in lifecycles for event in events
                  for _ in range(3)]
    rng.shuffle(deliveries)
    expected = await expected_finals(settings, provider, lifecycles)

    app = create_app(settings, KafkaPublisher(settings.kafka), registry=CollectorRegistry())
    async with running_worker(settings, redis_client), serving(app) as (url, _server):
        summary = await sim.send(f"{url}/webhooks/{provider}", provider,
                                 settings.endpoints[provider], deliveries, sim.Summary(),
                                 concurrency=32)
        assert summary.accepted == len(deliveries)
        total = sum(len(events) for events in lifecycles)
        events = await read_topic(settings, settings.topics.events, expect=total, timeout=120,
                                  settle=3)
        transitions = await read_topic(settings, settings.topics.transitions, timeout=30,
                                       expect=sum(s.version for s in expected.values()), settle=3)
        states = await read_topic(settings, settings.topics.state, timeout=10)

    event_ids = [orjson.loads(r.value)["event_id"] for r in events]
    assert len(event_ids) == len(set(event_ids)) == total  # each canonical event exactly once

    versions: dict[str, list[int]] = defaultdict(list)
    for record in sorted(transitions, key=lambda r: (r.partition, r.offset)):
        value = orjson.loads(record.value)
        versions[value["payment_id"]].append(value["version"])
    for payment_id, seen in versions.items():
        assert seen == list(range(1, len(seen) + 1)), payment_id  # gapless, no pair twice

    finals = latest_by_key(states)
    # parked captures (authorization delivered later) are released in order, so every payment
    # whose lifecycle is complete ends where in-order delivery ends
    assert set(finals) == set(expected)
    for payment_id, snap in expected.items():
        assert finals[payment_id]["state"] == snap.state, payment_id
        assert finals[payment_id]["version"] == snap.version, payment_id
        assert finals[payment_id]["totals"] == snap.totals.as_dict(), payment_id
