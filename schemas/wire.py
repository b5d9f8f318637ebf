"""Names that travel on the wire: topics, Kafka headers, Redis keys and schema ids, in one place."""

from __future__ import annotations

from typing import Final

# --- Kafka topics (defaults; `[topics]` in the configuration renames them) ---------------------
TOPIC_RAW: Final = "webhooks.raw"  # verified provider events, one record per event, key = payment
TOPIC_EVENTS: Final = "payments.events"  # canonical payment events, exactly once downstream
TOPIC_TRANSITIONS: Final = "payments.transitions"  # gapless per-payment state transitions
TOPIC_STATE: Final = "payments.state"  # compacted latest snapshot per payment
TOPIC_DLQ: Final = "webhooks.dlq"  # records that could not be processed, with the reason
TOPIC_AUDIT: Final = "payhooks.audit"  # one record per operator action
TOPIC_SNAPSHOTS: Final = "payhooks.snapshots"  # internal, compacted: the workers' full per-payment
# snapshots (parked events, dedupe memory), written in the same transaction as the outputs, so
# Redis can be rebuilt from Kafka when it comes back empty

# --- Kafka record headers (values are UTF-8 bytes) -------------------------------------------
HEADER_DELIVERY_ID: Final = "delivery_id"  # one id per HTTP request that carried the event
HEADER_PROVIDER: Final = "provider"  # the endpoint's provider scheme, e.g. "stripe"
HEADER_ENDPOINT: Final = "endpoint"  # the configured endpoint name, e.g. "stripe-eu"
HEADER_EVENT_ID: Final = "event_id"  # the provider's event id (or the derived one)
HEADER_TRACEPARENT: Final = "traceparent"  # W3C trace context of the request
HEADER_SCHEMA: Final = "schema"  # the JSON Schema id the value conforms to
HEADER_CONTENT_TYPE: Final = "content-type"  # always application/json for our values
HEADER_REPLAY: Final = "replay"  # set by operator tools: the audit record id of the replay
# dead letters keep the failed record's own headers and add these
HEADER_DLQ_SOURCE_TOPIC: Final = "dlq_source_topic"
HEADER_DLQ_SOURCE_PARTITION: Final = "dlq_source_partition"
HEADER_DLQ_SOURCE_OFFSET: Final = "dlq_source_offset"
HEADER_DLQ_STAGE: Final = "dlq_stage"  # decode | normalize | apply
HEADER_DLQ_ERROR_CLASS: Final = "dlq_error_class"
HEADER_DLQ_ERROR_MESSAGE: Final = "dlq_error_message"  # never holds a secret or body bytes
#: every header a dead letter adds; a redrive removes them before re-producing the record
DLQ_HEADERS: Final = frozenset({HEADER_DLQ_SOURCE_TOPIC, HEADER_DLQ_SOURCE_PARTITION,
                                HEADER_DLQ_SOURCE_OFFSET, HEADER_DLQ_STAGE,
                                HEADER_DLQ_ERROR_CLASS, HEADER_DLQ_ERROR_MESSAGE})

# --- Operator identity (environment variables read by the audit record, first set wins) -------
ENV_OPERATOR: Final = ("PAYHOOKS_OPERATOR", "SUDO_USER", "USER", "LOGNAME")

# --- JSON Schema ids (files in schemas/json/) ----------------------------------------------
SCHEMA_ENVELOPE_V1: Final = "payhooks.envelope.v1"
SCHEMA_EVENT_V1: Final = "payhooks.event.v1"
SCHEMA_TRANSITION_V1: Final = "payhooks.transition.v1"
SCHEMA_STATE_V1: Final = "payhooks.state.v1"
SCHEMA_SNAPSHOT_V1: Final = "payhooks.snapshot.v1"  # internal (payhooks.snapshots)
SCHEMA_TICK_V1: Final = "payhooks.tick.v1"  # internal: "release this payment's expired parked
# events", written by the workers to webhooks.raw under the payment's key
SCHEMA_AUDIT_V1: Final = "payhooks.audit.v1"  # payhooks.audit: one operator action, key = its id

# --- Redis keys (every key starts with the configured prefix, default "payhooks:") -----------
REDIS_SNAPSHOT: Final = "pay:{payment_id}"  # a payment's snapshot (JSON, payhooks.snapshot.v1)
REDIS_DECISION: Final = "out:{topic}:{partition}:{offset}"  # the outputs decided for one input
# record: a redelivery after a crash re-emits exactly these (same ids, same versions)
REDIS_PARKED: Final = "parked"  # sorted set: payment id -> when its oldest parked event parked
REDIS_READY: Final = "meta:ready"  # run_id of the Redis server whose data the workers trust
REDIS_REBUILD_LOCK: Final = "meta:rebuild-lock"  # one worker rebuilds Redis from Kafka at a time

# --- HTTP ------------------------------------------------------------------------------------
PROBLEM_CONTENT_TYPE: Final = "application/problem+json"
