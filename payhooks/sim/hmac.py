"""Simulated traffic of a generic HMAC sender, signed by ingest.schemes.generic_hmac as the
endpoint's options describe.

(This module is named for the provider, ``hmac``; imports are absolute, so ``import hmac`` anywhere
still means the standard library.)

Each request carries one event ``{"id", "type", "created_at", "data"}`` with the generic lifecycle
of :mod:`payhooks.sim.standard` (``data.payment_id``, integer ``amount``, upper-case ``currency``,
``operation_id``). The signature, the event id and type headers (when the endpoint names them) and
the content type follow the endpoint's options. An endpoint that reads everything from this body
sets ``event_id_field = "id"``, ``event_type_field = "type"``, ``payment_ref_field =
"data.payment_id"``; without an event id option the receiver derives ``sha256:<body digest>``
instead of the ``id`` reported in :class:`SimEvent`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import orjson

from ingest.schemes import generic_hmac
from payhooks.config import EndpointSettings
from payhooks.sim.base import SignedRequest, SimEvent, token
from payhooks.sim.standard import steps
from schemas import timefmt


def lifecycle(rng: random.Random, now: int) -> list[SimEvent]:
    """One payment's events in the order the sender emits them."""
    events = []
    for step in steps(rng, now):
        event_id = f"evt_{token(rng, 24)}"
        body = {"id": event_id, "type": step.kind, "created_at": timefmt.from_unix(step.at),
                "data": step.data}
        events.append(SimEvent(payment_ref=step.data["payment_id"], event_id=event_id,
                               kind=step.kind, event=body))
    return events


def sign(events: Sequence[SimEvent], endpoint: EndpointSettings, now: int) -> SignedRequest:
    """One event per request, signed with the endpoint's first key as its options say."""
    [only] = events
    scheme = generic_hmac.GenericHmacScheme.from_settings(endpoint)  # the receiver's reading
    body = orjson.dumps(only.event)
    content_type = ("application/json" if "application/json" in scheme.content_types
                    else sorted(scheme.content_types)[0])
    headers = {
        "content-type": content_type,
        scheme.header: generic_hmac.signature(
            body, endpoint.secrets[0].value, digest=scheme.digest, encoding=scheme.encoding,
            prefix=scheme.prefix, signed_prefix=scheme.signed_prefix),
        "user-agent": "payhooks-sim (generic HMAC)",
    }
    if scheme.event_id_header:
        headers[scheme.event_id_header] = only.event_id
    if scheme.event_type_header:
        headers[scheme.event_type_header] = only.kind
    return SignedRequest(body, headers)
