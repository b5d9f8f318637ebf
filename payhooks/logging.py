"""structlog set-up: JSON or console lines, context variables, and redaction of secrets and PANs."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import IO, Any

import structlog

#: keys whose values are never logged, whatever they hold
SENSITIVE_KEYS = frozenset(
    {
        "authorization",
        "password",
        "secret",
        "secrets",
        "signature",
        "stripe-signature",
        "body",
        "payload",
        "cvv",
        "cvc",
        "pan",
        "card_number",
    }
)
REDACTED = "[redacted]"

# 13 to 19 digits, optionally split by single spaces or dashes, not inside a longer digit run
_PAN_CANDIDATE = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
# secrets with a recognisable shape, wherever they appear: webhook keys (Stripe, Standard
# Webhooks), API keys, and credentials of Authorization headers
_SECRET_SHAPES = re.compile(
    r"\b(?:whsec|whpk|whsk|sk_live|sk_test|rk_live|rk_test)_[A-Za-z0-9+/=_-]+"
    r"|\b(?:Basic|Bearer)\s+[A-Za-z0-9+/=._~-]{6,}"
)


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def mask_secrets(text: str) -> str:
    """Replace secret-shaped substrings (``whsec_...``, ``Basic ...``) by a marker."""
    return _SECRET_SHAPES.sub("[secret]", text)


def mask_pans(text: str) -> str:
    """Replace every Luhn-valid 13-19 digit number by its last four digits."""

    def _mask(match: re.Match[str]) -> str:
        digits = re.sub(r"[ -]", "", match.group(0))
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            return f"[pan ...{digits[-4:]}]"
        return match.group(0)

    return _PAN_CANDIDATE.sub(_mask, text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_pans(mask_secrets(value))
    if isinstance(value, dict):
        return {
            k: REDACTED if str(k).lower() in SENSITIVE_KEYS else _redact_value(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return value


def redact(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]
           ) -> MutableMapping[str, Any]:
    """structlog processor: drop sensitive keys, mask PAN-like numbers anywhere in the event."""
    for key in list(event_dict):
        if key.lower() in SENSITIVE_KEYS:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact_value(event_dict[key])
    return event_dict


def shared_processors() -> list[Any]:
    """Processors every log event passes, ours and the standard library's (aiokafka, uvicorn)."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,  # last before rendering: nothing added above escapes it
    ]


def configure(level: str = "info", fmt: str = "json", stream: IO[str] | None = None,
              *, cache_loggers: bool = True) -> None:
    """Configure structlog and the standard library's logging once, at process start.

    Both end in the same renderer, after the same redaction, on ``stream`` (default stderr).
    """
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=stream is None and sys.stderr.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[*shared_processors(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=cache_loggers,  # tests keep it off for capture_logs
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared_processors(),
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # libraries speak at WARNING and above (httpx would log every simulated request at INFO)
    for noisy in ("aiokafka", "uvicorn.error", "kafka", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
