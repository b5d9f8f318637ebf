"""Timestamps on the wire: RFC 3339, UTC, millisecond precision, ``Z`` suffix."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def to_wire(moment: datetime) -> str:
    """``2026-11-23T23:52:12.123Z``; naive datetimes are refused rather than guessed."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass an aware UTC datetime")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_YEAR_10000 = 253_402_300_800  # 10000-01-01T00:00:00Z as unix seconds


def from_unix(seconds: float) -> str:
    """``to_wire`` of a unix time, without building a datetime (it runs once per request)."""
    if not 0 <= seconds < _YEAR_10000:
        raise ValueError(f"unix time {seconds!r} is outside 1970-01-01 .. 9999-12-31")
    whole = int(seconds)
    millis = int((seconds - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def parse(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone")
    return moment.astimezone(UTC)
