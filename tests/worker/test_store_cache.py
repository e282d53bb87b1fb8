"""A worker's in-memory states are written back only while Redis still holds their version."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from stream_scorer.events import Event
from stream_scorer.scoring import load_model, replay
from stream_scorer.worker.keys import contact_keys
from stream_scorer.worker.pipeline import Pipeline
from stream_scorer.worker.store import RedisStore

from ..support.workers import pipeline_on

pytestmark = pytest.mark.integration

MODEL = load_model("config/scoring.yaml")
START = datetime(2026, 3, 1, tzinfo=UTC)


def _event(cid: str, n: int, kind: str = "email_reply") -> Event:
    return Event(
        event_id=f"{cid}-e{n}",
        contact_id=cid,
        type=kind,
        occurred_at=START + timedelta(hours=n),
        properties={},
    )


async def _state_json(store: RedisStore, cid: str) -> dict[str, object]:
    state = await store.read_state(cid)
    assert state is not None
    return state.to_json()


def _two_workers(client: aioredis.Redis) -> tuple[str, Pipeline, Pipeline]:
    """A new contact id, and two workers' pipelines (each its own memory) on one Redis."""
    cid = f"cache-{uuid.uuid4().hex[:8]}"
    a = pipeline_on(RedisStore(client, MODEL, ttl_seconds=3600))
    b = pipeline_on(RedisStore(client, MODEL, ttl_seconds=3600))
    return cid, a, b


async def test_a_write_by_another_worker_is_read_not_overwritten(
    redis_client: aioredis.Redis,
) -> None:
    cid, a, b = _two_workers(redis_client)
    events = [_event(cid, n) for n in range(3)]
    await a.apply(events[:1])
    await b.apply(events[1:2])  # a's copy in memory is now out of date
    await a.apply(events[2:])
    states, _ = replay(events, MODEL)
    assert await _state_json(a.store, cid) == states[cid].to_json()


async def test_keys_expired_and_recreated_are_not_mistaken_for_the_old_contact(
    redis_client: aioredis.Redis,
) -> None:
    cid, a, b = _two_workers(redis_client)
    first, second, third = _event(cid, 0), _event(cid, 1, "demo_request"), _event(cid, 2)
    await a.apply([first])
    await redis_client.delete(*contact_keys(cid))  # the contact went idle and expired
    await b.apply([second])  # and came back, written as often as a wrote it
    await a.apply([third])
    states, _ = replay([second, third], MODEL)
    assert await _state_json(a.store, cid) == states[cid].to_json()


async def test_a_failed_write_leaves_no_changed_state_in_memory(
    redis_client: aioredis.Redis,
) -> None:
    cid = f"cache-{uuid.uuid4().hex[:8]}"
    store = RedisStore(redis_client, MODEL, ttl_seconds=3600)
    pipeline = pipeline_on(store)
    events = [_event(cid, n) for n in range(3)]
    await pipeline.apply(events[:1])

    async def refuse(changes: object) -> list[object]:
        raise ConnectionError("redis went away mid-batch")

    write = store.write
    store.write = refuse  # type: ignore[method-assign,assignment]
    with pytest.raises(ConnectionError):
        await pipeline.apply(events[1:2])
    store.write = write  # type: ignore[method-assign]
    await pipeline.apply(events[2:])  # the event of the failed batch was never written
    states, _ = replay([events[0], events[2]], MODEL)
    assert await _state_json(store, cid) == states[cid].to_json()


async def test_memory_is_bounded_by_the_configured_contacts(
    redis_client: aioredis.Redis,
) -> None:
    store = RedisStore(redis_client, MODEL, ttl_seconds=3600, cache_contacts=5)
    prefix = uuid.uuid4().hex[:8]
    await pipeline_on(store).apply([_event(f"{prefix}-{i}", 0) for i in range(20)])
    assert len(store._cache) == 5


