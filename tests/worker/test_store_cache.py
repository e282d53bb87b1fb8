"""A worker's in-memory states are written back only while Redis still holds their version."""

from __future__ import annotations

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
