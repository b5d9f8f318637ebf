"""The pure part of ``payhooks trace``: rows from records and a snapshot, ordered, with outcomes.

The records are made by the pipeline's own pure code (envelopes, the Stripe normaliser, the state
machine and ``consumers.outputs``), so their values and headers are the ones the workers write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from consumers import outputs
from consumers import state as sm
from consumers import timeline as timelines
from consumers.dlq import SourceRecord, dead_letter
from consumers.normalize import normalize
from payhooks.config import PROVIDERS, TopicSettings
from payhooks.kafka import Record
from schemas import timefmt, wire
from schemas.envelope import Envelope

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)
PAYMENT = "stripe:pi_trace_1"
TOPICS = TopicSettings()
_ROLE = {name: role for role, name in TOPICS.by_role().items()}


def stripe_payload(event_id: str, kind: str, amount: int, **extra: object) -> bytes:
    obj: dict[str, object] = {"id": "pi_trace_1", "object": "payment_intent", "amount": amount,
                              "amount_capturable": amount, "amount_received": amount,
                              "currency": "eur"}
    if kind == "charge.refunded":
        obj = {"id": "ch_1", "object": "charge", "payment_intent": "pi_trace_1",
               "amount_refunded": amount, "currency": "eur"}
    obj.update(extra)
    return orjson.dumps({"id": event_id, "object": "event", "type": kind,
                         "created": int(NOW.timestamp()), "data": {"object": obj}})


def raw(event_id: str, kind: str, amount: int = 2500, delivery: str = "d", **extra: object
        ) -> Record:
    envelope = Envelope(delivery_id=delivery, endpoint="stripe", provider="stripe",
                        event_id=event_id, event_type=kind, payment_ref="pi_trace_1",
                        received_at=timefmt.to_wire(NOW), key_index=0,
                        payload=stripe_payload(event_id, kind, amount, **extra))
    return Record(TOPICS.raw, PAYMENT.encode(), envelope.to_json(), (
        (wire.HEADER_DELIVERY_ID, delivery.encode()), (wire.HEADER_PROVIDER, b"stripe"),
        (wire.HEADER_EVENT_ID, event_id.encode())))


@dataclass
class Pipeline:
    """The workers' pure steps over raw records, stamping each record written with a time."""

    snapshot: sm.Snapshot = field(default_factory=lambda: sm.Snapshot(PAYMENT))
    records: list[timelines.TracedRecord] = field(default_factory=list)
    offsets: dict[str, int] = field(default_factory=dict)
    clock_ms: int = int(NOW.timestamp() * 1000)

    def write(self, record: Record) -> timelines.TracedRecord:
        offset = self.offsets.get(record.topic, 0)
        self.offsets[record.topic] = offset + 1
        self.clock_ms += 5
        written = timelines.TracedRecord(_ROLE[record.topic], record.topic, 0, offset,
                                     self.clock_ms, record.value, record.headers)
        if record.topic in (TOPICS.raw, TOPICS.events, TOPICS.transitions, TOPICS.state,
                            TOPICS.dlq):
            self.records.append(written)
        return written

    def deliver(self, record: Record) -> None:
        written = self.write(record)
        source = SourceRecord(written.topic, 0, written.offset, record.key, record.value,
                              record.headers)
        try:
            event = normalize(Envelope.from_json(record.value))
        except Exception as exc:  # noqa: BLE001  (the handler dead-letters any poison)
            self.write(dead_letter(source, "decode", type(exc).__name__, str(exc), TOPICS.dlq))
            return
        assert event is not None
        now = datetime.fromtimestamp(self.clock_ms / 1000, UTC)
        decision = sm.apply(self.snapshot, event, now, source.to_json())
        for out in outputs.for_decision(decision, self.snapshot, 1, source, TOPICS, event):
            self.write(out)
        self.snapshot = decision.snapshot


def build(pipeline: Pipeline, live: timelines.Live | None = None, **options: object
          ) -> timelines.Timeline:
    live = live or timelines.Live("ok", pipeline.snapshot)
    return timelines.build(PAYMENT, reversed(pipeline.records), live, now=NOW,
                       parking_window=WINDOW, **options)  # type: ignore[arg-type]


