"""The pure parts of replay: offset and time ranges, filters, header rewriting, rate limiting."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiokafka.partitioner import DefaultPartitioner

from consumers.ranges import PartitionRange, RangeError, RangeRequest, offset_range, time_range
from consumers.ratelimit import TokenBucket
from consumers.replay import (
    SKIP_APPLY_STAGE,
    SKIP_FOREIGN_SOURCE,
    partition_for_key,
    replay_headers,
    skip_reason,
)
from consumers.selection import TICK_TYPE, Filters, describe, parse_ids
from payhooks.config import TopicSettings
from schemas import wire
from tests.integration.operator_support import envelope


def test_an_inclusive_to_offset_ends_one_after_it() -> None:
    assert offset_range(0, 0, 100, 10, 20) == PartitionRange(0, 10, 21)


def test_an_offset_range_is_clamped_to_what_the_partition_holds() -> None:
    assert offset_range(1, 50, 80, 10, 200) == PartitionRange(1, 50, 80)


def test_an_offset_range_past_the_end_is_empty() -> None:
    assert offset_range(2, 0, 5, 9, None).size == 0


def test_a_time_range_without_records_after_its_start_is_empty() -> None:
    assert time_range(0, 42, None) == PartitionRange(0, 42, 42)


def test_a_time_range_reads_from_the_first_record_at_its_start_to_the_end() -> None:
    assert time_range(0, 42, 7) == PartitionRange(0, 7, 42)


def test_the_time_window_includes_its_start_and_excludes_its_end() -> None:
    start, end = datetime(2026, 11, 24, 9, tzinfo=UTC), datetime(2026, 11, 24, 10, tzinfo=UTC)
    request = RangeRequest("raw", from_time=start, to_time=end)
    ms = int(start.timestamp() * 1000)
    assert request.in_window(ms)
    assert not request.in_window(ms - 1)
    assert request.in_window(ms + 3_599_999)
    assert not request.in_window(ms + 3_600_000)


@pytest.mark.parametrize("kwargs", [
    {"from_offset": 5, "to_offset": 4},
    {"to_offset": 4},
    {"from_offset": 1, "from_time": datetime(2026, 1, 1, tzinfo=UTC)},
    {"from_time": datetime(2026, 1, 2, tzinfo=UTC), "to_time": datetime(2026, 1, 1, tzinfo=UTC)},
])
def test_contradictory_bounds_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(RangeError):
        RangeRequest("raw", **kwargs)  # type: ignore[arg-type]


def test_a_raw_record_is_described_by_key_provider_header_and_event_type() -> None:
    env = envelope("adyen", "PSP1", "evt_1", "AUTHORISATION")
    d = describe(env.partition_key.encode(), env.to_json(), ((wire.HEADER_PROVIDER, b"adyen"),))
    assert (d.payment_id, d.provider, d.event_type, d.event_id) == (
        "adyen:PSP1", "adyen", "AUTHORISATION", "evt_1")


def test_bytes_that_are_not_an_envelope_have_no_type_but_keep_key_and_provider() -> None:
    d = describe(b"stripe:pi_1", b"\xff not json", ())
    assert (d.payment_id, d.provider, d.event_type) == ("stripe:pi_1", "stripe", None)
    assert not Filters(event_type="x").matches(0, 0, d)
    assert Filters(payment="stripe:pi_1", provider="stripe").matches(0, 0, d)


def test_a_tick_has_the_tick_type() -> None:
    d = describe(b"stripe:pi_1", b'{"schema":"payhooks.tick.v1","payment_id":"stripe:pi_1"}', ())
    assert d.event_type == TICK_TYPE


def test_dead_letter_filters_match_stage_error_class_and_message_text() -> None:
    headers = ((wire.HEADER_DLQ_STAGE, b"normalize"),
               (wire.HEADER_DLQ_ERROR_CLASS, b"NormalizeError"),
               (wire.HEADER_DLQ_ERROR_MESSAGE, b"amount is not an integer"))
    d = describe(b"stripe:pi_1", b"{}", headers)
    assert Filters(stage="normalize", reason="NormalizeError").matches(0, 0, d)
    assert Filters(reason="NOT AN INTEGER").matches(0, 0, d)
    assert not Filters(stage="decode").matches(0, 0, d)
    assert not Filters(reason="currency").matches(0, 0, d)


def test_ids_select_exactly_their_coordinates() -> None:
    chosen = Filters(coordinates=parse_ids(["0:12", "2:7"]))
    d = describe(b"k", b"{}", ())
    assert chosen.matches(0, 12, d)
    assert chosen.matches(2, 7, d)
    assert not chosen.matches(0, 7, d)


def test_a_malformed_id_is_refused_with_the_expected_shape() -> None:
    with pytest.raises(ValueError, match="PARTITION:OFFSET"):
        parse_ids(["12"])


def test_replay_headers_drop_dead_letter_headers_and_old_tags_and_add_ours() -> None:
    headers = ((wire.HEADER_DELIVERY_ID, b"d1"), (wire.HEADER_REPLAY, b"old"),
               *((name, b"x") for name in sorted(wire.DLQ_HEADERS)))
    assert replay_headers(headers, "a" * 32) == (
        (wire.HEADER_DELIVERY_ID, b"d1"), (wire.HEADER_REPLAY, b"a" * 32))


def test_dead_letters_of_the_apply_stage_and_of_other_sources_are_skipped() -> None:
    topics = TopicSettings()

    def dead(stage: str, source: str) -> str | None:
        d = describe(b"k", b"{}", ((wire.HEADER_DLQ_STAGE, stage.encode()),
                                   (wire.HEADER_DLQ_SOURCE_TOPIC, source.encode())))
        return skip_reason(topics, topics.dlq, d)

    assert dead("normalize", topics.raw) is None
    assert dead("apply", topics.raw) == SKIP_APPLY_STAGE
    assert dead("decode", "elsewhere") == SKIP_FOREIGN_SOURCE
    assert skip_reason(topics, topics.raw, describe(b"k", b"{}", ())) is None


@pytest.mark.parametrize("key", ["stripe:pi_1", "adyen:PSP999", "x", "paypal:ÄÖ"])
def test_the_payment_partition_is_the_producers_partition(key: str) -> None:
    partitions = [0, 1, 2, 3, 4, 5]
    assert partition_for_key(key, partitions) == DefaultPartitioner()(
        key.encode(), partitions, partitions)


async def test_the_token_bucket_spaces_records_at_the_rate_after_its_burst() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(10, burst=2, clock=lambda: now[0], sleep=sleep)
    for _ in range(12):
        await bucket.take()
    assert len(slept) == 10
    assert sum(slept) == pytest.approx(1.0)
