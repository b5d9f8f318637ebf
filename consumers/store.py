"""Redis-backed dedupe index: which raw record first claimed each provider event."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError

from consumers.errors import Retryable
from schemas import wire

# Claim an event for one raw record. The same record may claim again (a redelivery after a crash
# re-emits the same outputs); any other record carrying the event is a duplicate.
_CLAIM = """
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
if holder == ARGV[1] then return 1 end
return 0
"""


class ClaimStore:
    def __init__(self, redis: Redis, prefix: str, ttl_seconds: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl_seconds
        self._claim = redis.register_script(_CLAIM)

    def key(self, event_id: str) -> str:
        return self._prefix + wire.REDIS_EVENT_CLAIM.format(event_id=event_id)

    async def claim(self, event_id: str, holder: str) -> bool:
        """True when ``holder`` (a raw record's coordinates) owns ``event_id``."""
        try:
            return bool(await self._claim(keys=[self.key(event_id)], args=[holder, self._ttl]))
        except RedisError as exc:
            raise Retryable(f"Redis unavailable ({type(exc).__name__})") from exc
