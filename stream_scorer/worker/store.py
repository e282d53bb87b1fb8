"""Contact state in Redis: read, and written by one atomic compare-and-set per contact.

The store only stores; it never scores. :class:`~stream_scorer.worker.pipeline.Pipeline`
reads contacts' ``(version, state)`` here, runs the engine on them and
hands back the new states with their alert payloads. ``store.lua`` writes
each contact's new state and its alerts (into the contact's outbox) in one
atomic step, only if the contact was not written since it was read; a
contact changed meanwhile (a rebalance, two partitions) is reported as a
conflict for the pipeline to score again, never overwritten.

A write costs two round trips: the script call, then the indexes (the
sweeper's next-expiry index per partition, the leaderboard per score).
Alerts leave the outbox only once Kafka acknowledged them
(:meth:`RedisStore.mark_relayed`): a crash can duplicate an alert, never
lose one. A write hands back only the alerts it added, so an alert still
being relayed from the batch before is not published twice. Before a write
that adds alerts, the contact enters its partition's outbox index (one more
round trip, only then): whatever a crash or a failed batch leaves in an
outbox is found there without a scan and relayed by the recovery
(:meth:`~stream_scorer.worker.relay.Relay.recover`). The store also records
the consumer's applied positions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, NamedTuple

from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.crc import key_slot
from redis.exceptions import NoScriptError, ResponseError

from stream_scorer.connections.redis import RedisClient
from stream_scorer.scoring import ContactState, ScoringModel
from stream_scorer.scoring.codec import (
    APPEND,
    FORMAT,
    LOG_ABOVE,
    REPLACE,
    StateFormatError,
    decode_state,
    encode_write,
    rewrite_log,
)
from stream_scorer.scoring.model.spec import MAX_DURATION_MS
from stream_scorer.worker.keys import (
    board_key,
    contact_keys,
    due_key,
    outbox_index_key,
    progress_key,
)
from stream_scorer.worker.retry import TryAgain

log = logging.getLogger(__name__)

#: store.lua's refusals (ints; a write answers its new version): another version than
#: expected (a conflict); the log to append to is not the one written (written again
#: whole); and Redis gone back: the contact expected is gone (expired, or lost), or
#: Redis holds an older version than the one expected (lost); and the contact's keys
#: damaged (another type, a version that is no whole number below 2**53).
CONFLICT, STALE_LOG, GONE, GONE_BACK, DAMAGED = 0, -1, -2, -3, -4
#: What the store answers for a contact whose keys no worker left so (see store.lua).
_DAMAGED_KEYS = "a key of the contact holds another Redis type than the worker writes"
_DAMAGED_VERSION = "a stored version that is not a whole number below 2**53 - 1"
#: How far before its computed expiry a contact found gone still counts as lost: the
#: TTL was set on Redis's clock a round trip after this machine's.
_EXPIRY_SLACK_MS = 5_000

#: Read many contacts' (version, state, log) in one call; KEYS: state and log, per
#: contact. A key of another type (WRONGTYPE) answers the version ``!``, that
#: contact's alone; any other error fails the call, as every error did before.
_READ_MANY = """
local out = {}
for i = 1, #KEYS / 2 do
  local row = redis.pcall('HMGET', KEYS[2 * i - 1], 'v', 's')
  local logged = redis.pcall('GET', KEYS[2 * i])  -- a string or false, a table if refused
  local refused = row.err and row or (type(logged) == 'table' and logged)
  if refused then
    if string.sub(refused.err, 1, 9) ~= 'WRONGTYPE' then
      error(refused)
    end
    out[i] = {'!', false, false}
  else
    row[3] = logged
    out[i] = row
  end
end
return out
"""

#: Move partitions' applied positions forward, never back (a late writer loses).
_ADVANCE = """
for i = 1, #ARGV, 2 do
  local raw = redis.call('HGET', KEYS[1], ARGV[i])
  local current = -1  -- none, or damaged (as applied() reads it): written again
  if raw and string.find(raw, '^%d+$') and #raw < 19 then
    current = tonumber(raw)
  end
  if tonumber(ARGV[i + 1]) > current then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 1
