"""Contact state in Redis, written by one atomic compare-and-set per contact.

Scoring itself is done by the reference engine (:mod:`stream_scorer.scoring.engine`)
in the worker, on the state read from Redis; ``store.lua`` writes the new
state and the alerts it produced in one atomic step, only if the contact was
not written since it was read. So the live path cannot drift from the
specification, and a contact whose events arrive through two workers at
once (a rebalance, two partitions) is retried instead of overwritten.

Keys share the hash tag ``{contact_id}`` so a contact's keys stay in one
Redis Cluster slot. A batch costs two round trips: one pipelined read, one
pipelined script call per contact. Alerts leave the outbox only after
Kafka acknowledged them (:meth:`RedisStore.mark_relayed`): a crash can
duplicate an alert, never lose one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.crc import key_slot

from stream_scorer.errors import ScorerError
from stream_scorer.events import Event
from stream_scorer.scoring.crossings import alert_payload
from stream_scorer.scoring.engine import (
    ContactState,
    Crossing,
    ScoreExplanation,
    advance_in_place,
    apply_in_place,
    explain,
)
from stream_scorer.scoring.model import ScoringModel
from stream_scorer.worker.metrics import Metrics

KEY_PREFIX = "ss"

#: Read many contacts' (version, state) in one call; keys in one slot on Cluster.
#: ARGV[i] is the version the worker holds in memory ("" if none): when it is
#: current, the state itself is not sent again.
_READ_MANY = """
local out = {}
for i, key in ipairs(KEYS) do
  local version = redis.call('HGET', key, 'v')
  if version and version == ARGV[i] then
    out[i] = {version, false}
  else
    out[i] = {version or false, version and redis.call('HGET', key, 's') or false}
  end
end
return out
"""
MAX_CONFLICT_RETRIES = 20

# States are JSON in Redis (readable with redis-cli); msgspec reads and writes
# it several times faster than the json module, which dominated a batch's cost.
_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder().decode


def contact_keys(contact_id: str) -> tuple[str, str]:
    """State hash and alert outbox of one contact."""
    tag = f"{KEY_PREFIX}:{{{contact_id}}}"
    return f"{tag}:state", f"{tag}:outbox"


def progress_key(group: str, topic: str) -> str:
    """Per partition of ``topic``, the next offset ``group`` has not yet applied."""
    return f"{KEY_PREFIX}:{{progress:{group}:{topic}}}"


#: Move partitions' applied positions forward, never back (a late writer loses).
_ADVANCE = """
for i = 1, #ARGV, 2 do
  local current = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '-1')
  if tonumber(ARGV[i + 1]) > current then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 1
"""


def board_key(namespace: str, score: str) -> str:
    """Contacts by their value of one score: the leaderboard, without scanning keys."""
    return f"{KEY_PREFIX}:{{board:{namespace}:{score}}}"


def due_key(namespace: str, partition: int) -> str:
    """Contacts of one partition by next expiry (ms): what the sweeper visits."""
    return f"{KEY_PREFIX}:{{due:{namespace}:{partition}}}"


#: What changing one contact did: changed at all, crossings, rules that awarded.
_Step = tuple[bool, list[Crossing], list[str]]


@dataclass(frozen=True, slots=True)
class _Call:
    """One contact's part of a write: see ``store.lua`` for the arguments."""

    contact_id: str
    version: str
    body: bytes  # empty: unchanged
    ttl: int
    alerts: list[bytes]
    next_expiry: int | None


@dataclass(frozen=True, slots=True)
class PendingAlert:
    """An alert recorded in a contact's outbox, not yet acknowledged by Kafka."""

    contact_id: str
    payload: bytes


def compact(state: ContactState, dedupe_ms: int) -> None:
    """Forget event ids older than the dedupe window behind the contact's clock."""
    if state.clock is None or len(state.seen) < 64:
        return
    horizon = state.clock - dedupe_ms
    state.seen = {eid: t for eid, t in state.seen.items() if t >= horizon}


