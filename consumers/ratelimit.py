"""A token bucket: at most ``rate`` records per second on average, bursts of up to ``burst``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class TokenBucket:
    """``await take()`` before each record; it sleeps only when the bucket is empty.

    The clock and the sleep are passed in so the arithmetic can be checked without waiting.
    """

    def __init__(self, rate: float, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate / 10)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    async def take(self) -> None:
        self._refill()
        if self._tokens < 1:
            await self._sleep((1 - self._tokens) / self.rate)
            self._refill()
        self._tokens -= 1
