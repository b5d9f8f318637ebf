"""Signed Stripe deliveries for the load generators: simulated once, re-signed for every run.

Stripe signatures carry a timestamp that the receiver accepts for 300 s, so a pool of simulated
events is signed again right before each run. Each run also gets its own event ids, so the
records one run publishes are distinct from each other and from every other run's.

File format (read by ``bench/wrk/deliveries.lua``, ``bench.openloop`` and ``bench.producer``): one
delivery per line, ``<Stripe-Signature>\\t<JSON body>``; orjson never writes a raw tab or newline.
"""

from __future__ import annotations

import random
import string
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ingest.schemes import stripe
from payhooks.sim import stripe as stripe_sim

ENDPOINT = "stripe"  # the endpoint name in the bench configuration
PATH = f"/webhooks/{ENDPOINT}"
CONTENT_TYPE = "application/json; charset=utf-8"  # as Stripe sends it (and as the .lua sends it)
USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"

_TAG_ALPHABET = string.digits + string.ascii_lowercase
_TAG_LENGTH = 3  # the last characters of every event id, replaced by the run's tag


@dataclass(frozen=True, slots=True)
class Delivery:
    """One webhook request: the body exactly as sent and its ``Stripe-Signature`` header."""

    body: bytes
    signature: str

    def headers(self) -> dict[str, str]:
        return {
            "content-type": CONTENT_TYPE,
            "stripe-signature": self.signature,
            "user-agent": USER_AGENT,
        }


def simulate(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` Stripe events, one to three per PaymentIntent, in the order Stripe sends them.

    Several events share a payment, so the partition keys repeat the way real traffic's do.
    """
    rng = random.Random(seed)  # noqa: S311  (simulated traffic, not cryptography)
    now = int(time.time())
    events: list[dict[str, Any]] = []
    while len(events) < count:
        events.extend(e.event for e in stripe_sim.lifecycle(rng, now))
    return events[:count]


def sign(events: Sequence[dict[str, Any]], secret: str, run: int, now: int) -> list[Delivery]:
    """The events as deliveries signed at ``now``, their ids made unique to ``run``."""
    tag = _run_tag(run)
    deliveries = []
    for event in events:
        body = orjson.dumps({**event, "id": event["id"][:-_TAG_LENGTH] + tag})
        deliveries.append(Delivery(body, stripe.signature_header(body, [secret], now)))
    return deliveries


def write(deliveries: Sequence[Delivery], path: Path) -> None:
    with path.open("wb") as handle:
        for delivery in deliveries:
            handle.write(b"%s\t%s\n" % (delivery.signature.encode(), delivery.body))


def read(path: Path) -> Iterator[Delivery]:
    with path.open("rb") as handle:
        for line in handle:
            signature, _, body = line.rstrip(b"\n").partition(b"\t")
            yield Delivery(body, signature.decode())


def _run_tag(run: int) -> str:
    """``run`` in base 36, fixed width: bodies keep the same size in every run."""
    digits = []
    for _ in range(_TAG_LENGTH):
        run, digit = divmod(run, len(_TAG_ALPHABET))
        digits.append(_TAG_ALPHABET[digit])
    return "".join(reversed(digits))
