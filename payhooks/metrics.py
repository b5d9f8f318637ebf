"""Every Prometheus metric payhooks exports, named and documented in one place.

Labels are of low cardinality only: endpoint and provider names, fixed outcome and reason words,
key-ring positions. Never an event id, payment id or delivery id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# publish latency buckets: sub-millisecond acks to the 5 s deadline
_PUBLISH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class IngestMetrics:
    """The receiver's metrics (RED by endpoint, verification, key ring, publish)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "payhooks_ingest_requests_total",
            "Webhook requests answered, by endpoint and outcome "
            "(accepted, unauthorized, malformed, too_large, unsupported_media_type, "
            "unknown_endpoint, unavailable, overloaded, internal_error).",
            ["endpoint", "outcome"],
            registry=registry,
        )
        self.verification_failures = Counter(
            "payhooks_ingest_verification_failures_total",
            "Requests refused with 401, by provider and reason.",
            ["provider", "reason"],
            registry=registry,
        )
        self.key_ring_matches = Counter(
            "payhooks_ingest_key_ring_matches_total",
            "Verified requests by the position of the matching key in the endpoint's ring "
            "(0 = first). An old key whose count stops growing can be removed.",
            ["endpoint", "key_index"],
            registry=registry,
        )
        self.events_published = Counter(
            "payhooks_ingest_events_published_total",
            "Provider events acknowledged by Kafka on the raw topic.",
            ["endpoint", "provider"],
            registry=registry,
        )
        self.publish_seconds = Histogram(
            "payhooks_ingest_publish_seconds",
            "Time from the first send to the last Kafka acknowledgement of a request.",
            ["endpoint"],
            buckets=_PUBLISH_BUCKETS,
            registry=registry,
        )
        self.request_seconds = Histogram(
            "payhooks_ingest_request_seconds",
            "Time to answer a webhook request (any outcome), from routing to the response.",
            ["endpoint"],
            buckets=_PUBLISH_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "payhooks_ingest_in_flight_requests",
            "Webhook requests being handled right now.",
            registry=registry,
        )


class ConsumerMetrics:
    """The workers' metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.records = Counter(
            "payhooks_consumer_records_total",
            "Events handled, by outcome (applied, duplicate, stale, noted, parked, released, "
            "inferred, unmapped, dlq, redelivered).",
            ["outcome"],
            registry=registry,
        )
        self.transitions = Counter(
            "payhooks_consumer_transitions_total",
            "Transitions decided (each written once to payments.transitions), by the state moved "
            "to and whether the step was inferred.",
            ["to_state", "inferred"],
            registry=registry,
        )
        self.parking_window = Gauge(
            "payhooks_consumer_parking_window_seconds",
            "The configured parking window (for alerts comparing the oldest parked age to it).",
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "payhooks_consumer_batch_seconds",
            "Time to handle one polled batch, from poll to committed transactions.",
            registry=registry,
        )
        self.transaction_seconds = Histogram(
            "payhooks_consumer_transaction_seconds",
            "Time of one partition's Kafka transaction (outputs and input offsets).",
            registry=registry,
        )
        self.lag = Gauge(
            "payhooks_consumer_lag_records",
            "Records of the raw topic not yet processed, per assigned partition.",
            ["partition"],
            registry=registry,
        )
        self.parked_payments = Gauge(
            "payhooks_consumer_parked_payments",
            "Payments with at least one parked (early) event.",
            registry=registry,
        )
        self.oldest_parked_age = Gauge(
            "payhooks_consumer_oldest_parked_age_seconds",
            "Age of the oldest parked event (0 when none); above the parking window means the "
            "expiry ticks are not being processed.",
            registry=registry,
        )
        self.ready = Gauge(
            "payhooks_consumer_ready",
            "1 while the worker can reach Kafka and a trusted Redis, else 0.",
            registry=registry,
        )
        self.retries = Counter(
            "payhooks_consumer_retries_total",
            "Batches given up and retried, by cause (redis, kafka, fenced, conflict).",
            ["cause"],
            registry=registry,
        )
        self.rebuilds = Counter(
            "payhooks_consumer_redis_rebuilds_total",
            "Times Redis was rebuilt from payhooks.snapshots (it restarted or came back empty).",
            registry=registry,
        )