class RedisStore:
    """Applies batches of events to contacts kept in Redis."""

    def __init__(
        self,
        client: aioredis.Redis,
        model: ScoringModel,
        ttl_seconds: int,
        dedupe_seconds: int = 30 * 86_400,
        namespace: str = "scorer.events",
        cluster: bool = False,
        cache_contacts: int = 10_000,
        metrics: Metrics | None = None,
    ) -> None:
        self._redis = client
        self.model = model
        self.namespace = namespace
        self.cluster = cluster
        self._ttl_ms = ttl_seconds * 1000
        self._dedupe_ms = dedupe_seconds * 1000
        source = resources.files("stream_scorer.worker").joinpath("store.lua").read_text()
        self._script: AsyncScript = client.register_script(source)
        self._read_script: AsyncScript = client.register_script(_READ_MANY)
        self._advance_script: AsyncScript = client.register_script(_ADVANCE)
        # States this worker wrote last, by contact: (version, state). Parsing a
        # state's JSON cost more than the rest of a contact's update together, and
        # a worker mostly sees the contacts of its own partitions. An entry is
        # used only while Redis still holds its version, and is taken out of the
        # cache while a batch changes it, so a failed write never leaves it behind.
        self._cache: dict[str, tuple[str, ContactState]] = {}
        self._cache_size = cache_contacts
        self.metrics = metrics

    @contextmanager
    def _timed(self, operation: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.metrics is not None:
                self.metrics.redis_seconds.labels(operation).observe(time.perf_counter() - start)

    def _decode(self, raw: bytes | None) -> ContactState:
        if raw is None:
            return ContactState()
        return ContactState.from_json(_json_decode(raw), self.model)

    def _slot_groups(self, contacts: Sequence[str]) -> dict[int, list[int]]:
        """Indexes of contacts that one script call may carry: one slot each on Cluster."""
        groups: dict[int, list[int]] = {}
        for i, cid in enumerate(contacts):
            groups.setdefault(key_slot(cid.encode()) if self.cluster else 0, []).append(i)
        return groups

    async def _read(self, contacts: Sequence[str]) -> list[tuple[str, ContactState]]:
        """Versions and states of contacts: one script call per slot group, one round trip.

        Takes the contacts' entries out of the cache: the caller puts back what it wrote.
        """
        held = [self._cache.pop(cid, None) for cid in contacts]
        groups = self._slot_groups(contacts)
        rows: list[Any] = [None] * len(contacts)
        async with self._redis.pipeline(transaction=False) as pipe:
            for members in groups.values():
                keys = [contact_keys(contacts[i])[0] for i in members]
                args = [(held[i] or ("",))[0] for i in members]
                await self._read_script(keys=keys, args=args, client=pipe)
            answers: list[Any] = await pipe.execute()
        for members, answer in zip(groups.values(), answers, strict=True):
            for i, row in zip(members, answer, strict=True):
                rows[i] = row
        out = []
        for row, entry in zip(rows, held, strict=True):
            version = (row[0] or b"0").decode()
            if entry is not None and row[1] is None and entry[0] == version:
                out.append((version, entry[1]))
            else:
                out.append((version, self._decode(row[1] or None)))
        return out

    def _remember(self, contact_id: str, version: str, state: ContactState) -> None:
        cache = self._cache
        cache[contact_id] = (version, state)
        if len(cache) > self._cache_size:
            del cache[next(iter(cache))]  # the least recently written

    def _ttl_for(self, state: ContactState) -> int:
        """Retention after the last thing that can still change: the latest award expiry."""
        latest = max((a.expires_at for a in state.awards if a.expires_at is not None), default=0)
        seen = max(state.clock or 0, state.swept or 0)
        return self._ttl_ms + max(0, latest - seen)

    async def apply_batch(
        self, events: Sequence[Event], partition_of: Mapping[str, int] | None = None
    ) -> list[PendingAlert]:
        """Apply events (in order per contact); return every touched contact's pending alerts.

        ``partition_of`` maps contacts to their events-topic partition, whose
        sweep index records each contact's next expiry.
        """
        by_contact: dict[str, list[Event]] = {}
        for event in events:
            by_contact.setdefault(event.contact_id, []).append(event)

        def step(state: ContactState, cid: str) -> _Step:
            changed = False
            crossings: list[Crossing] = []
            awarded: list[str] = []
            for event in by_contact[cid]:
                effects = apply_in_place(state, event, self.model)
                if not effects.duplicate:
                    changed = True
                crossings.extend(effects.crossings)
                awarded.extend(a.rule for a in effects.awards)
            return changed, crossings, awarded

        with self._timed("apply"):
            return await self._update(list(by_contact), step, partition_of or {})

    async def sweep(self, partition: int, now_ms: int, limit: int = 500) -> list[PendingAlert]:
        """Advance contacts of a partition whose next expiry is due; return pending alerts."""
        key = due_key(self.namespace, partition)
        due: list[bytes] = await self._redis.zrangebyscore(  # type: ignore[assignment]
            key, "-inf", now_ms, start=0, num=limit
        )
        if not due:
            return []
        contacts = [c.decode() for c in due]

        def step(state: ContactState, cid: str) -> _Step:
            if state.clock is None:  # gone (its keys expired): nothing to advance
                return False, [], []
            effects = advance_in_place(state, now_ms, self.model, cid)
            return True, list(effects.crossings), []

        with self._timed("sweep"):
            return await self._update(contacts, step, dict.fromkeys(contacts, partition))

    async def _write(self, calls: list[_Call]) -> list[Any]:
        """One script call per group of contacts (per slot on Cluster), one round trip."""
        groups = self._slot_groups([call.contact_id for call in calls])
        results: list[Any] = [None] * len(calls)
        async with self._redis.pipeline(transaction=False) as pipe:
            for members in groups.values():
                keys: list[str] = []
                args: list[str | bytes | int] = []
                for i in members:
                    call = calls[i]
                    keys.extend(contact_keys(call.contact_id))
                    args.extend([call.version, call.body, call.ttl, len(call.alerts), *call.alerts])
                await self._script(keys=keys, args=args, client=pipe)
            answers: list[Any] = await pipe.execute()
        for members, answer in zip(groups.values(), answers, strict=True):
            for i, result in zip(members, answer, strict=True):
                results[i] = result
        return results

    async def has_due(self, partition: int, now_ms: int) -> bool:
        key = due_key(self.namespace, partition)
        return bool(await self._redis.zcount(key, "-inf", now_ms))

    async def _update(
        self,
        contacts: list[str],
        step: Callable[[ContactState, str], _Step],
        partition_of: Mapping[str, int],
    ) -> list[PendingAlert]:
        """Read, change with ``step``, compare-and-set; retry contacts changed meanwhile."""
        pending: list[PendingAlert] = []
        todo = contacts
        for _ in range(MAX_CONFLICT_RETRIES):
            if not todo:
                return pending
            states = await self._read(todo)
            calls: list[_Call] = []
            effects: list[tuple[list[Crossing], list[str]]] = []
            for cid, (version, state) in zip(todo, states, strict=True):
                changed, crossings, awarded = step(state, cid)
                body = b""
                if changed:
                    compact(state, self._dedupe_ms)
                    body = _json_encode(state.to_json())
                alerts = [alert_payload(c, self.model) for c in crossings]
                calls.append(
                    _Call(cid, version, body, self._ttl_for(state), alerts, state.next_expiry())
                )
                effects.append((crossings, awarded))
            results = await self._write(calls)
            due: dict[int, dict[str, int]] = {}
            gone: dict[int, list[str]] = {}
            boards: dict[str, dict[str, int]] = {}
            conflicts: list[str] = []
            for call, result, (_, state), (crossings, awarded) in zip(
                calls, results, states, effects, strict=True
            ):
                cid, next_expiry = call.contact_id, call.next_expiry
                if result[0] == 0:
                    conflicts.append(cid)
                    continue
                if self.metrics is not None:
                    self.metrics.count(crossings, awarded)
                if state.clock is not None:
                    self._remember(cid, bytes(result[0]).decode(), state)
                    if call.body:
                        for name, value in state.values.items():
                            boards.setdefault(name, {})[cid] = value
                pending.extend(PendingAlert(cid, bytes(item)) for item in result[1:])
                partition = partition_of.get(cid)
                if partition is not None and next_expiry is not None:
                    due.setdefault(partition, {})[cid] = next_expiry
                elif partition is not None:
                    gone.setdefault(partition, []).append(cid)
            if due or gone or boards:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for partition, members in due.items():
                        pipe.zadd(due_key(self.namespace, partition), members)
                    for partition, cids in gone.items():
                        pipe.zrem(due_key(self.namespace, partition), *cids)
                    for name, scores in boards.items():
                        pipe.zadd(board_key(self.namespace, name), scores)
                    await pipe.execute()
            todo = conflicts
        raise ScorerError(f"{len(todo)} contacts kept changing under the worker; giving up")

    async def applied(self, group: str, topic: str) -> dict[int, int]:
        """The next offset to apply, per partition, as recorded after each finished batch."""
        key = progress_key(group, topic)
        raw: dict[bytes, bytes] = await self._redis.hgetall(key)  # type: ignore[assignment]
        return {int(p): int(o) for p, o in raw.items()}

    async def record_applied(self, group: str, topic: str, positions: Mapping[int, int]) -> None:
        """Record that every offset below ``positions[p]`` of partition ``p`` is applied."""
        if positions:
            args = [x for p, o in sorted(positions.items()) for x in (p, o)]
            await self._advance_script(keys=[progress_key(group, topic)], args=args)

    async def leaderboard(self, score: str, limit: int) -> list[tuple[str, ContactState]]:
        """The top contacts by ``score``, best first, with their states.

        Contacts whose keys expired since they were ranked are dropped from
        the board as they are met.
        """
        key = board_key(self.namespace, score)
        out: list[tuple[str, ContactState]] = []
        start = 0
        while len(out) < limit:
            ranked: list[bytes] = await self._redis.zrevrange(  # type: ignore[assignment]
                key, start, start + limit - 1
            )
            if not ranked:
                break
            start += len(ranked)
            cids = [raw.decode() for raw in ranked]
            async with self._redis.pipeline(transaction=False) as pipe:
                for cid in cids:
                    pipe.hget(contact_keys(cid)[0], "s")
                bodies: list[bytes | None] = await pipe.execute()
            gone = []
            for cid, body in zip(cids, bodies, strict=True):
                if body is None:
                    gone.append(cid)
                elif len(out) < limit:
                    out.append((cid, self._decode(body)))
            if gone:
                await self._redis.zrem(key, *gone)
                start -= len(gone)
        return out

    async def distribution(self, score: str, bins: Sequence[tuple[float, float]]) -> list[int]:
        """How many ranked contacts have ``score`` in each ``[low, high)`` bin (no scans).

        Contacts whose keys expired count until the leaderboard meets them.
        """
        key = board_key(self.namespace, score)
        async with self._redis.pipeline(transaction=False) as pipe:
            for low, high in bins:
                pipe.zcount(key, low, f"({high}")
            return [int(n) for n in await pipe.execute()]

    async def ping(self) -> bool:
        return bool(await self._redis.ping())

    async def mark_relayed(self, alerts: Sequence[PendingAlert]) -> None:
        """Drop alerts Kafka has acknowledged from their contacts' outboxes."""
        if not alerts:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for alert in alerts:
                pipe.lrem(contact_keys(alert.contact_id)[1], 1, alert.payload.decode())
            await pipe.execute()

    async def read_state(self, contact_id: str) -> ContactState | None:
        raw: bytes | None = await self._redis.hget(  # type: ignore[assignment]
            contact_keys(contact_id)[0], "s"
        )
        return None if raw is None else self._decode(raw)

    async def explain(self, contact_id: str) -> dict[str, ScoreExplanation] | None:
        state = await self.read_state(contact_id)
        return None if state is None else explain(state, self.model)
