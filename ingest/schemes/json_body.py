"""Reading a verified JSON body: the object it must be and the values at paths inside it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ingest.errors import MalformedRequest


def json_object(body: bytes, what: str = "a JSON object") -> dict[str, Any]:
    """The verified body as a JSON object, else MalformedRequest ("body is not ``what``")."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedRequest("body is not JSON") from None
    if not isinstance(doc, dict):
        raise MalformedRequest(f"body is not {what}")
    return doc


def dig(node: Any, *names: str) -> Any:
    """What lies at ``names`` inside nested objects, else None; never raises.

    Names are object keys; a name of ASCII digits also indexes a list (``items``, ``0``, ``id``);
    other digits (``²``) would make ``int`` raise.
    """
    for name in names:
        if isinstance(node, Mapping):
            node = node.get(name)
        elif isinstance(node, list) and name.isascii() and name.isdigit() and int(name) < len(node):
            node = node[int(name)]
        else:
            return None
    return node


def text(value: Any) -> str | None:
    """``value`` when it is a non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def value_at(doc: Any, path: str | None) -> str | None:
    """The non-empty string (or integer, as text) at dotted ``path`` in ``doc``, else None."""
    if path is None:
        return None
    node = dig(doc, *path.split("."))
    if isinstance(node, int) and not isinstance(node, bool):
        return str(node)
    return text(node)
