"""The simulator retries like a PSP: connection errors and 429/5xx answers are sent again
(re-signed), up to the attempts asked for, and only the final answer counts."""

from __future__ import annotations

from collections import Counter

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from payhooks import sim
from payhooks.config import EndpointSettings, Secret
from tests.conftest import free_port, serving

ENDPOINT = EndpointSettings(name="stripe", provider="stripe",
                            secrets=(Secret("whsec_sim_retries_test_key_0123456789"),))


def flaky(answers: list[int]) -> tuple[Starlette, list[str]]:
    """An app answering ``answers`` in turn (then 200), recording each request's signature."""
    seen: list[str] = []

    async def hook(request: Request) -> Response:
        seen.append(request.headers.get("stripe-signature", ""))
        await request.body()
        return Response(status_code=answers.pop(0) if answers else 200)

    return Starlette(routes=[Route("/hook", hook, methods=["POST"])]), seen


def one_delivery() -> tuple[list[sim.Delivery], sim.Summary]:
    deliveries, summary = sim.plan("stripe", 1, seed=7)
    return deliveries[:1], summary


async def test_a_503_is_retried_and_the_final_200_counts() -> None:
    app, seen = flaky([503, 429])
    deliveries, summary = one_delivery()
    async with serving(app) as (url, _):
        summary = await sim.send(f"{url}/hook", "stripe", ENDPOINT, deliveries, summary)
    assert (summary.sent, summary.retries, summary.statuses) == (1, 2, Counter({200: 1}))
    assert len(seen) == 3


async def test_answers_still_failing_after_the_last_attempt_are_counted_as_such() -> None:
    app, seen = flaky([503, 503, 503])
    deliveries, summary = one_delivery()
    async with serving(app) as (url, _):
        summary = await sim.send(f"{url}/hook", "stripe", ENDPOINT, deliveries, summary,
                                 attempts=2)
    assert (summary.retries, summary.statuses, summary.accepted) == (1, Counter({503: 1}), 0)
    assert len(seen) == 2


async def test_a_refused_connection_is_retried_then_counted_as_an_error() -> None:
    deliveries, summary = one_delivery()
    url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    summary = await sim.send(url, "stripe", ENDPOINT, deliveries, summary, attempts=2)
    assert (summary.retries, summary.accepted) == (1, 0)
    assert summary.errors == Counter({"ConnectError": 1})


async def test_a_client_error_is_not_retried() -> None:
    app, seen = flaky([400])
    deliveries, summary = one_delivery()
    async with serving(app) as (url, _):
        summary = await sim.send(f"{url}/hook", "stripe", ENDPOINT, deliveries, summary)
    assert (summary.retries, summary.statuses) == (0, Counter({400: 1}))
    assert len(seen) == 1
