"""Redis: per-payment snapshots and the outputs decided for each input record, written atomically.

Redis is fast memory; Kafka is the record. Every write goes through one Lua script that checks,
in one atomic step:

1. Redis is the server whose data the workers trust (``meta:ready`` holds its ``run_id``; a
   restart or failover changes the run_id, so nothing is written until the workers have rebuilt
   Redis from ``payhooks.snapshots``, see :mod:`consumers.rebuild`);
2. no decision is stored for this input record yet (else it returns that one: the record is being
   redelivered after a crash, or a zombie got there first, and the same outputs must go out again);
3. the snapshot is still the revision the decision was computed from (else: recompute).

Then it stores the new snapshot, the decision (with a TTL: it only matters until the Kafka
transaction holding its outputs commits) and the parked index.

One Redis server (or a primary with replicas), not Redis Cluster: the script touches several keys.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from consumers.codec import snapshot_from_json, snapshot_to_json
from consumers.errors import Retryable
from consumers.state import Snapshot
from payhooks.kafka import Record
from schemas import wire

_COMMIT = """
local info = redis.call('INFO', 'server')
local run_id = string.match(info, 'run_id:(%x+)')
if redis.call('GET', KEYS[4]) ~= run_id then return {'notready'} end
local existing = redis.call('GET', KEYS[1])
if existing then return {'exists', existing} end
if ARGV[3] ~= '*' then
  local rev = redis.call('HGET', KEYS[2], 'rev') or ''
  if rev ~= ARGV[3] then return {'conflict'} end
  redis.call('HSET', KEYS[2], 'rev', ARGV[5], 'doc', ARGV[4])
  if ARGV[7] == '' then
    redis.call('ZREM', KEYS[3], ARGV[6])
  else
    redis.call('ZADD', KEYS[3], ARGV[7], ARGV[6])
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return {'ok'}
"""


_COMMIT_MANY = """
local info = redis.call('INFO', 'server')
local run_id = string.match(info, 'run_id:(%x+)')
if redis.call('GET', KEYS[1]) ~= run_id then return {'notready'} end
local failed = {}
local answers = {}
for i = 0, #ARGV / 7 - 1 do
  local dkey, skey, a = KEYS[3 + 2 * i], KEYS[4 + 2 * i], 7 * i
  local payment = ARGV[a + 6]
  local status, stored = 'ok', ''
  if failed[payment] then
    status = 'skipped'
  else
    local existing = redis.call('GET', dkey)
    if existing then
      status, stored = 'exists', existing
    elseif ARGV[a + 3] ~= '*' and (redis.call('HGET', skey, 'rev') or '') ~= ARGV[a + 3] then
      status = 'conflict'
    end
  end
  if status == 'ok' then
    if ARGV[a + 3] ~= '*' then
      redis.call('HSET', skey, 'rev', ARGV[a + 5], 'doc', ARGV[a + 4])
      if ARGV[a + 7] == '' then
        redis.call('ZREM', KEYS[2], payment)
      else
        redis.call('ZADD', KEYS[2], ARGV[a + 7], payment)
      end
    end
    redis.call('SET', dkey, ARGV[a + 1], 'EX', ARGV[a + 2])
  else
    failed[payment] = true
  end
  answers[#answers + 1] = status
  answers[#answers + 1] = stored
end
return answers
"""


@dataclass(frozen=True, slots=True)
class PendingCommit:
    """One decision of a batch, to be stored by :meth:`PaymentStore.commit_many`.

    ``snapshot`` None: the decision changes no snapshot (nothing to write or check), but it was
    still decided from the payment's snapshot, so it fails when an earlier commit of the same
    payment in the batch failed.
    """

    decision_key: str
    decision: StoredDecision
    payment_id: str
    snapshot: Snapshot | None
    expected_rev: str
    parked_since: float | None

    @property
    def new_rev(self) -> int:
        return int(self.expected_rev or 0) + 1


class NotReady(Retryable):
    """Redis is not (yet) the server whose data the workers trust: rebuild, then retry."""


class Conflict(Retryable):
    """The snapshot changed between reading and writing (another worker): recompute."""


@dataclass(frozen=True, slots=True)
class StoredDecision:
    """The outputs decided for one input record, and the outcome names (for metrics)."""

    records: tuple[Record, ...]
    outcomes: tuple[str, ...]
    redelivered: bool = False

    def to_json(self) -> bytes:
        return orjson.dumps({
            "outcomes": list(self.outcomes),
            "records": [
                {"topic": r.topic, "key": _b64(r.key), "value": _b64(r.value),
                 "headers": [[k, _b64(v)] for k, v in r.headers]}
                for r in self.records
            ],
        })

    @classmethod
    def from_json(cls, data: bytes) -> StoredDecision:
        doc = orjson.loads(data)
        return cls(
            records=tuple(
                Record(r["topic"], base64.b64decode(r["key"]), base64.b64decode(r["value"]),
                       tuple((k, base64.b64decode(v)) for k, v in r["headers"]))
                for r in doc["records"]
            ),
            outcomes=tuple(doc["outcomes"]),
            redelivered=True,
        )


def _bytes(value: object) -> bytes:
    """A Redis reply as bytes (the client is used without decode_responses)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"unexpected Redis reply {type(value).__name__}")


#: the ``doc`` field of every snapshot hash in KEYS, false where there is none
_SNAPSHOT_DOCS = """
local docs = {}
for i, key in ipairs(KEYS) do
  docs[i] = redis.call('HGET', key, 'doc')
end
return docs
"""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class PaymentStore:
    def __init__(self, redis: Redis, prefix: str, decision_ttl_seconds: int = 7 * 24 * 3600
                 ) -> None:
        self.redis = redis
        self.prefix = prefix
        self._ttl = decision_ttl_seconds
        self._commit = redis.register_script(_COMMIT)
        self._commit_many = redis.register_script(_COMMIT_MANY)
        self._snapshot_docs = redis.register_script(_SNAPSHOT_DOCS)

    # --- keys ----------------------------------------------------------------------------------

    def snapshot_key(self, payment_id: str) -> str:
        return self.prefix + wire.REDIS_SNAPSHOT.format(payment_id=payment_id)

    def decision_key(self, topic: str, partition: int, offset: int) -> str:
        return self.prefix + wire.REDIS_DECISION.format(topic=topic, partition=partition,
                                                         offset=offset)

    @property
    def parked_key(self) -> str:
        return self.prefix + wire.REDIS_PARKED

    @property
    def ready_key(self) -> str:
        return self.prefix + wire.REDIS_READY

    # --- reads ---------------------------------------------------------------------------------

    async def forget(self, decision_keys: Sequence[str]) -> None:
        """Drop stored decisions whose Kafka transaction has committed (outputs and offsets).

        A decision is kept only to re-emit the same outputs when its batch is read again after
        a failed or unknown commit; once the transaction committed, the group never reads those
        records again (a rewind forgets them itself: :mod:`consumers.group_offsets`), so the
        decision would only hold memory until its TTL.
        """
        if decision_keys:
            await self.redis.unlink(*decision_keys)

    async def stored(self, decision_key: str) -> StoredDecision | None:
        try:
            data = await self.redis.get(decision_key)
        except RedisError as exc:
            raise Retryable(f"Redis unavailable ({type(exc).__name__})") from exc
        return None if data is None else StoredDecision.from_json(_bytes(data))

    async def prefetch(self, decision_keys: Sequence[str], payment_ids: Sequence[str]
                       ) -> tuple[dict[str, StoredDecision], dict[str, tuple[Snapshot, str]]]:
        """In one round trip: the stored decisions among ``decision_keys`` and the snapshots
        (with revisions, as :meth:`load`) of ``payment_ids``."""
        pipe = self.redis.pipeline(transaction=False)
        if decision_keys:
            pipe.mget(list(decision_keys))
        if payment_ids:
            # one command for every snapshot (a pipeline of HGETs cost a command each to pack)
            await self._snapshot_docs(keys=[self.snapshot_key(p) for p in payment_ids], client=pipe)
        try:
            answers = await pipe.execute()
        except RedisError as exc:
            raise Retryable(f"Redis unavailable ({type(exc).__name__})") from exc
        stored = {}
        if decision_keys:
            values = answers.pop(0)
            stored = {key: StoredDecision.from_json(_bytes(value))
                      for key, value in zip(decision_keys, values, strict=True)
                      if value is not None}
        answers = answers[0] if payment_ids else []
        snapshots = {}
        for payment_id, doc in zip(payment_ids, answers, strict=True):
            if doc is None:
                snapshots[payment_id] = (Snapshot(payment_id), "")
            else:
                snap, rev = snapshot_from_json(_bytes(doc))
                snapshots[payment_id] = (snap, str(rev))
        return stored, snapshots

    async def load(self, payment_id: str) -> tuple[Snapshot, str]:
        """The payment's snapshot and its revision ("" for a payment never seen)."""
        try:
            doc = await self.redis.hget(self.snapshot_key(payment_id), "doc")
        except RedisError as exc:
            raise Retryable(f"Redis unavailable ({type(exc).__name__})") from exc
        if doc is None:
            return Snapshot(payment_id), ""
        snap, rev = snapshot_from_json(_bytes(doc))
        return snap, str(rev)

    async def ready(self) -> bool:
        """True while Redis is the server the workers rebuilt or started with."""
        try:
            run_id = (await self.redis.info("server"))["run_id"]
            return bool(await self.redis.get(self.ready_key) == run_id.encode())
        except RedisError:
            return False

    async def parked_due(self, before: float, limit: int = 500) -> list[str]:
        """Payments whose oldest parked event parked before ``before`` (unix seconds)."""
        try:
            members = await self.redis.zrangebyscore(self.parked_key, "-inf", before, start=0,
                                                     num=limit)
        except RedisError as exc:
            raise Retryable(f"Redis unavailable ({type(exc).__name__})") from exc
        return [_bytes(m).decode() for m in members]

    async def parked_stats(self) -> tuple[int, float | None]:
        """How many payments have parked events, and when the oldest parked (unix seconds)."""
        try:
            count = await self.redis.zcard(self.parked_key)
            oldest = await self.redis.zrange(self.parked_key, 0, 0, withscores=True)
        except RedisError:
            return 0, None
        return int(count), (float(oldest[0][1]) if oldest else None)

    # --- the write -----------------------------------------------------------------------------

    async def commit_many(self, pending: Sequence[PendingCommit]
                          ) -> list[StoredDecision | None]:
        """Store a batch's decisions in order, in one atomic step (one round trip).

        Each is checked like :meth:`commit`. The answer per decision: the decision that holds
        (``decision``, or the one stored before: redelivery), or None when it was not stored:
        its snapshot moved on, or an earlier decision of the same payment in the batch was not
        stored as given (later ones of that payment were decided from a snapshot that is not
        Redis', so they are skipped). Decide those again, in order. Raises :class:`NotReady`
        when Redis must be rebuilt first.
        """
        if not pending:
            return []
        keys = [self.ready_key, self.parked_key]
        args: list[str | bytes | int] = []
        for item in pending:
            snap = item.snapshot
            keys += [item.decision_key,
                     self.snapshot_key(item.payment_id) if snap else item.decision_key]
            args += [
                item.decision.to_json(),
                self._ttl,
                item.expected_rev if snap else "*",
                snapshot_to_json(snap, item.new_rev) if snap else "",
                item.new_rev,
                item.payment_id,
                "" if item.parked_since is None else repr(item.parked_since),
            ]
        try:
            answer = await self._commit_many(keys=keys, args=args)
        except RedisError as exc:
            raise Retryable(f"Redis unavailable ({type(exc).__name__})") from exc
        if len(answer) == 1:
            raise NotReady("Redis restarted or is not rebuilt yet")
        results: list[StoredDecision | None] = []
        for item, (status, stored) in zip(pending, zip(answer[::2], answer[1::2], strict=True),
                                          strict=True):
            name = _bytes(status).decode()
            if name == "ok":
                results.append(item.decision)
            elif name == "exists":
                results.append(StoredDecision.from_json(_bytes(stored)))
            else:
                results.append(None)
        return results

    async def commit(
        self,
        decision_key: str,
        decision: StoredDecision,
        *,
        snapshot: Snapshot | None,
        expected_rev: str,
        parked_since: float | None,
    ) -> StoredDecision:
        """Store ``decision`` (and ``snapshot``, unless None) for the record at ``decision_key``.

        Returns the decision that holds: ``decision``, or the one stored before (redelivery).
        Raises :class:`Conflict` when the snapshot moved on, :class:`NotReady` when Redis must be
        rebuilt first.
        """
        new_rev = int(expected_rev or 0) + 1
        payment_id = snapshot.payment_id if snapshot is not None else ""
        try:
            answer = await self._commit(
                keys=[decision_key, self.snapshot_key(payment_id) if snapshot else decision_key,
                      self.parked_key, self.ready_key],
                args=[
                    decision.to_json(),
                    self._ttl,
                    expected_rev if snapshot else "*",  # "*": no snapshot to write or check
                    snapshot_to_json(snapshot, new_rev) if snapshot else "",
                    new_rev,
                    payment_id,
                    "" if parked_since is None else repr(parked_since),
                ],
            )
        except RedisError as exc:
            raise Retryable(f"Redis unavailable ({type(exc).__name__})") from exc
        status = _bytes(answer[0]).decode()
        if status == "ok":
            return decision
        if status == "exists":
            return StoredDecision.from_json(_bytes(answer[1]))
        if status == "conflict":
            raise Conflict(f"snapshot of {payment_id} changed meanwhile")
        raise NotReady("Redis restarted or is not rebuilt yet")

