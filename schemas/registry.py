"""Loads the JSON Schema files of ``schemas/json`` by id, to validate records in tests and tools."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import orjson

SCHEMA_DIR = Path(__file__).parent / "json"


@cache
def load(schema_id: str) -> dict[str, Any]:
    """The schema whose ``$id`` is ``schema_id`` (``payhooks.event.v1`` -> ``event.v1.json``)."""
    name = schema_id.removeprefix("payhooks.")
    doc: dict[str, Any] = orjson.loads((SCHEMA_DIR / f"{name}.json").read_bytes())
    if doc.get("$id") != schema_id:
        raise LookupError(f"{name}.json declares $id {doc.get('$id')!r}, not {schema_id!r}")
    return doc
