"""The receiver's path for the normaliser tests: a request verified by the endpoint's scheme and
made into the records, and envelopes, it would publish on ``webhooks.raw``."""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import orjson
from hypothesis import strategies as st

from consumers.errors import NormalizeError
from ingest.envelopes import records_for
from ingest.schemes import RawRequest, Scheme, build_scheme
from payhooks.config import EndpointSettings
from payhooks.kafka import Record
from schemas import registry
from schemas.envelope import Envelope
from schemas.event import PaymentEvent

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


# --- shared by the normalisers' property tests --------------------------------------------------

#: the canonical event's JSON Schema, for checking every event a normaliser produces
EVENT_SCHEMA = jsonschema.Draft202012Validator(registry.load("payhooks.event.v1"),
                                               format_checker=jsonschema.FormatChecker())

#: arbitrary JSON values, including integers beyond 64 bits and non-finite floats
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=5),
    max_leaves=25,
)


def conforms(event: PaymentEvent) -> PaymentEvent:
    """``event``, after checking its record value against ``payhooks.event.v1``."""
    EVENT_SCHEMA.validate(orjson.loads(event.to_json()))
    return event


def with_value(raw: dict[str, Any], value: Any, *path: str | int) -> dict[str, Any]:
    """A deep copy of ``raw`` with the field at ``path`` replaced by ``value``."""
    copy = orjson.loads(orjson.dumps(raw))
    node = copy
    for name in path[:-1]:
        node = node[name]
    node[path[-1]] = value
    return dict(copy)


def field_paths(node: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every path to a field of the nested objects in ``node``."""
    paths = [prefix] if prefix else []
    if isinstance(node, dict):
        for name, child in node.items():
            paths += field_paths(child, (*prefix, name))
    return paths


def outcome_is_an_event_none_or_normalize_error(
        normalize: Callable[[Envelope], PaymentEvent | None], envelope: Envelope) -> None:
    """What a normaliser may do with any envelope: a valid event, None, or NormalizeError."""
    try:
        event = normalize(envelope)
    except NormalizeError:
        return
    if event is not None:
        conforms(event)


#: small arbitrary JSON values, for mutating realistic payloads
SMALL_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8)


def all_paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into ``node``, the empty one included, through objects and lists."""
    yield prefix
    children = node.items() if isinstance(node, dict) else (
        enumerate(node) if isinstance(node, list) else ())
    for key, child in children:
        yield from all_paths(child, (*prefix, key))


#: canonical money types and the total each one counts toward
CANONICAL_KINDS = {"payment.authorized": "authorized", "payment.captured": "captured",
                   "payment.refunded": "refunded"}


def money_invariants_hold(events: list[PaymentEvent]) -> None:
    """Per payment, in the order emitted: operations count once per operation_id, totals never
    fall, captured <= authorized and refunded <= captured."""
    totals: dict[str, int] = defaultdict(int)
    operations: dict[str, dict[str, int]] = defaultdict(dict)
    for event in events:
        kind = CANONICAL_KINDS.get(event.type)
        if kind is None or event.amount is None:
            continue
        if event.amount_scope == "operation":
            assert event.operation_id is not None
            assert operations[kind].setdefault(event.operation_id, event.amount) == event.amount
        else:
            assert event.amount >= totals[kind], "a running total went down"
            totals[kind] = event.amount
        amounts = {k: totals[k] + sum(operations[k].values()) for k in CANONICAL_KINDS.values()}
        assert amounts["captured"] <= amounts["authorized"]
        assert amounts["refunded"] <= amounts["captured"]


@st.composite
def mutated(draw: st.DrawFn, samples: list[Any]) -> Any:
    """One of ``samples`` (documented payloads) with one to three values replaced by arbitrary
    JSON, or removed."""
    doc: Any = copy.deepcopy(draw(st.sampled_from(samples)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(all_paths(doc))))
        if not path:
            doc = draw(SMALL_JSON)
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(SMALL_JSON)
    return doc
