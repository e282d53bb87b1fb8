"""A failure while scoring one contact affects only that contact.

The engine is made to raise for one contact (fault injection: the engine
itself does not fail on any input the decoder accepts, which
tests/test_decoding_total.py shows), or its keys in Redis are damaged (by
hand, or by another tool); Kafka and Redis are real.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from stream_scorer.connections.redis import WORKER_ACL_RULES
from stream_scorer.errors import StateFormatError
from stream_scorer.events import Event
from stream_scorer.scoring import load_model, replay
from stream_scorer.scoring.codec import decode_state, encode_state
from stream_scorer.scoring.model.spec import MAX_DURATION_MS
from stream_scorer.settings import Settings
from stream_scorer.worker import pipeline as pipeline_module
from stream_scorer.worker.keys import (
    board_key,
    contact_keys,
    due_key,
    outbox_index_key,
    progress_key,
)
from stream_scorer.worker.metrics import Metrics
from stream_scorer.worker.pipeline import Message, Pipeline
from stream_scorer.worker.relay import Relay
from stream_scorer.worker.store import Change, PendingAlert, RedisStore
from stream_scorer.worker.sweeper import Sweeper

from ..support.scenario import make_stream
from ..support.services import Services
from ..support.workers import unique_settings

pytestmark = pytest.mark.integration

MODEL = load_model("config/scoring.yaml")
BAD = "c-003"


def failing_for(contact: str, real: object) -> object:
    def engine(state: object, *args: object) -> object:
        if (args and getattr(args[0], "contact_id", None) == contact) or contact in args:
            raise OverflowError("injected")
        return real(state, *args)  # type: ignore[operator]

    return engine


#: Dead letters a test's pipeline sent: ``(value, headers)``.
DeadLetters = list[tuple[bytes | None, dict[str, bytes]]]


def collecting_pipeline(settings: Settings, store: RedisStore) -> tuple[Pipeline, DeadLetters]:
    """A pipeline whose dead letters are kept in the list returned, acknowledged at once."""
    dead: DeadLetters = []

    async def dead_letter(
        key: bytes | None, value: bytes | None, headers: dict[str, bytes]
    ) -> asyncio.Future[None]:
        dead.append((value, headers))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    return Pipeline(settings, MODEL, store, dead_letter, Metrics()), dead


def assert_dead_lettered(dead: DeadLetters, event_ids: Iterable[str], detail: bytes) -> None:
    """The dead letters are exactly these events, each an internal error with ``detail``."""
    assert sorted(json.loads(v or b"")["event_id"] for v, _ in dead) == sorted(event_ids)
    assert {h["reason"] for _, h in dead} == {b"internal_error"}
    assert {h["detail"] for _, h in dead} == {detail}


async def assert_scored_as_replay(
    store: RedisStore, events: list[Event], without: str | None = BAD
) -> None:
    """Every contact of ``events`` but ``without`` is stored as the engine replays it."""
    expected, _ = replay([e for e in events if e.contact_id != without], MODEL)
    for cid, state in expected.items():
        got = await store.read_state(cid)
        assert got is not None
        assert got.to_json() == state.to_json(), cid


def on_partition_0(settings: Settings, events: list[Event]) -> list[Message]:
    """Events as the worker's raw messages of partition 0, in order."""
    return [
        (e.contact_id.encode(), e.model_dump_json().encode(), settings.events_topic, 0, i, [])
        for i, e in enumerate(events)
    ]


@pytest.fixture
async def fresh(
    services: Services, tmp_path: Path, redis_client: aioredis.Redis
) -> tuple[Settings, RedisStore]:
    """Unique topics and a store on an empty Redis (other tests use the same contact ids)."""
    await redis_client.flushdb()
    settings, _ = unique_settings(services, tmp_path)
    return settings, RedisStore(
        redis_client, MODEL, ttl_seconds=3600, namespace=settings.events_topic
    )


