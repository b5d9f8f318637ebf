"""Maps receiver errors to ``application/problem+json`` answers (RFC 9457), in one place."""

from __future__ import annotations

import orjson
from starlette.responses import Response

from ingest.errors import IngestError, Unavailable
from schemas import wire


def problem_response(error: IngestError, retry_after_seconds: int) -> Response:
    """The answer for ``error``: its status and a body that never echoes the request."""
    body = {
        "type": "about:blank",
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
    }
    headers = {"Retry-After": str(retry_after_seconds)} if isinstance(error, Unavailable) else None
    return Response(
        orjson.dumps(body),
        status_code=error.status,
        media_type=wire.PROBLEM_CONTENT_TYPE,
        headers=headers,
    )
