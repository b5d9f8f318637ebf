"""The audit record: who from the environment, its shape against payhooks.audit.v1."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jsonschema
import orjson
import pytest

from consumers.audit import AuditRecord, operator_of
from schemas import registry, wire

NOW = datetime(2026, 11, 24, 10, tzinfo=UTC)


def test_the_operator_is_payhooks_operator_before_sudo_user_before_user() -> None:
    assert operator_of({"USER": "root", "SUDO_USER": "alice"}) == "alice"
    assert operator_of({"USER": "root", "PAYHOOKS_OPERATOR": "bob"}) == "bob"
    assert operator_of({"LOGNAME": "carol"}) == "carol"
    assert operator_of({}, fallback="uid-1000") == "uid-1000"


def test_a_finished_record_matches_its_schema_and_names_its_id_in_the_replay_header() -> None:
    audit = AuditRecord.begin("replay", "INC-1", "payhooks replay --execute", NOW,
                              {"USER": "alice"}, host="box")
    done = audit.finish(NOW + timedelta(seconds=3), outcome="done",
                        counts={"matched": 3, "written": 3},
                        range_={"topic": "webhooks.raw",
                                "partitions": [{"partition": 0, "start": 1, "end": 4}]})
    record = done.to_record("payhooks.audit")
    doc = orjson.loads(record.value)
    jsonschema.validate(doc, registry.load(wire.SCHEMA_AUDIT_V1))
    assert record.key == done.id.encode()
    assert dict(record.headers)[wire.HEADER_REPLAY] == done.id.encode()
    assert (doc["operator"], doc["host"], doc["reason"]) == ("alice", "box", "INC-1")
    assert doc["started_at"] == "2026-11-24T10:00:00.000Z"
    assert doc["finished_at"] == "2026-11-24T10:00:03.000Z"


def test_an_action_without_a_reason_is_refused() -> None:
    with pytest.raises(ValueError, match="reason"):
        AuditRecord.begin("replay", "  ", "payhooks replay", NOW, {})


def test_an_unknown_outcome_is_refused() -> None:
    audit = AuditRecord.begin("offsets.reset", "INC-2", "payhooks offsets reset", NOW, {})
    with pytest.raises(ValueError, match="outcome"):
        audit.finish(NOW, outcome="maybe")


def test_each_action_gets_its_own_id() -> None:
    ids = {AuditRecord.begin("replay", "r", "c", NOW, {}).id for _ in range(50)}
    assert len(ids) == 50


def test_the_audit_schema_is_valid_and_refuses_an_unknown_outcome() -> None:
    schema = registry.load(wire.SCHEMA_AUDIT_V1)
    jsonschema.Draft202012Validator.check_schema(schema)
    doc = AuditRecord.begin("dlq.redrive", "INC-3", "c", NOW, {}).as_dict()
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**doc, "outcome": "maybe"}, schema)
