"""The downstream records' trace context: the input's is replaced by the produce span's, only."""

from __future__ import annotations

from consumers.outputs import with_traceparent
from payhooks.kafka import Record
from schemas import wire

INPUT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
PRODUCE = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"
EARLIER = "00-4bf92f3577b34da6a3ce929d0e0e4736-53995c3f42cd8ad8-01"


def record(topic: str, *headers: tuple[str, bytes]) -> Record:
    return Record(topic, b"stripe:pi_1", b"{}", headers)


def test_headers_carried_from_the_input_take_the_produce_span_context() -> None:
    event = record("payments.events", (wire.HEADER_DELIVERY_ID, b"d-1"),
                   (wire.HEADER_TRACEPARENT, INPUT.encode()), (wire.HEADER_EVENT_ID, b"e-1"))
    [out] = with_traceparent([event], INPUT, PRODUCE)
    assert out.headers == ((wire.HEADER_DELIVERY_ID, b"d-1"),
                           (wire.HEADER_TRACEPARENT, PRODUCE.encode()),
                           (wire.HEADER_EVENT_ID, b"e-1"))
    assert (out.topic, out.key, out.value) == (event.topic, event.key, event.value)


def test_an_earlier_events_context_and_records_without_one_are_left_alone() -> None:
    dead_letter = record("webhooks.dlq", (wire.HEADER_TRACEPARENT, EARLIER.encode()))
    snapshot = record("payhooks.snapshots", (wire.HEADER_SCHEMA, b"payhooks.snapshot.v1"))
    assert with_traceparent([dead_letter, snapshot], INPUT, PRODUCE) == [dead_letter, snapshot]


def test_an_input_without_trace_context_changes_nothing() -> None:
    tick_output = record("payments.events", (wire.HEADER_EVENT_ID, b"e-1"))
    assert with_traceparent([tick_output], None, PRODUCE) == [tick_output]
