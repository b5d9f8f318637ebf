"""The one place where a raw record meets dedupe and becomes output records (or a dead letter)."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.structs import ConsumerRecord

from consumers.dlq import dead_letter
from consumers.errors import DecodeError, Poison
from consumers.normalize import normalize
from consumers.store import ClaimStore
from payhooks.config import TopicSettings
from payhooks.kafka import Record
from schemas import wire
from schemas.envelope import Envelope, EnvelopeError
from schemas.event import PaymentEvent

#: headers of the raw record carried over to every output
_CARRIED = frozenset({wire.HEADER_DELIVERY_ID, wire.HEADER_TRACEPARENT, wire.HEADER_REPLAY})


@dataclass(frozen=True, slots=True)
class Outcome:
    """What handling one raw record decided: a metric word and the records to produce."""

    name: str  # emitted | duplicate | unmapped | dlq
    outputs: tuple[Record, ...] = ()
    event_id: str | None = None


class Handler:
    def __init__(self, topics: TopicSettings, claims: ClaimStore) -> None:
        self._topics = topics
        self._claims = claims

    async def handle(self, record: ConsumerRecord) -> Outcome:
        try:
            return await self._handle(record)
        except Poison as poison:
            return Outcome("dlq", (dead_letter(record, poison.stage, poison, self._topics.dlq),))

    async def _handle(self, record: ConsumerRecord) -> Outcome:
        try:
            envelope = Envelope.from_json(record.value or b"")
        except EnvelopeError as exc:
            raise DecodeError(str(exc)) from None
        event = normalize(envelope)
        if event is None:
            return Outcome("unmapped")
        holder = f"{record.topic}:{record.partition}:{record.offset}"
        if not await self._claims.claim(event.event_id, holder):
            return Outcome("duplicate", event_id=event.event_id)
        return Outcome("emitted", (self._event_record(event, record),), event.event_id)

    def _event_record(self, event: PaymentEvent, source: ConsumerRecord) -> Record:
        carried = tuple((k, v) for k, v in (source.headers or ()) if k in _CARRIED)
        return Record(
            topic=self._topics.events,
            key=event.payment_id.encode(),
            value=event.to_json(),
            headers=(
                *carried,
                (wire.HEADER_EVENT_ID, event.event_id.encode()),
                (wire.HEADER_SCHEMA, wire.SCHEMA_EVENT_V1.encode()),
            ),
        )