async def test_an_engine_failure_dead_letters_that_contacts_events_only(
    fresh: tuple[Settings, RedisStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, store = fresh
    pipeline, dead = collecting_pipeline(settings, store)
    events = [e for e in make_stream(MODEL, 8, 300, seed=5) if e.type in MODEL.event_types]
    assert BAD in {e.contact_id for e in events}
    messages = on_partition_0(settings, events)
    monkeypatch.setattr(
        pipeline_module, "apply_in_place", failing_for(BAD, pipeline_module.apply_in_place)
    )
    await pipeline.run(messages)

    bad_events = [e for e in events if e.contact_id == BAD]
    assert_dead_lettered(dead, (e.event_id for e in bad_events), b"OverflowError")
    assert await store.read_state(BAD) is None, "nothing of the failed contact was written"
    await assert_scored_as_replay(store, events)


async def test_a_sweep_failure_for_one_contact_leaves_the_others_swept(
    fresh: tuple[Settings, RedisStore],
    redis_client: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings, store = fresh

    async def no_dead_letters(*args: object) -> None:
        raise AssertionError("valid events are never dead-lettered")

    metrics = Metrics()
    pipeline = Pipeline(settings, MODEL, store, no_dead_letters, metrics)
    sent: list[bytes] = []

    async def send_alert(key: bytes, value: bytes) -> asyncio.Future[None]:
        sent.append(value)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    relay = Relay(store, send_alert, metrics, 1.0)
    sweeper = Sweeper(store, pipeline, relay, 1.0)
    events: list[Event] = [
        e for e in make_stream(MODEL, 8, 300, seed=6) if e.type in MODEL.event_types
    ]  # dated 2026-09 onwards: every award with an expiry is due by 2100
    applied = await pipeline.apply(events, dict.fromkeys({e.contact_id for e in events}, 0))
    await relay.publish(applied.pending)
    due = {c.decode() for c in await redis_client.zrange(due_key(store.namespace, 0), 0, -1)}
    assert BAD in due
    assert len(due) > 1
    monkeypatch.setattr(
        pipeline_module, "advance_in_place", failing_for(BAD, pipeline_module.advance_in_place)
    )
    monkeypatch.setattr("stream_scorer.worker.sweeper.now_ms", lambda: 4_102_444_800_000)
    await sweeper.sweep([0])
    left = {c.decode() for c in await redis_client.zrange(due_key(store.namespace, 0), 0, -1)}
    assert left == set(), "swept contacts leave the index; the failed one is taken out"
    for cid in due - {BAD}:
        state = await store.read_state(cid)
        assert state is not None
        assert state.swept == 4_102_444_800_000, cid
    bad_state = await store.read_state(BAD)
    assert bad_state is not None
    assert bad_state.swept != 4_102_444_800_000, "nothing of the failed contact was written"
    assert b'scorer_sweep_failures_total{scope="contact"} 1.0' in metrics.render()


async def test_a_gathered_batch_goes_to_redis_in_chunks_and_a_failed_chunk_affects_its_own(
    fresh: tuple[Settings, RedisStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A reordering grace gathers many batches; Redis still gets at most
    # SCORER_BATCH_MAX_EVENTS at once, whole contacts, and a write refused for
    # good dead-letters only the contacts of that chunk.
    settings, store = fresh
    settings = settings.model_copy(update={"batch_max_events": 40})
    pipeline, dead = collecting_pipeline(settings, store)
    events = [e for e in make_stream(MODEL, 8, 300, seed=5) if e.type in MODEL.event_types]
    messages = on_partition_0(settings, events)
    sizes: list[set[str]] = []
    real_apply, real_write = pipeline.apply, store.write

    async def apply(events: list[Event], *args: object) -> object:
        sizes.append({e.contact_id for e in events})
        assert len(events) <= 40 or len(sizes[-1]) == 1, "a chunk over the batch size"
        return await real_apply(events, *args)  # type: ignore[arg-type]

    async def write(changes: list[object]) -> object:
        if any(getattr(c, "contact_id", None) == BAD for c in changes):
            raise ResponseError("ERR injected: the script refused this write")
        return await real_write(changes)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "apply", apply)
    monkeypatch.setattr(store, "write", write)
    await pipeline.score(pipeline.decode(messages), in_event_time=True)

    assert len(sizes) > 1, "the batch went to Redis in one piece"
    (failed_chunk,) = [chunk for chunk in sizes if BAD in chunk]
    lost = [e for e in events if e.contact_id in failed_chunk]
    assert_dead_lettered(dead, (e.event_id for e in lost), b"ResponseError")
    written = sorted({e.contact_id for e in events} - failed_chunk)
    assert written, "the other chunks' contacts are written"
    expected, _ = replay(
        sorted((e for e in events if e.contact_id in written), key=lambda e: e.occurred_at), MODEL
    )
    for cid in written:
        got = await store.read_state(cid)
        assert got is not None
        assert got.to_json() == expected[cid].to_json(), cid


async def test_a_state_that_cannot_be_read_affects_that_contact_only(
    fresh: tuple[Settings, RedisStore], redis_client: aioredis.Redis
) -> None:
    # A state in a newer release's format (after a downgrade), or a damaged value.
    settings, store = fresh
    await redis_client.hset(contact_keys(BAD)[0], mapping={"v": "7", "s": b"\x09future"})
    pipeline, dead = collecting_pipeline(settings, store)
    events = [e for e in make_stream(MODEL, 8, 300, seed=5) if e.type in MODEL.event_types]
    messages = on_partition_0(settings, events)
    await pipeline.run(messages)

    assert_dead_lettered(
        dead, (e.event_id for e in events if e.contact_id == BAD), b"StateFormatError"
    )
    assert await redis_client.hget(contact_keys(BAD)[0], "s") == b"\x09future", "left as it was"
    await assert_scored_as_replay(store, events)


@pytest.mark.parametrize("version", [b"x7", b"", b"\xff", b"7.5", b"-3"])
async def test_a_damaged_version_affects_that_contact_only(
    fresh: tuple[Settings, RedisStore], redis_client: aioredis.Redis, version: bytes
) -> None:
    # A readable state under a version that is not a whole number (damaged by hand):
    # read, it fails its contact, not the batch's script call.
    settings, store = fresh
    readable = encode_state(decode_state(b'{"clock": 5}', MODEL))
    await redis_client.hset(contact_keys(BAD)[0], mapping={"v": version, "s": readable})
    pipeline, dead = collecting_pipeline(settings, store)
    events = [e for e in make_stream(MODEL, 8, 300, seed=5) if e.type in MODEL.event_types]
    await pipeline.run(on_partition_0(settings, events))

    assert_dead_lettered(
        dead, (e.event_id for e in events if e.contact_id == BAD), b"StateFormatError"
    )
    assert await redis_client.hget(contact_keys(BAD)[0], "v") == version, "left as it was"
    await assert_scored_as_replay(store, events)


def _alerts_of(pending: list[PendingAlert]) -> set[str]:
    return {a.contact_id for a in pending}


@pytest.mark.parametrize(
    "damage",
    ["state-is-a-string", "log-is-a-list", "version-past-2**53", "outbox-is-a-string"],
)
async def test_damaged_keys_affect_that_contact_only(
    fresh: tuple[Settings, RedisStore], redis_client: aioredis.Redis, damage: str
) -> None:
    # Keys no worker leaves so (by hand, or another tool in the same Redis). Each is
    # refused as that contact's alone, before anything of it is written: an error
    # raised in the read or the write script would fail every contact of the call,
    # and a script that raised after its first writes is not rolled back.
    settings, store = fresh
    events = [e for e in make_stream(MODEL, 8, 300, seed=5) if e.type in MODEL.event_types]
    _, crossings = replay(events, MODEL)
    assert any(c.contact_id == BAD for c in crossings), "the contact crosses: it has alerts"
    state_key, outbox_key, log_key = contact_keys(BAD)
    readable = encode_state(decode_state(b'{"clock": 5}', MODEL))
    if damage == "state-is-a-string":
        await redis_client.set(state_key, b"not a hash")
    elif damage == "log-is-a-list":
        await redis_client.hset(state_key, mapping={"v": "7", "s": readable})
        await redis_client.rpush(log_key, b"not a string")
    elif damage == "version-past-2**53":
        await redis_client.hset(state_key, mapping={"v": str(2**53), "s": readable})
    else:
        await redis_client.set(outbox_key, b"not a list")
    before = {k: await redis_client.dump(k) for k in contact_keys(BAD)}
    pipeline, dead = collecting_pipeline(settings, store)
    pending = await pipeline.run(on_partition_0(settings, events))

    assert_dead_lettered(
        dead, (e.event_id for e in events if e.contact_id == BAD), b"StateFormatError"
    )
    assert {k: await redis_client.dump(k) for k in contact_keys(BAD)} == before, "left as it was"
    assert BAD not in _alerts_of(pending)
    assert _alerts_of(pending) == {c.contact_id for c in crossings} - {BAD}
    await assert_scored_as_replay(store, events)
    if damage == "outbox-is-a-string":  # its state was never written; the outbox reads empty
        assert await store.read_state(BAD) is None
        assert await store.outboxes([BAD]) == [[]]
    else:
        with pytest.raises(StateFormatError):
            await store.read_state(BAD)


@pytest.mark.parametrize("damage", ["version-damaged", "state-is-a-list"])
async def test_keys_damaged_while_the_worker_holds_the_contact_affect_it_only(
    fresh: tuple[Settings, RedisStore], redis_client: aioredis.Redis, damage: str
) -> None:
    # The worker writes from what it holds, without a read: the script refuses a damaged
    # version as a conflict (the read that follows fails the contact alone), and a key of
    # another type as damage.
    settings, store = fresh
    pipeline, dead = collecting_pipeline(settings, store)
    events = [e for e in make_stream(MODEL, 8, 300, seed=5) if e.type in MODEL.event_types]
    half = len(events) // 2
    later = [e.event_id for e in events[half:] if e.contact_id == BAD]
    assert later, "the contact has events in the second half"
    assert any(e.contact_id == BAD for e in events[:half]), "and in the first"
    messages = on_partition_0(settings, events)
    await pipeline.run(messages[:half])
    assert not dead
    if damage == "version-damaged":
        await redis_client.hset(contact_keys(BAD)[0], "v", "damaged")
    else:
        await redis_client.delete(contact_keys(BAD)[0])
        await redis_client.rpush(contact_keys(BAD)[0], b"a list now")
    await pipeline.run(messages[half:])

    assert_dead_lettered(dead, later, b"StateFormatError")
    await assert_scored_as_replay(store, events)


async def test_damaged_indexes_and_progress_do_not_stop_the_worker(
    fresh: tuple[Settings, RedisStore], redis_client: aioredis.Redis
) -> None:
    settings, store = fresh
    ns = store.namespace
    # Index members that are no contact ids (not UTF-8): skipped and taken out.
    for key in (outbox_index_key(ns, 0), due_key(ns, 0), board_key(ns, "engagement")):
        await redis_client.zadd(key, {b"\xff\xfe": 1, b"c-1": 2})
    assert await store.stranded(0, 10**18, 10) == [("c-1", 2.0)]
    assert await store.due(0, 10**18, 10) == ["c-1"]
    assert await store.leaderboard("engagement", 10) == []  # c-1 has no state: dropped too
    for key in (outbox_index_key(ns, 0), due_key(ns, 0)):
        assert await redis_client.zrange(key, 0, -1) == [b"c-1"], key
    assert await redis_client.zrange(board_key(ns, "engagement"), 0, -1) == []
    # An alert that is not UTF-8 is taken out of its outbox once relayed.
    await redis_client.rpush(contact_keys("c-1")[1], b"\xff alert", b"{}")
    await store.mark_relayed([PendingAlert("c-1", b"\xff alert")])
    assert await redis_client.lrange(contact_keys("c-1")[1], 0, -1) == [b"{}"]
    # An applied position that is not one counts as not recorded, and is repaired.
    group, topic = "g", settings.events_topic
    await redis_client.hset(
        progress_key(group, topic),
        mapping={"0": "abc", "1": "-3", "x": "5", "2": "40", "3": "1e300"},
    )
    assert await store.applied(group, topic) == {2: 40}
    await store.record_applied(group, topic, {0: 12, 2: 41, 3: 7})
    assert await store.applied(group, topic) == {0: 12, 2: 41, 3: 7}
    # An index of another type refuses its entries; the contacts are still written.
    await redis_client.set(due_key(ns, 0), b"not a sorted set")
    await redis_client.set(board_key(ns, "engagement"), b"not a sorted set")
    pipeline, dead = collecting_pipeline(settings, store)
    events = [e for e in make_stream(MODEL, 8, 120, seed=7) if e.type in MODEL.event_types]
    await pipeline.run(on_partition_0(settings, events))
    assert not dead
    await assert_scored_as_replay(store, events, without=None)


async def test_the_write_script_refuses_a_version_past_2_53_even_when_expected(
    fresh: tuple[Settings, RedisStore], redis_client: aioredis.Redis
) -> None:
    # The read refuses it first; the script does too, as a doubled guard: Lua's numbers
    # are doubles, and 2**53 + 1 would be written back as 2**53, then never change.
    _, store = fresh
    state = decode_state(b'{"clock": 5}', MODEL)
    for version in (str(2**53), "1" * 17):
        await redis_client.hset(contact_keys(BAD)[0], mapping={"v": version, "s": b"x"})
        change = Change(BAD, version, state, True, [], 0)
        (outcome,) = await store.write([change])
        assert isinstance(outcome, StateFormatError), version
        assert await redis_client.hget(contact_keys(BAD)[0], "v") == version.encode()


async def test_a_partition_whose_sweep_fails_leaves_the_others_swept(
    fresh: tuple[Settings, RedisStore],
    redis_client: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings, store = fresh

    async def no_dead_letters(*args: object) -> None:
        raise AssertionError("valid events are never dead-lettered")

    async def send_alert(key: bytes, value: bytes) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    metrics = Metrics()
    pipeline = Pipeline(settings, MODEL, store, no_dead_letters, metrics)
    relay = Relay(store, send_alert, metrics, 1.0)
    sweeper = Sweeper(store, pipeline, relay, 1.0)
    events = [e for e in make_stream(MODEL, 8, 300, seed=6) if e.type in MODEL.event_types]
    contacts = sorted({e.contact_id for e in events})
    partitions = {cid: i % 2 for i, cid in enumerate(contacts)}
    applied = await pipeline.apply(events, partitions)
    await relay.publish(applied.pending)
    due_1 = {c.decode() for c in await redis_client.zrange(due_key(store.namespace, 1), 0, -1)}
    assert due_1, "partition 1 has contacts to sweep"
    # Partition 0's outbox index damaged (another type): its recovery fails at every tick.
    await redis_client.set(outbox_index_key(store.namespace, 0), b"not a sorted set")
    monkeypatch.setattr("stream_scorer.worker.sweeper.now_ms", lambda: 4_102_444_800_000)
    await sweeper.sweep([0, 1])
    for cid in due_1:
        state = await store.read_state(cid)
        assert state is not None
        assert state.swept == 4_102_444_800_000, cid
    assert b'scorer_sweep_failures_total{scope="partition"} 1.0' in metrics.render()


async def test_the_leaderboard_skips_a_damaged_contact_and_keeps_it_ranked(
    fresh: tuple[Settings, RedisStore], redis_client: aioredis.Redis
) -> None:
    settings, store = fresh
    pipeline, _ = collecting_pipeline(settings, store)
    events = [e for e in make_stream(MODEL, 8, 300, seed=5) if e.type in MODEL.event_types]
    await pipeline.run(on_partition_0(settings, events))
    key = board_key(store.namespace, "engagement")
    ranked = {c.decode() for c in await redis_client.zrange(key, 0, -1)}
    assert BAD in ranked
    await redis_client.delete(contact_keys(BAD)[0])
    await redis_client.set(contact_keys(BAD)[0], b"another type")
    board = await store.leaderboard("engagement", 20)
    assert {cid for cid, _ in board} == ranked - {BAD}
    assert BAD in {c.decode() for c in await redis_client.zrange(key, 0, -1)}


@pytest.fixture
async def limited_client(
    services: Services, redis_client: aioredis.Redis
) -> AsyncIterator[aioredis.Redis]:
    """A client as a user with the worker's rules less GET, LRANGE and ZADD: Redis refuses
    it those (NOPERM), an error that is no damage of the data."""
    user, password = "limited", "limited-password"
    rules = [r for r in WORKER_ACL_RULES if r not in ("+get", "+lrange", "+zadd")]
    await redis_client.execute_command(
        "ACL", "SETUSER", user, "reset", "on", f">{password}", *rules
    )
    host, port = services.redis_url.removeprefix("redis://").split("/")[0].split(":")
    client = aioredis.Redis(host=host, port=int(port), username=user, password=password)
    yield client
    await client.aclose()
    await redis_client.execute_command("ACL", "DELUSER", user)


async def test_errors_that_are_not_damage_fail_the_call_with_nothing_written(
    fresh: tuple[Settings, RedisStore],
    redis_client: aioredis.Redis,
    limited_client: aioredis.Redis,
) -> None:
    # Only a key of another type is a contact's damage. Redis refusing a command
    # (NOPERM here; a node away, out of memory, a moved slot elsewhere) fails the call,
    # as before, and the store.lua checks every contact before it writes any.
    settings, _ = fresh
    store = RedisStore(limited_client, MODEL, ttl_seconds=3600, namespace=settings.events_topic)
    state = decode_state(b'{"clock": 5}', MODEL)
    quiet = Change("c-quiet", "0", state, True, [], 0)
    # No partition: no outbox index entry first (its ZADD would be refused before the script).
    alerting = Change("c-alerting", "0", state, True, [b'{"alert": 1}'], None)
    with pytest.raises(ResponseError, match="can't run this command"):
        await store.write([quiet, alerting])
    assert await redis_client.exists(contact_keys("c-quiet")[0]) == 0, "written before the error"
    with pytest.raises(ResponseError, match="can't run this command"):
        await store.read(["c-quiet"])
    with pytest.raises(ResponseError, match="no permissions"):
        await store.outboxes(["c-quiet"])
    with pytest.raises(ResponseError, match="no permissions"):
        await store.index([quiet], [[]])
    assert await redis_client.exists(due_key(store.namespace, 0)) == 0


async def test_a_state_damaged_to_expire_in_the_far_future_is_still_written(
    fresh: tuple[Settings, RedisStore], redis_client: aioredis.Redis
) -> None:
    # PEXPIRE refuses a TTL past 2**63 ms from now; the horizon is capped at a model's
    # longest duration, so such a state (damaged by hand) is written, and expires.
    _, store = fresh
    award = {
        "rule": "r",
        "score": "engagement",
        "points": 1,
        "event_id": "e-1",
        "at": 5,
        "expires_at": 2**62,
    }
    state = decode_state(json.dumps({"clock": 5, "awards": [award]}).encode(), MODEL)
    (outcome,) = await store.write([Change(BAD, "0", state, True, [], None)])
    assert outcome == []
    ttl_ms = await redis_client.pttl(contact_keys(BAD)[0])
    assert 0 < ttl_ms <= 3600 * 1000 + MAX_DURATION_MS
