"""Every provider's simulated lifecycles, signed by payhooks sim, through the receiver into Kafka.

PayPal signs with a self-made PKI here: the receiver trusts its root (``trust_store``) and reads
the certificate the simulator names from disk (``cert_files``), so nothing is fetched.
"""

from __future__ import annotations

import base64
import datetime as dt
import random
import time
from dataclasses import replace

import httpx
import jsonschema
import orjson
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from ingest.app import create_app
from ingest.publisher import KafkaPublisher
from ingest.schemes import paypal
from payhooks import sim
from payhooks.config import BasicAuth, EndpointSettings, Secret, Settings
from payhooks.sim.base import SimEvent
from schemas import registry as schema_registry
from schemas import wire
from tests.conftest import running_worker, serving
from tests.integration.test_effectively_once import expected_finals
from tests.support import read_topic
from tests.unit import paypal_pki

pytestmark = pytest.mark.integration

STANDARD_KEY = "whsec_" + base64.b64encode(b"standard-webhooks-test-key-32byt").decode()

ENDPOINTS: dict[str, EndpointSettings] = {
    "stripe": EndpointSettings("stripe", "stripe", (Secret("whsec_every_provider_k1"),)),
    "adyen": EndpointSettings(
        "adyen", "adyen",
        (Secret("44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"),),
        basic_auth=BasicAuth("adyen", Secret("basic-pass-1"))),
    "braintree": EndpointSettings("braintree", "braintree", (Secret("bt_private_key_1"),),
                                  options={"public_key": "bt_public_key_1"}),
    "checkout": EndpointSettings("checkout", "checkout", (Secret("cko_signing_key_1"),),
                                 options={"authorization": "cko-static-auth-1"}),
    "square": EndpointSettings("square", "square", (Secret("square_sig_key_1"),),
                               options={"notification_url": "https://hooks.example/square"}),
    "gocardless": EndpointSettings("gocardless", "gocardless", (Secret("gc_secret_1"),)),
    "razorpay": EndpointSettings("razorpay", "razorpay", (Secret("rzp_secret_1"),)),
    "mollie": EndpointSettings("mollie", "mollie", (Secret("mollie_secret_1"),)),
    "standard": EndpointSettings("standard", "standard", (Secret(STANDARD_KEY),),
                                 options={"payment_ref_field": "data.payment_id"}),
    "hmac": EndpointSettings("hmac", "hmac", (Secret("in_house_key_1"),),
                             options={"header": "x-signature", "event_id_field": "id",
                                      "event_type_field": "type",
                                      "payment_ref_field": "data.payment_id"}),
}


@pytest.fixture(scope="module")
def paypal_endpoint(tmp_path_factory: pytest.TempPathFactory) -> EndpointSettings:
    folder = tmp_path_factory.mktemp("paypal")
    now = dt.datetime.now(dt.UTC)
    root = paypal_pki.ca("payhooks test root", at=now)
    intermediate = paypal_pki.ca("payhooks test intermediate", issuer=root, at=now)
    leaf = paypal_pki.signing_cert(intermediate, at=now)
    (folder / "root.pem").write_bytes(root.pem)
    (folder / "chain.pem").write_bytes(leaf.pem + intermediate.pem)
    cert_url = "https://api.paypal.com/v1/notifications/certs/CERT-payhooks-test"
    return EndpointSettings("paypal", "paypal", (), options={
        "webhook_id": "1JE4291016473214C",
        "trust_store": str(folder / "root.pem"),
        "cert_files": {cert_url: str(folder / "chain.pem")},
        "sim_signing_key": leaf.key_pem.decode(),
        "sim_cert_url": cert_url,
    })


@pytest.fixture
def every_provider(settings: Settings, paypal_endpoint: EndpointSettings) -> Settings:
    return replace(settings, endpoints={**ENDPOINTS, "paypal": paypal_endpoint})


@pytest.mark.parametrize("provider", sim.PROVIDERS)
async def test_simulated_lifecycles_are_accepted_and_land_on_raw_under_payment_keys(
        every_provider: Settings, provider: str) -> None:
    settings = every_provider
    endpoint = settings.endpoints[provider]
    deliveries, summary = sim.plan(provider, 4, duplicates=0.2, reorder=0.3, seed=11)
    app = create_app(settings, KafkaPublisher(settings.kafka), registry=CollectorRegistry())
    async with serving(app) as (url, _server):
        summary = await sim.send(f"{url}/webhooks/{provider}", provider, endpoint, deliveries,
                                 summary)
    assert summary.errors == {}
    assert dict(summary.statuses) == {200: len(deliveries)}

    expected = [(e.event_id, _receiver_ref(provider, e)) for d in deliveries for e in d.events]
    records = await read_topic(settings, settings.topics.raw, expect=len(expected))
    envelopes = [orjson.loads(r.value) for r in records]
    schema = schema_registry.load(wire.SCHEMA_ENVELOPE_V1)
    for envelope in envelopes:
        jsonschema.validate(envelope, schema)
    assert sorted((e["event_id"], e["payment_ref"]) for e in envelopes) == sorted(expected)
    keys = {f"{provider}:{ref or event_id}".encode() for event_id, ref in expected}
    assert {r.key for r in records} == keys
    assert all(e["provider"] == provider and e["endpoint"] == provider for e in envelopes)


