"""No secret, signature, Authorization value or Luhn-valid card number reaches the logs.

The session's logs are rendered by the production processor chain into SESSION_LOGS (see
tests/conftest.py); this module adds hostile traffic and scans everything logged so far. The
session fixture scans again at the very end, covering the tests that run after this one.
"""

from __future__ import annotations

import httpx
import orjson
import pytest
import structlog
from prometheus_client import CollectorRegistry

from ingest.app import create_app
from ingest.errors import PublishTimeout
from tests.conftest import SESSION_LOGS, STRIPE_SECRET, leaks, make_settings
from tests.http.test_receiver_http import RecordingPublisher
from tests.support import stripe_event, stripe_headers

CARD = "4111 1111 1111 1111"


def test_the_scanner_finds_what_it_looks_for() -> None:
    assert leaks(f"card {CARD}")
    assert leaks("pan=4000056655665556")
    assert leaks(f"key {STRIPE_SECRET}")
    assert leaks("v1=" + "ab" * 32)
    assert leaks("Authorization: Basic YWR5ZW46c2VjcmV0")
    assert not leaks("order 1234567890123 at 2026-11-24T00:22:38.525611Z, trace 0af7651916cd43dd")


async def test_hostile_and_card_bearing_traffic_leaves_no_trace_in_logs() -> None:
    settings = make_settings("unused:9092", "redis://unused")
    publisher = RecordingPublisher()
    app = create_app(settings, publisher, registry=CollectorRegistry())
    event = stripe_event("evt_pan", pi="pi_pan")
    event["data"]["object"]["metadata"] = {"note": f"card {CARD} cvv 123"}
    body = orjson.dumps(event)
    good = stripe_headers(body)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as client:
        url = "/webhooks/stripe"
        await client.post(url, content=body, headers=good)
        await client.post(url, content=body, headers=stripe_headers(body, secret="whsec_wrong1"))
        await client.post(url, content=body, headers={**good, "authorization": "Basic c2VjcmV0"})
        await client.post(url, content=b'{"id": "4111111111111111"}', headers=good)
        await client.post("/webhooks/" + CARD.replace(" ", ""), content=body, headers=good)
        publisher.fail_with = PublishTimeout("Kafka did not acknowledge 1 record(s) within 5 s")
        await client.post(url, content=body, headers=good)
        structlog.get_logger("test").warning("planted", body=body.decode(), card=CARD,
                                             signature=good["stripe-signature"])
    logged = SESSION_LOGS.getvalue()
    assert "webhook_accepted" in logged  # the traffic was logged at all
    assert "planted" in logged
    assert leaks(logged) == []


@pytest.mark.parametrize("value", [CARD, STRIPE_SECRET, "Basic YWR5ZW46c2VjcmV0"])
def test_values_logged_under_innocent_keys_are_still_masked(value: str) -> None:
    structlog.get_logger("test").info("innocent", note=f"x {value} y")
    last = SESSION_LOGS.getvalue().strip().splitlines()[-1]
    assert '"innocent"' in last
    assert value not in last
