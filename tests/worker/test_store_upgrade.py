"""States written by the previous release are read, and rewritten in the current format.

The previous release stored each contact's state as JSON (format 1); this
one writes format 2 (:mod:`stream_scorer.scoring.codec`). A Redis filled by
the old release is scored on by the new pipeline: every score, tier and
alert equals the reference engine's replay of the whole stream, and each
contact written is rewritten in the current format.
"""

from __future__ import annotations

import json

import pytest
import redis.asyncio as aioredis

from stream_scorer.scoring import alert_payload, load_model, replay
from stream_scorer.scoring.codec import FORMAT
from stream_scorer.worker.keys import contact_keys
from stream_scorer.worker.store import RedisStore

from ..support.scenario import make_stream
from ..support.workers import pipeline_on

pytestmark = pytest.mark.integration

MODEL = load_model("config/scoring.yaml")


async def test_format_1_states_are_upgraded_in_place_with_no_change_to_scores_or_alerts(
    redis_client: aioredis.Redis,
) -> None:
    await redis_client.flushdb()  # other tests use the same contact ids
    events = [e for e in make_stream(MODEL, 40, 800, seed=13) if e.type in MODEL.event_types]
    first, rest = events[:400], events[400:]
    old_states, old_crossings = replay(first, MODEL)
    for cid, state in old_states.items():  # what the previous release's store wrote
        await redis_client.hset(
            contact_keys(cid)[0],
            mapping={"v": "1764547200000000", "s": json.dumps(state.to_json())},
        )

    store = RedisStore(redis_client, MODEL, ttl_seconds=3600)
    applied = await pipeline_on(store).apply(rest, {e.contact_id: 0 for e in rest})

    states, crossings = replay(events, MODEL)
    assert crossings[: len(old_crossings)] == old_crossings
    want = sorted(alert_payload(c, MODEL) for c in crossings[len(old_crossings) :])
    assert want, "the rest of the stream should cross tiers"
    assert sorted(a.payload for a in applied.pending) == want
    touched = {e.contact_id for e in rest}
    assert touched & set(old_states), "some upgraded contacts get new events"
    for cid, state in states.items():
        got = await store.read_state(cid)
        assert got is not None
        assert got.to_json() == state.to_json(), cid
        raw = await redis_client.hget(contact_keys(cid)[0], "s")
        assert raw is not None
        if cid in touched:
            assert raw[0] == FORMAT, f"{cid} was written but not in the current format"
        else:
            assert raw[:1] == b"{", f"{cid} was not written, so it keeps format 1"


async def test_during_a_rolling_upgrade_the_worker_can_keep_writing_format_1(
    redis_client: aioredis.Redis,
) -> None:
    # SCORER_STATE_FORMAT=1 while workers of the older release, which read only
    # JSON, still run; format-2 states are still read.
    await redis_client.flushdb()
    events = [e for e in make_stream(MODEL, 20, 300, seed=17) if e.type in MODEL.event_types]
    first, rest = events[:150], events[150:]
    new = RedisStore(redis_client, MODEL, ttl_seconds=3600)
    await pipeline_on(new).apply(first, {e.contact_id: 0 for e in first})
    old_compatible = RedisStore(redis_client, MODEL, ttl_seconds=3600, state_format=1)
    await pipeline_on(old_compatible).apply(rest, {e.contact_id: 0 for e in rest})
    states, _ = replay(events, MODEL)
    for cid, state in states.items():
        raw = await redis_client.hget(contact_keys(cid)[0], "s")
        assert raw is not None
        if cid in {e.contact_id for e in rest}:
            assert json.loads(raw) == state.to_json(), "written as plain format-1 JSON"
        got = await new.read_state(cid)
        assert got is not None
        assert got.to_json() == state.to_json(), cid
