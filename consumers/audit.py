"""The ``payhooks.audit`` record of one operator action: who, why, what range, counts, outcome.

Written once per executed (or refused) replay, redrive or offset reset, after the action ended,
with a log line saying the same. A dry run writes nothing, not even this record. The record's id
is chosen before the action starts: it is the ``replay`` header of every record the action writes.
"""

from __future__ import annotations

import asyncio
import getpass
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson
import structlog

from payhooks import kafka
from payhooks.config import Settings
from payhooks.kafka import Record
from schemas import timefmt, wire

log = structlog.get_logger("payhooks.audit")

_SEND_DEADLINE = 15.0  # seconds for Kafka to acknowledge the audit record

ACTIONS = ("replay", "dlq.redrive", "offsets.reset")
OUTCOMES = ("done", "failed", "refused", "interrupted")


def operator_of(environ: Mapping[str, str], fallback: str = "unknown") -> str:
    """The person at the keyboard: PAYHOOKS_OPERATOR, else SUDO_USER, USER or LOGNAME, else
    ``fallback`` (the login name of the process)."""
    return next((environ[n] for n in wire.ENV_OPERATOR if environ.get(n)), fallback)


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no passwd entry for the uid (some containers)
        return "unknown"


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One operator action; ``finish`` fills in counts and outcome when it has ended."""

    id: str
    action: str
    operator: str
    host: str
    reason: str
    command: str
    started_at: str
    range: Mapping[str, Any] = field(default_factory=dict)
    counts: Mapping[str, int] = field(default_factory=dict)
    outcome: str = "done"
    error: str | None = None
    finished_at: str | None = None

    @classmethod
    def begin(cls, action: str, reason: str, command: str, now: datetime,
              environ: Mapping[str, str], host: str | None = None) -> AuditRecord:
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}")
        if not reason.strip():
            raise ValueError("an operator action needs a reason")
        return cls(id=new_id(), action=action, operator=operator_of(environ, _login_name()),
                   host=host if host is not None else socket.gethostname(), reason=reason,
                   command=command, started_at=timefmt.to_wire(now))

    def finish(self, now: datetime, *, outcome: str, counts: Mapping[str, int] | None = None,
               range_: Mapping[str, Any] | None = None, error: str | None = None
               ) -> AuditRecord:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown audit outcome {outcome!r}")
        return replace(self, outcome=outcome, error=error, finished_at=timefmt.to_wire(now),
                       counts=dict(counts if counts is not None else self.counts),
                       range=dict(range_ if range_ is not None else self.range))

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": wire.SCHEMA_AUDIT_V1, "id": self.id, "action": self.action,
            "operator": self.operator, "host": self.host, "reason": self.reason,
            "command": self.command, "range": dict(self.range), "counts": dict(self.counts),
            "outcome": self.outcome, "error": self.error, "started_at": self.started_at,
            "finished_at": self.finished_at or self.started_at,
        }

    def to_record(self, topic: str) -> Record:
        return Record(topic, self.id.encode(), orjson.dumps(self.as_dict()),
                      ((wire.HEADER_SCHEMA, wire.SCHEMA_AUDIT_V1.encode()),
                       (wire.HEADER_REPLAY, self.id.encode())))


async def write(settings: Settings, audit: AuditRecord) -> None:
    """Produce ``audit`` to the audit topic (acks=all, with a deadline) and log it."""
    record = audit.to_record(settings.topics.audit)
    producer = kafka.producer(settings.kafka)
    await producer.start()
    try:
        await asyncio.wait_for(
            producer.send_and_wait(record.topic, record.value, key=record.key,
                                   headers=list(record.headers)),
            _SEND_DEADLINE)
    finally:
        await producer.stop()
    log.info("operator_action", audit_id=audit.id, action=audit.action, operator=audit.operator,
             reason=audit.reason, outcome=audit.outcome, counts=dict(audit.counts),
             error=audit.error)