async def test_a_signature_from_another_endpoints_key_is_refused_for_every_provider(
        every_provider: Settings) -> None:
    settings = every_provider
    app = create_app(settings, KafkaPublisher(settings.kafka), registry=CollectorRegistry())
    rng = random.Random(5)
    async with serving(app) as (url, _server), httpx.AsyncClient() as client:
        for provider in sim.PROVIDERS:
            module = sim.provider_sim(provider)
            events = module.lifecycle(rng, int(time.time()))[:1]
            signed = module.sign(events, _foreign(settings.endpoints[provider]), int(time.time()))
            answer = await client.post(f"{url}/webhooks/{provider}", content=signed.body,
                                       headers=signed.headers)
            assert answer.status_code == 401, (provider, answer.text)
    assert await read_topic(settings, settings.topics.raw, timeout=2) == []


def _receiver_ref(provider: str, event: SimEvent) -> str | None:
    """The payment reference the receiver can see in the event itself.

    PayPal refunds and disputes name no order (only a capture), so the receiver cannot key them by
    the order; the workers map capture to order (a known gap, see docs/providers.md).
    """
    if provider == "paypal":
        return paypal.payment_ref(event.event)
    return event.payment_ref


def _foreign(endpoint: EndpointSettings) -> EndpointSettings:
    """The same endpoint with a key of the right shape that is not the endpoint's."""
    if endpoint.provider == "paypal":  # signed for another webhook id
        return replace(endpoint, options={**endpoint.options, "webhook_id": "9XX99999XX999999X"})
    return replace(endpoint, secrets=(Secret(_foreign_key(endpoint.provider)),))


def _foreign_key(provider: str) -> str:
    if provider == "adyen":
        return "00" * 32
    if provider == "standard":
        return "whsec_" + base64.b64encode(b"another-key-entirely-32-bytes!!!").decode()
    return f"not_the_{provider}_key"


@pytest.mark.parametrize("provider", sim.PROVIDERS)
async def test_lifecycles_end_in_the_states_in_order_delivery_gives(
        every_provider: Settings, redis_client: Redis, provider: str) -> None:
    """Posted through the receiver (signed by the simulator), processed by a real worker: the
    final payments.state and the gapless transitions match the pure state machine applied to
    the same events in provider order."""
    settings = every_provider
    endpoint = settings.endpoints[provider]
    rng = random.Random(31)
    module = sim.provider_sim(provider)
    lifecycles = [module.lifecycle(rng, int(time.time())) for _ in range(12)]
    deliveries = [sim.Delivery((event,)) for events in lifecycles for event in events]
    expected = await expected_finals(settings, provider, lifecycles)
    app = create_app(settings, KafkaPublisher(settings.kafka), registry=CollectorRegistry())
    async with running_worker(settings, redis_client), serving(app) as (url, _server):
        summary = await sim.send(f"{url}/webhooks/{provider}", provider, endpoint, deliveries,
                                 sim.Summary(), concurrency=4)
        assert summary.accepted == len(deliveries)
        applied = {k: v for k, v in expected.items() if v.version}
        transitions = await read_topic(settings, settings.topics.transitions, timeout=40,
                                       expect=sum(s.version for s in applied.values()), settle=2)
        states = await read_topic(settings, settings.topics.state, timeout=5)
    versions: dict[str, list[int]] = {}
    for record in sorted(transitions, key=lambda r: (r.partition, r.offset)):
        value = orjson.loads(record.value)
        jsonschema.validate(value, schema_registry.load(wire.SCHEMA_TRANSITION_V1))
        versions.setdefault(value["payment_id"], []).append(value["version"])
    finals = {r.key.decode(): orjson.loads(r.value)
              for r in sorted(states, key=lambda r: (r.partition, r.offset))}
    for payment_id, snap in applied.items():
        assert versions[payment_id] == list(range(1, snap.version + 1)), payment_id
        assert finals[payment_id]["state"] == snap.state, payment_id
        assert finals[payment_id]["totals"] == snap.totals.as_dict(), payment_id
        jsonschema.validate(finals[payment_id], schema_registry.load(wire.SCHEMA_STATE_V1))