"""

#: Take contacts out of an outbox index, each only if its entry is still the one
#: read (a write since then added alerts and a newer entry: it stays).
_UNINDEX = """
for i = 1, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return 1
"""

#: Set partitions' applied positions, back included (a position found beyond
#: the partition's end is reset).
_RESET = """
for i = 1, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
return 1
"""


class Change(NamedTuple):
    """One contact's part of a write: the state as read, changed by the engine.

    A named tuple: one is made per contact written, and a frozen dataclass
    cost more to make than the rest of the contact's bookkeeping.
    """

    contact_id: str
    #: The version read: the write happens only if Redis still holds it.
    version: str
    state: ContactState
    #: False when the engine changed nothing (duplicates only): the state is not sent.
    changed: bool
    #: Alert payloads the change produced, in the order the engine crossed.
    alerts: list[bytes]
    #: The events-topic partition whose next-expiry index holds the contact, if any.
    partition: int | None


@dataclass(frozen=True, slots=True)
class PendingAlert:
    """An alert recorded in a contact's outbox, not yet acknowledged by Kafka."""

    contact_id: str
    payload: bytes


#: Per contact written, the alerts its write added (for the relay); None: a conflict;
#: the error: its keys are damaged (that contact fails alone).
Outcome = list[PendingAlert] | StateFormatError | None


def compact(state: ContactState, dedupe_ms: int, max_ids: int | None) -> None:
    """Forget event ids older than the dedupe window, and the oldest past ``max_ids``.

    By age once there are 64 or more: the leading ids older than the window
    (ids arrive mostly in time order, so one look per write tells whether
    there are any), forgotten in place so that the codec's memo follows. By
    count once more than a quarter over ``max_ids`` (so a sort is paid once
    per ``max_ids / 4`` new ids): down to ``max_ids``, the oldest by event
    time first, and ``forgot_until`` moves up to the newest time forgotten,
    which the pipeline refuses as too old.
    """
    clock = state.clock
    seen = state.seen
    if clock is None:
        return
    if len(seen) >= 64:  # a few: not worth a look
        horizon = clock - dedupe_ms
        old = 0
        for t in seen.values():
            if t >= horizon:
                break
            old += 1
        if old:
            state.forget_first(old)
    if max_ids is not None:
        excess = len(state.seen) - max_ids
        if excess > max_ids // 4:
            state.forget_oldest(excess)


def _damage(version: bytes | None) -> StateFormatError | None:
    """Why a contact's keys, as read, are not as a worker leaves them (None: they are).

    A version is a whole number below 2**53 (Lua's numbers are doubles); the
    read answers ``!`` for a key of another type.
    """
    if version is None:
        return None
    if version == b"!":
        return StateFormatError(_DAMAGED_KEYS)
    if not version.isdigit() or len(version) > 16 or int(version) >= 2**53 - 1:
        return StateFormatError(_DAMAGED_VERSION)  # (bytes.isdigit: ASCII digits only)
    return None


def _wrongtype(error: Exception) -> bool:
    """Whether Redis refused a command for a key of another type (damaged, not away)."""
    return isinstance(error, ResponseError) and str(error).startswith("WRONGTYPE")


def _index_refusals(results: Sequence[Any], index: str) -> None:
    """Log what an index refused for holding another type (damaged by hand): the
    contacts are written, and their next write sets their entries again. Any
    other error (Redis away, out of memory, a failover) is raised: the batch is
    tried again, and sets the indexes."""
    errors = [r for r in results if isinstance(r, Exception)]
    for error in errors:
        if not _wrongtype(error):
            raise error
    if errors:
        log.error("an index refused entries: index=%s count=%d error=WRONGTYPE", index, len(errors))


def _state_and_log(contact_id: str) -> tuple[str, str]:
    state, _, log = contact_keys(contact_id)
    return state, log