async def test_a_held_contact_is_scored_without_a_read_until_someone_else_writes_it(
    redis_client: aioredis.Redis,
) -> None:
    cid, a, b = _two_workers(redis_client)
    events = [_event(cid, n) for n in range(4)]
    reads: list[int] = []
    script = a.store._read_script

    async def counted(**kwargs: object) -> object:
        reads.append(len(kwargs["keys"]) // 2)  # type: ignore[arg-type]  # state and log
        return await script(**kwargs)  # type: ignore[arg-type]

    a.store._read_script = counted  # type: ignore[assignment]
    await a.apply(events[:1])
    assert reads == [1], "a contact the worker does not hold is read"
    await a.apply(events[1:2])
    assert reads == [1], "the state it wrote last is scored without a read"
    await b.apply(events[2:3])  # another worker writes it
    await a.apply(events[3:])
    assert reads == [1, 1], "the compare-and-set refused the held copy: read again"
    states, _ = replay(events, MODEL)
    assert await _state_json(a.store, cid) == states[cid].to_json()


def _counting_store(
    client: aioredis.Redis, ttl_seconds: int = 3600
) -> tuple[RedisStore, list[int]]:
    """A store whose reports of contacts Redis lost are collected."""
    lost: list[int] = []
    return RedisStore(client, MODEL, ttl_seconds=ttl_seconds, on_lost=lost.append), lost


async def test_contacts_redis_lost_are_counted_and_scored_from_what_it_holds(
    redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Keys gone long before their expiry: a restart that did not replay its file, a flush."""
    store, lost = _counting_store(redis_client)
    pipeline = pipeline_on(store)
    prefix = uuid.uuid4().hex[:8]
    cids = [f"{prefix}-{i}" for i in range(20)]
    await pipeline.apply([_event(cid, 0) for cid in cids])
    await redis_client.delete(*[k for cid in cids[:12] for k in contact_keys(cid)])
    later = [_event(cid, 1, "demo_request") for cid in cids]
    await pipeline.apply(later)
    assert sum(lost) == 12
    assert "Redis lost writes it had acknowledged" in caplog.text
    assert prefix not in caplog.text, "a contact id in the log"
    states, _ = replay(later[:12], MODEL)
    for cid in cids[:12]:  # what Redis holds, and the events after
        assert await _state_json(store, cid) == states[cid].to_json()


async def test_a_redis_gone_back_to_an_older_version_is_counted(
    redis_client: aioredis.Redis,
) -> None:
    """A failover to a replica that missed the latest write: an older state, not none."""
    store, lost = _counting_store(redis_client)
    pipeline = pipeline_on(store)
    cid = f"back-{uuid.uuid4().hex[:8]}"
    keys = contact_keys(cid)
    events = [_event(cid, n) for n in range(3)]
    await pipeline.apply(events[:1])
    older = {k: await redis_client.dump(k) for k in keys}
    await pipeline.apply(events[1:2])
    for key, value in older.items():
        if value is not None:
            await redis_client.restore(key, 0, value, replace=True)
    await pipeline.apply(events[2:])
    assert lost == [1]
    states, _ = replay([events[0], events[2]], MODEL)
    assert await _state_json(store, cid) == states[cid].to_json()


async def test_contacts_that_expired_are_not_counted_as_lost(
    redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """A contact held in memory whose keys Redis expired on time: nothing was lost."""
    store, lost = _counting_store(redis_client, ttl_seconds=1)
    pipeline = pipeline_on(store)
    cid = f"idle-{uuid.uuid4().hex[:8]}"
    newsletter = {"form_id": "newsletter"}  # an award that never expires: the keys live 1 s
    first = _event(cid, 0, "form_submit").model_copy(update={"properties": newsletter})
    await pipeline.apply([first])
    assert cid in store._cache
    deadline = asyncio.get_running_loop().time() + 10
    while await redis_client.exists(contact_keys(cid)[0]):
        assert asyncio.get_running_loop().time() < deadline, "the keys did not expire"
        await asyncio.sleep(0.1)
    await pipeline.apply([_event(cid, 1)])
    assert lost == []
    assert "Redis lost writes" not in caplog.text


async def test_a_contact_moved_to_another_worker_and_expired_there_is_not_counted_as_lost(
    redis_client: aioredis.Redis,
) -> None:
    """A rebalance drops what a worker holds: the next owner may write the contact with a
    sooner expiry, and its expiry then is no loss when the partition comes back."""
    store, lost = _counting_store(redis_client)
    a = pipeline_on(store)
    cid, _, b = _two_workers(redis_client)
    await a.apply([_event(cid, 0)])
    store.forget_held()  # its partition moves to b
    await b.apply([_event(cid, 1)])
    await redis_client.delete(*contact_keys(cid))  # expired at b's, sooner than a had it
    await a.apply([_event(cid, 2)])  # the partition is back
    assert lost == []
