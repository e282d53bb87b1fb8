"""States written by earlier releases are read, and rewritten in the current format.

``data/previous_release_states.json`` holds the states the release before
format 3 wrote (commit in the file) for the first 400 events of a stream,
in both formats it could write: format 1 (JSON) and format 2, each with
the event ids themselves remembered. A Redis filled with them is scored on
by the new pipeline: every score, tier and alert equals the reference
engine's replay of the whole stream, and each contact written is rewritten
in the current format.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import msgspec
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
PREVIOUS = json.loads((Path(__file__).parent / "data" / "previous_release_states.json").read_text())


@pytest.mark.parametrize("old_format", ["1", "2"])
async def test_an_earlier_release_s_states_are_upgraded_in_place_with_no_change_to_scores_or_alerts(
    redis_client: aioredis.Redis, old_format: str
) -> None:
    await redis_client.flushdb()  # other tests use the same contact ids
    events = [e for e in make_stream(MODEL, 40, 800, seed=13) if e.type in MODEL.event_types]
    first, rest = events[:400], events[400:]
    _, old_crossings = replay(first, MODEL)
    written = PREVIOUS["formats"][old_format]
    for cid, stored in written.items():  # what the previous release's store wrote
        raw = base64.b64decode(stored)
        assert raw[:1] == (b"{" if old_format == "1" else b"\x02")
        await redis_client.hset(contact_keys(cid)[0], mapping={"v": "1764547200000000", "s": raw})

    store = RedisStore(redis_client, MODEL, ttl_seconds=3600)
    applied = await pipeline_on(store).apply(rest, {e.contact_id: 0 for e in rest})

    states, crossings = replay(events, MODEL)
    assert crossings[: len(old_crossings)] == old_crossings
    want = sorted(alert_payload(c, MODEL) for c in crossings[len(old_crossings) :])
    assert want, "the rest of the stream should cross tiers"
    assert sorted(a.payload for a in applied.pending) == want
    assert set(written) <= {e.contact_id for e in rest}, "every upgraded contact gets events"
    for cid, state in states.items():
        got = await store.read_state(cid)
        assert got is not None
        assert got.to_json() == state.to_json(), cid
        raw = await redis_client.hget(contact_keys(cid)[0], "s")
        assert raw is not None
        assert raw[0] == FORMAT, f"{cid} was written but not in the current format"


@pytest.mark.parametrize("old_format", [1, 2])
async def test_during_a_rolling_upgrade_the_worker_can_keep_writing_an_older_format(
    redis_client: aioredis.Redis, old_format: int
) -> None:
    # SCORER_STATE_FORMAT=1 or 2 while workers of the older release, which cannot read
    # format 3, still run: what the new worker writes, the old one reads as its own, event
    # ids included (it matches its events' ids against them to drop repeats).
    await redis_client.flushdb()
    events = [e for e in make_stream(MODEL, 40, 800, seed=13) if e.type in MODEL.event_types]
    rest = events[400:]  # the first 400 made the older release's states
    for cid, stored in PREVIOUS["formats"][str(old_format)].items():
        raw = base64.b64decode(stored)
        await redis_client.hset(contact_keys(cid)[0], mapping={"v": "1764547200000000", "s": raw})
    compatible = RedisStore(redis_client, MODEL, ttl_seconds=3600, state_format=old_format)
    await pipeline_on(compatible).apply(rest, {e.contact_id: 0 for e in rest})
    states, _ = replay(events, MODEL)
    ids: dict[str, set[str]] = {}
    for e in events:
        ids.setdefault(e.contact_id, set()).add(e.event_id)
    for cid, state in states.items():
        raw = await redis_client.hget(contact_keys(cid)[0], "s")
        assert raw is not None
        if old_format == 1:
            stored = json.loads(raw)
            assert {**stored, "seen": None} == {**state.to_json(), "seen": None}
            seen = set(stored["seen"])
        else:
            assert raw[0] == 2
            seen = set(msgspec.msgpack.decode(raw[1:])[11])
        assert seen == ids[cid], "the ids themselves, as the older release remembers them"
        got = await compatible.read_state(cid)
        assert got is not None
        assert got.to_json() == state.to_json(), cid
    # Rolled out: the worker writes format 3 again, and reads what it wrote before.
    current = RedisStore(redis_client, MODEL, ttl_seconds=3600)
    for cid, state in states.items():
        got = await current.read_state(cid)
        assert got is not None
        assert got.to_json() == state.to_json(), cid