class RedisStore:
    """Contacts' states, their outboxes and the indexes over them, in Redis."""

    def __init__(
        self,
        client: RedisClient,
        model: ScoringModel,
        ttl_seconds: int,
        dedupe_seconds: int = 30 * 86_400,
        namespace: str = "scorer.events",
        dedupe_max_ids: int = 10_000,
        log_above: int = LOG_ABOVE,
        cache_contacts: int = 10_000,
        state_format: int = FORMAT,
        on_lost: Callable[[int], None] | None = None,
    ) -> None:
        self._redis = client
        # A cluster takes a script call's keys from one slot only: one call per contact's slot.
        self._cluster = isinstance(client, RedisCluster)
        self._format = state_format  # what writes use; reads take every format
        self.model = model  # states are read back into the model's rules and scores
        self.namespace = namespace
        self._ttl_ms = ttl_seconds * 1000
        self._dedupe_ms = dedupe_seconds * 1000
        self._dedupe_max_ids = dedupe_max_ids
        self._log_above = log_above
        source = resources.files("stream_scorer.worker").joinpath("store.lua").read_text()
        self._script: AsyncScript = client.register_script(source)
        self._read_script: AsyncScript = client.register_script(_READ_MANY)
        self._advance_script: AsyncScript = client.register_script(_ADVANCE)
        self._reset_script: AsyncScript = client.register_script(_RESET)
        self._unindex_script: AsyncScript = client.register_script(_UNINDEX)
        # States this worker wrote last, by contact: (version, state). Decoding a
        # state cost more than the rest of a contact's update together, and a
        # worker mostly sees the contacts of its own partitions. An entry is
        # scored without asking Redis; its write compares the version, so one
        # Redis no longer holds is never written (a conflict: read, scored again).
        # A read takes the entry out of the cache, so a failed write never leaves
        # a changed state behind. The third value is when Redis expires the keys
        # (ms of time.monotonic; None: not known).
        self._cache: dict[str, tuple[str, ContactState, int | None]] = {}
        self._cache_size = cache_contacts
        # Expiries of the entries read took out of the cache, until their write: a
        # contact written here that Redis no longer holds before then was lost.
        self._taken: dict[str, int | None] = {}
        self._on_lost = on_lost

    @property
    def dedupe_ms(self) -> int:
        """How far behind a contact's newest event its event ids are remembered."""
        return self._dedupe_ms

    def _decode(self, raw: bytes | None, log: bytes | None) -> ContactState:
        state = ContactState() if raw is None else decode_state(raw, self.model, log)
        if self._format >= 3:
            state.seen_ids = None  # only an older release's formats need the ids themselves
        elif state.seen_ids is None:
            state.seen_ids = {}  # written for an older release: keep the ids it matches
        return state

    async def read(
        self, contacts: Sequence[str]
    ) -> list[tuple[str, ContactState | StateFormatError]]:
        """Versions (``"0"``: none yet) and states of contacts; Redis only for those not held.

        A contact this worker wrote last is taken from memory with the
        version it wrote, with no round trip: the write's compare-and-set
        checks that version, so a contact written since by anyone else (a
        rebalance, a zombie) is a conflict, read again from Redis. The others
        are read in one round trip. A state that cannot be read (a newer
        release's format, a damaged value) comes back as the error, for that
        contact alone. Takes the contacts' entries out of the cache:
        :meth:`write` puts back what it wrote.
        """
        held = [self._cache.pop(cid, None) for cid in contacts]
        taken = self._taken
        missing = []
        for cid, entry in zip(contacts, held, strict=True):
            if entry is None:
                missing.append(cid)
                taken.pop(cid, None)
            else:
                taken[cid] = entry[2]
        fetched = iter(await self._fetch(missing) if missing else [])
        out: list[tuple[str, ContactState | StateFormatError]] = []
        for entry in held:
            if entry is not None:
                out.append((entry[0], entry[1]))
                continue
            row = next(fetched)
            damage = _damage(row[0])
            if damage is not None:  # this contact fails, not the call that holds the batch
                out.append(("0", damage))
                continue
            version = (row[0] or b"0").decode()
            try:
                out.append((version, self._decode(row[1] or None, row[2] or None)))
            except StateFormatError as exc:
                out.append((version, exc))
        return out

    async def _fetch(self, contacts: Sequence[str]) -> list[Any]:
        """Per contact, its version, stored state and log as Redis holds them (None: none)."""
        keys = [k for cid in contacts for k in _state_and_log(cid)]
        if self._cluster:
            return await self._per_slot(self._read_script, keys, [], 2, [0] * len(contacts))
        rows: list[Any] = await self._read_script(keys=keys)
        return rows

    async def _per_slot(
        self,
        script: AsyncScript,
        keys: list[str],
        args: Sequence[str | bytes | int],
        keys_each: int,
        arg_starts: Sequence[int],
    ) -> list[Any]:
        """``script`` over contacts on a Redis Cluster: one call per slot, one pipeline.

        Contact ``i`` owns ``keys[keys_each * i:][:keys_each]`` and the
        arguments from ``arg_starts[i]`` to the next contact's; the script
        answers one value per contact. The cluster pipeline sends each
        node its calls in one round trip. A node that lost its scripts (a
        restart, a failover) answers NOSCRIPT, which ran nothing: the
        script is loaded and those calls are sent again.
        """
        count = len(arg_starts)
        ends = [*arg_starts[1:], len(args)]
        by_slot: dict[int, list[int]] = {}
        for i in range(count):
            by_slot.setdefault(key_slot(keys[keys_each * i].encode()), []).append(i)
        out: list[Any] = [None] * count
        todo = list(by_slot.values())
        for _ in range(3):
            async with self._redis.pipeline() as pipe:
                for group in todo:
                    call_keys = [
                        k for i in group for k in keys[keys_each * i : keys_each * (i + 1)]
                    ]
                    call_args = [a for i in group for a in args[arg_starts[i] : ends[i]]]
                    pipe.execute_command(
                        "EVALSHA", script.sha, len(call_keys), *call_keys, *call_args
                    )
                results = await pipe.execute(raise_on_error=False)
            again = []
            for group, result in zip(todo, results, strict=True):
                if isinstance(result, NoScriptError):
                    again.append(group)
                elif isinstance(result, Exception):
                    raise result
                else:
                    for i, value in zip(group, result, strict=True):
                        out[i] = value
            if not again:
                return out
            await self._redis.script_load(script.script)  # on every primary
            todo = again
        # A node that keeps answering NOSCRIPT (a failover the slot map has not
        # caught up with): nothing ran; the caller's retry sends the batch again.
        raise TryAgain("a cluster node keeps losing the scorer's scripts")

    def forget_held(self) -> None:
        """Drop the states held in memory: on a rebalance, when partitions move.

        Another worker may write them meanwhile, and Redis may expire them
        sooner than this worker's last write said: held, such a contact
        would look lost to :meth:`write` when its partition comes back.
        """
        self._cache.clear()
        self._taken.clear()

    def _remember(
        self, contact_id: str, version: str, state: ContactState, expires: int | None
    ) -> None:
        cache = self._cache
        cache[contact_id] = (version, state, expires)
        if len(cache) > self._cache_size:
            del cache[next(iter(cache))]  # the least recently written

    def _ttl_for(self, state: ContactState) -> int:
        """Retention after the last thing that can still change: the latest award expiry."""
        latest = state.latest_expiry() or 0
        seen = max(state.clock or 0, state.swept or 0)
        # The horizon at most a model's longest duration: a state damaged by hand (an
        # expiry near 2**63) would make PEXPIRE refuse.
        return self._ttl_ms + min(max(0, latest - seen), MAX_DURATION_MS)

    async def write(self, changes: Sequence[Change]) -> list[Outcome]:
        """Compare-and-set contacts' states with their alerts, one atomic step per contact.

        Per change, in order: the alerts this write added to the contact's
        outbox, or None on a conflict (the contact was written since it was
        read; nothing of the change is kept), or a :class:`StateFormatError`
        when its keys are damaged (nothing is kept; it fails alone). Event ids outside the dedupe
        window, or past its count, are forgotten (see :func:`compact`)
        before a state is written. The indexes follow with :meth:`index`.
        """
        await self._index_outboxes(changes)
        # The count bound is this release's: while states are written for an older
        # release (which has none and drops forgot_until), ids are forgotten by age only.
        max_ids = self._dedupe_max_ids if self._format >= 3 else None
        ttls = []
        for change in changes:
            if change.changed:
                compact(change.state, self._dedupe_ms, max_ids)
                ttls.append(self._ttl_for(change.state))
            else:
                ttls.append(0)  # nothing changed: only the version is compared
        now = time.monotonic_ns() // 1_000_000  # a step of the wall clock is no loss
        results = await self._compare_and_set(changes, ttls)
        retry = [i for i, result in enumerate(results) if result == STALE_LOG]
        if retry:
            # Its log is not the one this worker wrote (deleted or evicted on its own),
            # but the version matched: the state held here is the truth, log and all.
            for i in retry:
                rewrite_log(changes[i].state)
            again = await self._compare_and_set(
                [changes[i] for i in retry], [ttls[i] for i in retry]
            )
            for i, result in zip(retry, again, strict=True):
                results[i] = result

        outcomes: list[Outcome] = []
        lost = 0
        taken = self._taken
        for change, result, ttl in zip(changes, results, ttls, strict=True):
            cid, state = change.contact_id, change.state
            expires = taken.pop(cid, None)
            if result == DAMAGED:
                outcomes.append(StateFormatError(_DAMAGED_KEYS + ", or " + _DAMAGED_VERSION))
                continue
            if isinstance(result, int):  # refused: read again and scored again
                if result == GONE_BACK or (
                    result == GONE and expires is not None and now < expires - _EXPIRY_SLACK_MS
                ):
                    lost += 1
                outcomes.append(None)
                continue
            if state.clock is not None:
                self._remember(cid, bytes(result).decode(), state, now + ttl if ttl else expires)
            alerts = change.alerts if change.changed else []
            outcomes.append([PendingAlert(cid, payload) for payload in alerts])
        if lost:
            log.warning(
                "contacts this worker wrote are gone from Redis before their expiry, or older "
                "there than it wrote them: Redis lost writes it had acknowledged (a failover, "
                "a restart that did not reload them, eviction, a flush); scored again from "
                "what Redis holds: contacts=%d",
                lost,
            )
            if self._on_lost is not None:
                self._on_lost(lost)
        return outcomes

    async def _compare_and_set(self, changes: Sequence[Change], ttls: Sequence[int]) -> list[Any]:
        """One call of store.lua for ``changes`` (``ttls``: their keys' TTLs in ms, 0 for a
        change that changed nothing): per change, the version now held, or a refusal (an
        int: see store.lua)."""
        keys: list[str] = []
        args: list[str | bytes | int] = []
        starts: list[int] = []
        for change, ttl in zip(changes, ttls, strict=True):
            starts.append(len(args))
            body, logged = b"", b""  # nothing changed: only the version is compared
            if change.changed:
                body, op, log, size = encode_write(change.state, self._format, self._log_above)
                if op == APPEND:
                    logged = b"+%d:%b" % (size, log)
                elif op == REPLACE:
                    logged = b"=" + log
            keys.extend(contact_keys(change.contact_id))
            args.extend([change.version, body, ttl, logged, len(change.alerts), *change.alerts])
        if self._cluster:
            return await self._per_slot(self._script, keys, args, 3, starts)
        results: list[Any] = await self._script(keys=keys, args=args)
        return results

    async def _index_outboxes(self, changes: Sequence[Change]) -> None:
        """Enter contacts about to get alerts in their partitions' outbox indexes.

        Before the write, so that no crash leaves an alert in an outbox that
        no index names; an entry whose write then fails names an empty
        outbox, which the recovery drops.
        """
        entries: dict[int, dict[str, int]] = {}
        stamp = time.time_ns() // 1000
        for change in changes:
            if change.alerts and change.changed and change.partition is not None:
                entries.setdefault(change.partition, {})[change.contact_id] = stamp
        if entries:
            async with self._redis.pipeline(transaction=False) as pipe:
                for partition, members in entries.items():
                    pipe.zadd(outbox_index_key(self.namespace, partition), members)
                _index_refusals(await pipe.execute(raise_on_error=False), "outbox")

    async def stranded(self, partition: int, before_us: int, limit: int) -> list[tuple[str, float]]:
        """Contacts entered in a partition's outbox index before ``before_us``, with entries."""
        key = outbox_index_key(self.namespace, partition)
        found: list[tuple[bytes, float]] = await self._redis.zrangebyscore(  # type: ignore[assignment]
            key,
            "-inf",
            before_us,
            start=0,
            num=limit,
            withscores=True,
        )
        members = await self._contact_ids(key, [cid for cid, _ in found])
        return [(cid, f[1]) for cid, f in zip(members, found, strict=True) if cid is not None]

    async def _contact_ids(self, key: str, members: list[bytes]) -> list[str | None]:
        """An index's members as contact ids; one not UTF-8 is none (None), taken out of it.

        No worker writes one: a member damaged by hand would otherwise stop
        the recovery or the sweep of its partition, tick after tick.
        """
        try:
            return [m.decode() for m in members]
        except UnicodeDecodeError:
            out: list[str | None] = []
            for m in members:
                try:
                    out.append(m.decode())
                except UnicodeDecodeError:
                    out.append(None)
            bad = [m for m, cid in zip(members, out, strict=True) if cid is None]
            log.warning("members that are not contact ids removed: key=%s count=%d", key, len(bad))
            await self._redis.zrem(key, *bad)
            return out

    async def outboxes(self, contacts: Sequence[str]) -> list[list[bytes]]:
        """The alerts in each contact's outbox, oldest first."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for cid in contacts:
                pipe.lrange(contact_keys(cid)[1], 0, -1)
            rows: list[list[bytes] | Exception] = await pipe.execute(raise_on_error=False)
        errors = [row for row in rows if isinstance(row, Exception)]
        for error in errors:
            if not _wrongtype(error):
                raise error  # Redis away: the recovery is tried again, the entry kept
        if errors:
            # An outbox of another type (damaged by hand; its contact's writes are refused):
            # empty here, so that its entry leaves the index instead of stopping the recovery.
            log.warning("outboxes that are not lists: count=%d", len(errors))
        return [row if isinstance(row, list) else [] for row in rows]

    async def outbox_entries(self, partition: int, contacts: Sequence[str]) -> list[float | None]:
        """The contacts' entries in a partition's outbox index now (None: not there)."""
        key = outbox_index_key(self.namespace, partition)
        scores: list[float | None] = await self._redis.zmscore(key, list(contacts))
        return scores

    async def unindex_outboxes(self, partition: int, entries: Sequence[tuple[str, float]]) -> None:
        """Take relayed contacts out of the outbox index, unless written again since."""
        if entries:
            args = [x for cid, score in entries for x in (cid, repr(score))]
            keys = [outbox_index_key(self.namespace, partition)]
            await self._unindex_script(keys=keys, args=args)

    async def index(self, changes: Sequence[Change], outcomes: Sequence[Outcome]) -> None:
        """Record written contacts in the due-expiry and leaderboard indexes.

        Not in the contacts' atomic step (an index spans contacts, so slots):
        the next write of a contact, or a replay of its batch, sets it again.
        """
        due: dict[int, dict[str, int]] = {}
        gone: dict[int, list[str]] = {}
        boards: dict[str, dict[str, int]] = {}
        outboxes: dict[int, dict[str, int]] = {}
        stamp = time.time_ns() // 1000
        for change, outcome in zip(changes, outcomes, strict=True):
            if not isinstance(outcome, list):  # not written
                continue
            cid, state = change.contact_id, change.state
            if outcome and change.partition is not None:
                # Entered again after the write: a recovery that read the entry made
                # before the write, and found the outbox still empty, cannot take it out.
                outboxes.setdefault(change.partition, {})[cid] = stamp
            if state.clock is not None and change.changed:
                for name, value in state.values.items():
                    boards.setdefault(name, {})[cid] = value
            next_expiry = state.next_expiry()
            if change.partition is not None and next_expiry is not None:
                due.setdefault(change.partition, {})[cid] = next_expiry
            elif change.partition is not None:
                gone.setdefault(change.partition, []).append(cid)
        if due or gone or boards or outboxes:
            async with self._redis.pipeline(transaction=False) as pipe:
                for partition, members in outboxes.items():
                    pipe.zadd(outbox_index_key(self.namespace, partition), members)
                for partition, members in due.items():
                    pipe.zadd(due_key(self.namespace, partition), members)
                for partition, cids in gone.items():
                    pipe.zrem(due_key(self.namespace, partition), *cids)
                for name, scores in boards.items():
                    pipe.zadd(board_key(self.namespace, name), scores)
                _index_refusals(await pipe.execute(raise_on_error=False), "expiry or leaderboard")

    async def due(self, partition: int, now_ms: int, limit: int) -> list[str]:
        """Up to ``limit`` contacts of a partition whose next expiry is at or before now."""
        key = due_key(self.namespace, partition)
        found: list[bytes] = await self._redis.zrangebyscore(  # type: ignore[assignment]
            key, "-inf", now_ms, start=0, num=limit
        )
        return [cid for cid in await self._contact_ids(key, found) if cid is not None]

    async def forget_due(self, partition: int, contacts: Sequence[str]) -> None:
        """Take contacts out of a partition's expiry index (their next write puts them back)."""
        if contacts:
            await self._redis.zrem(due_key(self.namespace, partition), *contacts)

    async def has_due(self, partition: int, now_ms: int) -> bool:
        key = due_key(self.namespace, partition)
        return bool(await self._redis.zcount(key, "-inf", now_ms))

    async def mark_relayed(self, alerts: Sequence[PendingAlert]) -> None:
        """Drop alerts Kafka has acknowledged from their contacts' outboxes."""
        if not alerts:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for alert in alerts:
                # The bytes as read (redis-py sends bytes as they are; its stub says str).
                pipe.lrem(contact_keys(alert.contact_id)[1], 1, alert.payload)  # type: ignore[arg-type]
            await pipe.execute()

    async def applied(self, group: str, topic: str) -> dict[int, int]:
        """The next offset to apply, per partition, as recorded after each finished batch."""
        key = progress_key(group, topic)
        raw: dict[bytes, bytes] = await self._redis.hgetall(key)  # type: ignore[assignment]
        out = {}
        for p, o in raw.items():
            if p.isdigit() and o.isdigit() and len(p) < 10 and len(o) < 19:
                out[int(p)] = int(o)
            else:  # damaged by hand: as if not recorded (the committed offset counts)
                log.warning("an applied position that is not a position, ignored: key=%s", key)
        return out

    async def record_applied(self, group: str, topic: str, positions: Mapping[int, int]) -> None:
        """Record that every offset below ``positions[p]`` of partition ``p`` is applied."""
        if positions:
            args = [x for p, o in sorted(positions.items()) for x in (p, o)]
            await self._advance_script(keys=[progress_key(group, topic)], args=args)

    async def reset_applied(self, group: str, topic: str, positions: Mapping[int, int]) -> None:
        """Set partitions' applied positions, moving them back if need be."""
        if positions:
            args = [x for p, o in sorted(positions.items()) for x in (p, o)]
            await self._reset_script(keys=[progress_key(group, topic)], args=args)

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
            members = await self._contact_ids(key, ranked)
            cids = [cid for cid in members if cid is not None]
            start -= len(ranked) - len(cids)  # taken out of the board
            rows = await self._fetch(cids)  # a state and its log as one write left them
            gone = []
            for cid, (version, body, logged) in zip(cids, rows, strict=True):
                damage = _damage(version)
                if damage is not None:  # skipped, kept: ranked again once repaired
                    log.warning("a ranked contact's state cannot be read: %s", damage)
                elif body is None:
                    gone.append(cid)
                elif len(out) < limit:
                    try:
                        out.append((cid, self._decode(body, logged)))
                    except StateFormatError as exc:  # not ranked; its own writes report it
                        log.warning("a ranked contact's state cannot be read: %s", exc)
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

    async def read_state(self, contact_id: str) -> ContactState | None:
        """A contact's state as Redis holds it now (not from the cache); None if unknown."""
        ((version, body, logged),) = await self._fetch([contact_id])
        damage = _damage(version)
        if damage is not None:
            raise damage
        return None if body is None else self._decode(body, logged)

    async def ping(self) -> bool:
        return bool(await self._redis.ping())
