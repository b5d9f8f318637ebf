"""Builds ``webhooks.dlq`` records: the failed record unchanged plus where and why it failed."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord

from payhooks.kafka import Record
from schemas import wire

_MAX_MESSAGE = 500


def dead_letter(record: ConsumerRecord, stage: str, error: Exception, topic: str) -> Record:
    headers = tuple((k, v) for k, v in (record.headers or ()))
    message = str(error)[:_MAX_MESSAGE]  # our own error texts: they never quote body bytes
    return Record(
        topic=topic,
        key=record.key or b"",
        value=record.value or b"",
        headers=(
            *headers,
            (wire.HEADER_DLQ_SOURCE_TOPIC, record.topic.encode()),
            (wire.HEADER_DLQ_SOURCE_PARTITION, str(record.partition).encode()),
            (wire.HEADER_DLQ_SOURCE_OFFSET, str(record.offset).encode()),
            (wire.HEADER_DLQ_STAGE, stage.encode()),
            (wire.HEADER_DLQ_ERROR_CLASS, type(error).__name__.encode()),
            (wire.HEADER_DLQ_ERROR_MESSAGE, message.encode()),
        ),
    )
