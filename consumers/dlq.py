"""Builds ``webhooks.dlq`` records: the failed record unchanged plus where and why it failed."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import orjson
from aiokafka.structs import ConsumerRecord

from payhooks.kafka import Headers, Record
from schemas import wire

_MAX_MESSAGE = 500


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """An input record as read, kept so that a later failure can dead-letter it unchanged."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: Headers

    @classmethod
    def of(cls, record: ConsumerRecord) -> SourceRecord:
        return cls(record.topic, record.partition, record.offset, record.key or b"",
                   record.value or b"", tuple((k, v) for k, v in (record.headers or ())))

    def to_json(self) -> str:
        return orjson.dumps({
            "topic": self.topic, "partition": self.partition, "offset": self.offset,
            "key": base64.b64encode(self.key).decode(),
            "value": base64.b64encode(self.value).decode(),
            "headers": [[k, base64.b64encode(v).decode()] for k, v in self.headers],
        }).decode()

    @classmethod
    def from_json(cls, text: str) -> SourceRecord:
        doc = orjson.loads(text)
        return cls(doc["topic"], doc["partition"], doc["offset"], base64.b64decode(doc["key"]),
                   base64.b64decode(doc["value"]),
                   tuple((k, base64.b64decode(v)) for k, v in doc["headers"]))

    def header(self, name: str) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)


def dead_letter(source: SourceRecord, stage: str, error_class: str, message: str, topic: str
                ) -> Record:
    """``source`` unchanged, plus headers naming its coordinates, the stage and the error."""
    return Record(
        topic=topic,
        key=source.key,
        value=source.value,
        headers=(
            *source.headers,
            (wire.HEADER_DLQ_SOURCE_TOPIC, source.topic.encode()),
            (wire.HEADER_DLQ_SOURCE_PARTITION, str(source.partition).encode()),
            (wire.HEADER_DLQ_SOURCE_OFFSET, str(source.offset).encode()),
            (wire.HEADER_DLQ_STAGE, stage.encode()),
            (wire.HEADER_DLQ_ERROR_CLASS, error_class.encode()),
            # our own error texts: they never quote body bytes
            (wire.HEADER_DLQ_ERROR_MESSAGE, message[:_MAX_MESSAGE].encode()),
        ),
    )
