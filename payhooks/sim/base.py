"""The values every provider's simulator produces: events of one payment and signed requests."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from payhooks.config import EndpointSettings

_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


@dataclass(frozen=True, slots=True)
class SimEvent:
    """One provider event of a simulated payment, as the provider would deliver it."""

    payment_ref: str  # the payment it belongs to (the partition key's reference)
    event_id: str  # the provider's event id, or the id the receiver derives
    kind: str  # the provider's event type, e.g. "payment_intent.succeeded" or "CAPTURE"
    event: dict[str, Any] = field(hash=False)  # the provider's payload of this one event


@dataclass(frozen=True, slots=True)
class SignedRequest:
    body: bytes
    headers: dict[str, str]


class ProviderSim(Protocol):
    """What each ``payhooks.sim.<provider>`` module offers."""

    def lifecycle(self, rng: random.Random, now: int) -> list[SimEvent]:
        """One payment's events in the order the provider emits them."""

    def sign(self, events: Sequence[SimEvent], endpoint: EndpointSettings, now: int
             ) -> SignedRequest:
        """One request carrying ``events`` (one, or a batch where the provider batches), signed
        with the endpoint's first key as the provider signs it."""


def token(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(length))
