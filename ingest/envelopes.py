"""Builds the ``webhooks.raw`` records of a verified delivery: envelope, key and headers."""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from ingest.schemes import Verified
from payhooks.kafka import Record
from schemas import wire
from schemas.envelope import Envelope


def records_for(
    verified: Verified,
    *,
    endpoint: str,
    provider: str,
    delivery_id: str,
    received_at: str,
    traceparent: str,
    topic: str,
) -> list[Record]:
    records = []
    for event in verified.events:
        envelope = Envelope(
            delivery_id=delivery_id,
            endpoint=endpoint,
            provider=provider,
            event_id=event.event_id,
            event_type=event.event_type,
            payment_ref=event.payment_ref,
            received_at=received_at,
            key_index=verified.key_index,
            payload=event.payload,
        )
        records.append(
            Record(
                topic=topic,
                key=envelope.partition_key.encode(),
                value=envelope.to_json(),
                headers=(
                    (wire.HEADER_DELIVERY_ID, delivery_id.encode()),
                    (wire.HEADER_PROVIDER, provider.encode()),
                    (wire.HEADER_ENDPOINT, endpoint.encode()),
                    (wire.HEADER_EVENT_ID, event.event_id.encode()),
                    (wire.HEADER_TRACEPARENT, traceparent.encode()),
                    (wire.HEADER_SCHEMA, wire.SCHEMA_ENVELOPE_V1.encode()),
                ),
            )
        )
    return records


def traceparent(headers: Mapping[str, str]) -> str:
    """The request's W3C ``traceparent`` when well formed, else a new sampled trace context."""
    incoming = headers.get("traceparent", "")
    parts = incoming.split("-")
    if (
        len(parts) == 4
        and parts[0] == "00"
        and len(parts[1]) == 32
        and len(parts[2]) == 16
        and len(parts[3]) == 2
        and all(_is_hex(p) for p in parts[1:])
        and parts[1] != "0" * 32
        and parts[2] != "0" * 16
    ):
        return incoming.lower()
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)
