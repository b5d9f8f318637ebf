"""`payhooks dlq list | show | redrive` against real Kafka, Redis and a real worker: fixed poison
is applied once, a second redrive changes nothing, shown payloads are redacted."""

from __future__ import annotations

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from consumers import handler
from consumers.errors import NormalizeError
from consumers.normalize import normalize
from payhooks.clikit import EXIT_USAGE
from payhooks.config import Settings
from schemas import wire
from schemas.envelope import Envelope
from schemas.event import PaymentEvent
from tests.conftest import running_receiver, running_worker
from tests.integration.operator_support import (
    audit_records,
    authorized,
    end_offsets,
    group_offsets,
    header_of,
    invoke,
    json_of,
)
from tests.support import eventually, post_stripe, read_topic

pytestmark = [pytest.mark.integration]

POISON = "evt_poison"
CARD = "4242 4242 4242 4242"


@pytest.fixture
def broken_normaliser(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A normaliser bug that dead-letters one event until the fix is "deployed" (undo)."""

    def buggy(envelope: Envelope) -> PaymentEvent | None:
        if envelope.event_id == POISON:
            raise NormalizeError("amount_received is not an integer")
        return normalize(envelope)

    monkeypatch.setattr(handler, "normalize", buggy)
    return monkeypatch


async def caught_up(settings: Settings) -> None:
    ends = {p: e for p, e in (await end_offsets(settings, settings.topics.raw)).items() if e}

    async def done() -> bool:
        return await group_offsets(settings) == ends

    await eventually(done)


def transitions_of(records: list[object], payment_id: str) -> list[int]:
    return sorted(orjson.loads(r.value)["version"] for r in records  # type: ignore[attr-defined]
                  if r.key == payment_id.encode())  # type: ignore[attr-defined]


async def test_fixed_poison_is_redriven_and_applied_once(
        settings: Settings, redis_client: Redis, broken_normaliser: pytest.MonkeyPatch) -> None:
    poisoned = authorized(POISON, "pi_poison")
    poisoned["data"]["object"]["description"] = f"card {CARD}"
    async with running_receiver(settings) as url, running_worker(settings, redis_client):
        async with httpx.AsyncClient() as client:
            for event in (authorized("evt_fine", "pi_fine"), poisoned):
                answer = await post_stripe(client, f"{url}/webhooks/stripe", event)
                assert answer.status_code == 200
        await caught_up(settings)
    broken_normaliser.undo()  # the fix is deployed

    listed = json_of(await invoke(settings, "dlq", "list", "--json"))
    [row] = listed["dead_letters"]
    assert (row["stage"], row["error_class"], row["payment_id"], row["event_id"]) == (
        "normalize", "NormalizeError", "stripe:pi_poison", POISON)
    assert row["source"].startswith(f"{settings.topics.raw}:")
    assert json_of(await invoke(settings, "dlq", "list", "--stage", "decode", "--json")
                   )["count"] == 0

    shown = await invoke(settings, "dlq", "show", row["id"], "--json")
    assert shown.exit_code == 0, shown.output
    detail = json_of(shown)
    assert detail["headers"][wire.HEADER_DLQ_STAGE] == "normalize"
    assert detail["value"]["payload"]["data"]["object"]["description"] == "card [pan ...4242]"
    assert CARD not in shown.output

    raw_before = await end_offsets(settings, settings.topics.raw)
    dry = await invoke(settings, "dlq", "redrive", "--id", row["id"], "--reason", "INC-9",
                       "--json")
    assert dry.exit_code == 0, dry.output
    assert json_of(dry)["matched"] == 1
    assert await end_offsets(settings, settings.topics.raw) == raw_before
    assert await audit_records(settings, expect=0) == []

    versions = []
    for attempt in (1, 2):  # the second redrive of the same dead letter must change nothing
        result = await invoke(settings, "dlq", "redrive", "--id", row["id"], "--execute",
                              "--reason", f"INC-9 attempt {attempt}", "--json")
        assert result.exit_code == 0, result.output
        assert json_of(result)["written"] == 1
        async with running_worker(settings, redis_client):
            await caught_up(settings)
        transitions = await read_topic(settings, settings.topics.transitions, expect=2, settle=2)
        versions.append(transitions_of(transitions, "stripe:pi_poison"))
    assert versions[0] == list(range(1, len(versions[0]) + 1))
    assert versions[0]  # applied by the first redrive
    assert versions[1] == versions[0]  # and by nothing since

    redriven = [r for r in await read_topic(settings, settings.topics.raw, expect=4)
                if header_of(r, wire.HEADER_REPLAY)]
    assert len(redriven) == 2
    assert all(header_of(r, wire.HEADER_DLQ_STAGE) is None for r in redriven)
    audits = await audit_records(settings, expect=2)
    assert [(a["action"], a["outcome"], a["counts"]["written"]) for a in audits] == [
        ("dlq.redrive", "done", 1)] * 2
    assert {header_of(r, wire.HEADER_REPLAY) for r in redriven} == {a["id"] for a in audits}


async def test_a_redrive_needs_ids_or_all(settings: Settings) -> None:
    result = await invoke(settings, "dlq", "redrive", "--reason", "INC-9")
    assert result.exit_code == EXIT_USAGE
    assert "--id" in result.stderr


async def test_showing_an_unknown_dead_letter_says_where_to_look(settings: Settings) -> None:
    result = await invoke(settings, "dlq", "show", "0:5")
    assert result.exit_code == EXIT_USAGE
    assert "dlq list" in result.stderr
