"""The receiver's path for the normaliser tests: a request verified by the endpoint's scheme and
made into the records, and envelopes, it would publish on ``webhooks.raw``."""

from __future__ import annotations

from ingest.envelopes import records_for
from ingest.schemes import RawRequest, Scheme, build_scheme
from payhooks.config import EndpointSettings
from payhooks.kafka import Record
from schemas.envelope import Envelope

#: the traceparent the envelopes carry unless a test passes its own
TRACEPARENT = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"


async def delivered(endpoint: EndpointSettings, request: RawRequest, now: int, *,
                    received_at: str, delivery_id: str = "dlv-1",
                    traceparent: str = TRACEPARENT,
                    scheme: Scheme | None = None) -> list[tuple[Record, Envelope]]:
    """``request`` verified at ``now`` by ``scheme`` (else the endpoint's), as (record, envelope)
    pairs, one per event the receiver would publish."""
    verified = await (scheme or build_scheme(endpoint)).verify(request, now)
    records = records_for(verified, endpoint=endpoint.name, provider=endpoint.provider,
                          delivery_id=delivery_id, received_at=received_at,
                          traceparent=traceparent, topic="webhooks.raw")
    return [(record, Envelope.from_json(record.value)) for record in records]