def lifecycle() -> Pipeline:
    """Authorised, delivered twice, a refund before its capture (parked), and a broken record."""
    pipeline = Pipeline()
    pipeline.deliver(raw("evt_auth", "payment_intent.amount_capturable_updated", delivery="d1"))
    pipeline.deliver(raw("evt_auth", "payment_intent.amount_capturable_updated", delivery="d2"))
    pipeline.deliver(raw("evt_refund", "charge.refunded", 1000, delivery="d3"))
    pipeline.deliver(Record(TOPICS.raw, PAYMENT.encode(), b"{not json",
                            ((wire.HEADER_DELIVERY_ID, b"d4"),)))
    return pipeline


def test_rows_follow_the_time_payhooks_wrote_them_whatever_order_they_came_in() -> None:
    timeline = build(lifecycle())
    kafka_rows = [r for r in timeline.rows if r.role != "redis"]
    assert [r.at_ms for r in kafka_rows] == sorted(r.at_ms for r in kafka_rows)
    assert [(r.role, r.outcome) for r in kafka_rows] == [
        ("raw", "delivered"),
        ("events", "applied: v1"),
        ("transitions", "(new) -> authorized"),
        ("state", "state authorized"),
        ("raw", "duplicate delivery"),
        ("raw", "delivered"),
        ("events", "parked (waiting in Redis)"),
        ("raw", "dead-lettered (decode)"),
        ("dlq", "dead letter (decode)"),
    ]


def test_a_second_delivery_of_an_event_is_marked_duplicate_and_counted_in_a_note() -> None:
    timeline = build(lifecycle())
    deliveries = [(r.delivery_id, r.event_id, r.outcome) for r in timeline.rows
                  if r.kind == "delivery" and r.event_id == "stripe:evt_auth"]
    assert deliveries == [("d1", "stripe:evt_auth", "delivered"),
                          ("d2", "stripe:evt_auth", "duplicate delivery")]
    assert any("1 duplicate delivery" in n for n in timeline.notes)


def test_a_parked_event_shows_in_redis_with_the_time_it_is_due() -> None:
    timeline = build(lifecycle())
    [parked] = [r for r in timeline.rows if r.role == "redis"]
    assert (parked.kind, parked.event_id, parked.type) == ("parked", "stripe:evt_refund",
                                                           "payment.refunded")
    assert parked.delivery_id == "d3"
    [held] = timeline.live.snapshot.parked if timeline.live.snapshot else ()
    due = timefmt.to_wire(timefmt.parse(held.parked_at) + WINDOW)
    assert parked.detail == f"1000 EUR, due {due}"
    assert timeline.as_dict()["live"]["parked"][0]["due_at"] == due


def test_a_dead_letter_names_its_stage_error_and_source_record() -> None:
    timeline = build(lifecycle())
    [dead] = [r for r in timeline.rows if r.role == "dlq"]
    assert dead.delivery_id == "d4"
    assert dead.detail.startswith("DecodeError: ") or dead.detail.startswith("EnvelopeError: ")
    assert dead.detail.endswith(f"from {TOPICS.raw}[0]@3")


def test_an_event_released_by_a_later_delivery_is_shown_parked_then_released() -> None:
    pipeline = lifecycle()
    pipeline.deliver(raw("evt_capture", "payment_intent.succeeded", delivery="d5"))
    timeline = build(pipeline)
    events = {r.event_id: r.outcome for r in timeline.rows if r.role == "events"}
    assert events["stripe:evt_refund"] == "parked, then released: v3"
    assert events["stripe:evt_capture"] == "applied: v2"
    assert [r.version for r in timeline.rows if r.role == "transitions"] == [1, 2, 3]
    assert not [r for r in timeline.rows if r.role == "redis"]


def test_an_unreachable_redis_leaves_the_kafka_timeline_and_says_so() -> None:
    pipeline = lifecycle()
    timeline = build(pipeline, timelines.Live("unreachable", message="redis://x: ConnectionError"))
    assert timeline.found
    assert len(timeline.rows) == len(pipeline.records)
    assert any(n.startswith("Redis was unreachable (redis://x") for n in timeline.notes)
    assert timeline.as_dict()["live"]["status"] == "unreachable"


