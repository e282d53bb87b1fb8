"""A contact with a long history keeps its awards and ids in a log that writes append to.

So a write costs what its batch added, not all the contact holds (the hot
contact of ``benchmarks/hot_contact.py``). The log is a second key of the
contact, written in the same atomic step as its state, with the same TTL;
a contact whose history shrinks (awards expire) goes back to one value.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from stream_scorer.events import Event
from stream_scorer.scoring import event_key, load_model, replay
from stream_scorer.times import epoch_ms
from stream_scorer.worker.keys import contact_keys
from stream_scorer.worker.store import RedisStore

from ..support.workers import pipeline_on

pytestmark = pytest.mark.integration

MODEL = load_model("config/scoring.yaml")
START = datetime(2026, 3, 1, tzinfo=UTC)


def _replies(cid: str, first: int, n: int, start: datetime = START) -> list[Event]:
    """Uncapped awards that expire after 90 days: a history that only grows for a while."""
    return [
        Event(
            event_id=f"{cid}-e{i}",
            contact_id=cid,
            type="email_reply",
            occurred_at=start + timedelta(minutes=i),
        )
        for i in range(first, first + n)
    ]


def _store(client: aioredis.Redis, log_above: int) -> RedisStore:
    return RedisStore(client, MODEL, ttl_seconds=3600, log_above=log_above)


async def test_a_long_history_is_appended_to_not_written_again(
    redis_client: aioredis.Redis,
) -> None:
    cid = f"log-{uuid.uuid4().hex[:8]}"
    _, _, log_key = contact_keys(cid)
    store = _store(redis_client, log_above=0)  # every contact keeps a log
    sent: list[int] = []
    script = store._script

    async def measured(**kwargs: list[object]) -> object:
        args = kwargs["args"]
        sent.append(sum(len(a) for a in args if isinstance(a, bytes)))
        return await script(**kwargs)  # type: ignore[arg-type]

    store._script = measured  # type: ignore[assignment]
    pipeline = pipeline_on(store)
    events: list[Event] = []
    logged: list[int] = []
    for batch in range(8):
        new = _replies(cid, 10 * batch, 10)
        events += new
        await pipeline.apply(new)
        logged.append(await redis_client.strlen(log_key))
        if batch == 0:
            await asyncio.sleep(1.2)  # later writes must move the log's expiry on too
    assert logged == sorted(set(logged)), "the log grows with each batch"
    # After the first write, each sends about what its ten events added, though the
    # log (and the state's value) keep growing.
    assert max(sent[1:]) < 0.6 * logged[-1]
    assert max(sent[1:]) - min(sent[1:]) < 200, sent
    states, _ = replay(events, MODEL)
    got = await store.read_state(cid)
    assert got is not None
    assert got.to_json() == states[cid].to_json()
    state_ttl = await redis_client.pttl(contact_keys(cid)[0])
    assert abs(await redis_client.pttl(log_key) - state_ttl) < 500, "one lifetime"

    # Another worker, which holds nothing, reads the state from its value and log and
    # writes on; the first worker's copy is then stale: a conflict, read again.
    other = pipeline_on(_store(redis_client, log_above=0))
    more = _replies(cid, 80, 5)
    await other.apply(more)
    last = _replies(cid, 85, 5)
    await pipeline.apply(last)
    states, _ = replay([*events, *more, *last], MODEL)
    got = await store.read_state(cid)
    assert got is not None
    assert got.to_json() == states[cid].to_json()


async def test_a_history_that_shrinks_leaves_its_log(redis_client: aioredis.Redis) -> None:
    cid = f"log-{uuid.uuid4().hex[:8]}"
    state_key, _, log_key = contact_keys(cid)
    store = _store(redis_client, log_above=2000)
    pipeline = pipeline_on(store)
    first = _replies(cid, 0, 80)
    await pipeline.apply(first)
    assert await redis_client.exists(log_key), "80 awards and ids take more than 2,000 bytes"
    # 100 days on, the 80 awards have expired (90 days) and their ids are forgotten
    # (older than the dedupe window): under half the size.
    later = _replies(cid, 1000, 1, start=START + timedelta(days=100))
    await pipeline.apply(later)
    states, _ = replay([*first, *later], MODEL)
    assert len(states[cid].awards) == 1
    got = await store.read_state(cid)
    assert got is not None
    want = states[cid].to_json()
    assert {**got.to_json(), "seen": None} == {**want, "seen": None}
    assert got.seen == {event_key(later[0].event_id): epoch_ms(later[0].occurred_at)}
    assert await redis_client.exists(state_key)
    assert not await redis_client.exists(log_key), "back in one value, the log deleted"


async def test_a_log_that_is_gone_is_written_again_whole_not_appended_to(
    redis_client: aioredis.Redis,
) -> None:
    # Deleted or evicted on its own (a Redis that evicts keys) while the worker holds the
    # contact: appending would leave a log that lacks its first chunks. The version still
    # matches, so the state held is the truth: its log is written again whole.
    cid = f"log-{uuid.uuid4().hex[:8]}"
    _, _, log_key = contact_keys(cid)
    store = _store(redis_client, log_above=0)
    pipeline = pipeline_on(store)
    first, then = _replies(cid, 0, 10), _replies(cid, 10, 5)
    await pipeline.apply(first)
    await redis_client.delete(log_key)
    applied = await pipeline.apply(then)
    assert applied.failed == {}
    states, _ = replay([*first, *then], MODEL)
    got = await _store(redis_client, log_above=0).read_state(cid)  # from Redis, not held
    assert got is not None
    assert got.to_json() == states[cid].to_json()
