"""Kafka client factories with payhooks' safe defaults, and the record value type they move."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from payhooks.config import KafkaSettings

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class Record:
    """One record to produce."""

    topic: str
    key: bytes
    value: bytes
    headers: Headers = ()


def producer(settings: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    """An idempotent producer that waits for every in-sync replica (``acks=all``).

    Callers still put a deadline on every send: an idempotent producer retries for as long as the
    broker is away, and aiokafka's own timeouts do not bound the wait for the acknowledgement.
    """
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": settings.client_id,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 2,  # a short batch window: requests in flight at once share one produce call
        "request_timeout_ms": 10_000,
        "compression_type": None,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def consumer(settings: KafkaSettings, *topics: str, group_id: str | None, **overrides: Any
             ) -> AIOKafkaConsumer:
    """A consumer that never commits on its own and reads only committed transactions.

    ``auto_offset_reset="earliest"``: a new group starts at the beginning, never skips records.
    """
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": settings.client_id,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


def admin(settings: KafkaSettings, **overrides: Any) -> AIOKafkaAdminClient:
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": f"{settings.client_id}-admin",
        "request_timeout_ms": 15_000,
    }
    options.update(overrides)
    return AIOKafkaAdminClient(**options)


async def partitions_of(settings: KafkaSettings, topic: str) -> list[int]:
    """The partition numbers of ``topic`` (empty when it does not exist)."""
    client = admin(settings)
    await client.start()
    try:
        described = await client.describe_topics([topic])
    finally:
        await client.close()
    return sorted(p["partition"] for t in described if t["error_code"] == 0
                  for p in t["partitions"])