def test_a_redis_snapshot_behind_payments_state_is_noted() -> None:
    pipeline = lifecycle()
    timeline = build(pipeline, timelines.Live("ok", sm.Snapshot(PAYMENT, "authorized", version=7)))
    assert "Redis holds version 7, payments.state shows version 1" in timeline.notes


def test_no_record_and_no_snapshot_is_not_found() -> None:
    timeline = timelines.build(PAYMENT, [], timelines.Live("absent"), now=NOW)
    assert not timeline.found
    assert timeline.as_dict()["found"] is False


def test_payloads_are_hidden_unless_asked_and_then_redacted() -> None:
    pipeline = Pipeline()
    pipeline.deliver(raw("evt_auth", "payment_intent.amount_capturable_updated",
                         card_number="4242424242424242", note="card 4000 0566 5566 5556",
                         client_secret="whsec_abcdefabcdef"))
    hidden = build(pipeline)
    assert all(r.payload is None for r in hidden.rows)
    assert "payload" not in orjson.dumps(hidden.as_dict()).decode()
    shown = build(pipeline, payload=True)
    [row] = [r for r in shown.rows if r.role == "raw"]
    obj = row.payload["data"]["object"]
    assert obj["card_number"] == "[redacted]"
    assert obj["note"] == "card [pan ...5556]"
    assert obj["client_secret"] == "[secret]"
    assert obj["amount"] == 2500


def test_json_form_has_every_row_with_its_coordinates() -> None:
    timeline = build(lifecycle())
    doc = orjson.loads(orjson.dumps(timeline.as_dict()))
    assert len(doc["rows"]) == len(timeline.rows)
    first = doc["rows"][0]
    assert (first["topic"], first["partition"], first["offset"]) == (TOPICS.raw, 0, 0)
    assert first["at"] == timeline.rows[0].at
    assert doc["generated_at"] == "2026-11-24T12:00:00.000Z"


@pytest.mark.parametrize(("text", "expected"), [
    ("90s", NOW - timedelta(seconds=90)),
    ("15m", NOW - timedelta(minutes=15)),
    ("2h", NOW - timedelta(hours=2)),
    ("1.5d", NOW - timedelta(hours=36)),
    ("1w", NOW - timedelta(days=7)),
    ("2026-11-23T10:00:00Z", datetime(2026, 11, 23, 10, tzinfo=UTC)),
    ("2026-11-23T11:00:00+01:00", datetime(2026, 11, 23, 10, tzinfo=UTC)),
    ("2026-11-23T10:00", datetime(2026, 11, 23, 10, tzinfo=UTC)),
    ("2026-11-23", datetime(2026, 11, 23, tzinfo=UTC)),
])
def test_times_are_iso_or_durations_back_from_now(text: str, expected: datetime) -> None:
    assert timelines.parse_when(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "2h ago", "-5m", "", "2026-13-01"])
def test_other_times_are_refused_with_the_forms_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="neither an ISO time"):
        timelines.parse_when(text, NOW)


@pytest.mark.parametrize(("payment_id", "problem"), [
    ("stripe:pi_1", None),
    ("adyen:8835511210681328", None),
    ("pi_1", "not a payment id"),
    ("stripe:", "not a payment id"),
    ("strype:pi_1", "unknown provider 'strype'"),
])
def test_payment_ids_must_be_provider_colon_reference(payment_id: str, problem: str | None
                                                      ) -> None:
    found = timelines.check_payment_id(payment_id, PROVIDERS)
    assert found is None if problem is None else problem in (found or "")


def test_partition_is_murmur2_of_the_key_over_the_sorted_partitions() -> None:
    key = PAYMENT.encode()
    chosen = {timelines.partition_for(key, list(range(n))) for n in range(1, 13)}
    assert chosen <= set(range(12))
    assert timelines.partition_for(key, [2, 0, 1]) == timelines.partition_for(key, [0, 1, 2])
    # Kafka's Java client: murmur2(b"21") & 0x7fffffff == 0x7fffffff & -973932308
    assert timelines.partition_for(b"21", list(range(1000))) == (-973932308 & 0x7FFFFFFF) % 1000
