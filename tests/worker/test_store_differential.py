"""The Redis path agrees with the pure engine on random event streams.

Random streams (duplicates, out-of-order times, attribute changes, gaps long
enough for points to expire) go through the worker's pipeline (engine, then
:class:`RedisStore`) in random batches, sometimes through two pipelines at
once on the same contacts (as in a rebalance), and the states and alerts
must equal the engine's replay.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_scorer.events import Event
from stream_scorer.scoring import ScoringModel, alert_id, alert_payload, load_model, replay
from stream_scorer.scoring.codec import LOG_ABOVE
from stream_scorer.worker.pipeline import Pipeline
from stream_scorer.worker.store import RedisStore

from ..support.services import Services
from ..support.workers import pipeline_on

pytestmark = pytest.mark.integration

MODELS = [
    load_model("config/scoring.yaml"),
    load_model("config/examples/gate-blocks-class-digit.yaml"),
    load_model("config/examples/fit-engagement-grade.yaml"),
]
ATTRIBUTES = st.fixed_dictionaries(
    {},
    optional={
        "country": st.sampled_from(["US", "CA", "DE", "BR", None]),
        "age": st.integers(14, 70) | st.none(),
        "budget": st.integers(0, 5000),
        "job_title": st.sampled_from(["VP Sales", "Product Manager", "Student", "Head of IT"]),
        "company_size": st.sampled_from([10, 300, 6000, "1200"]),
        "industry": st.sampled_from(["saas", "retail"]),
    },
)
PROPS = st.fixed_dictionaries(
    {},
    optional={
        "url": st.sampled_from(["https://a.io/pricing", "https://a.io/blog/x", "/careers/1"]),
        "form_id": st.sampled_from(["newsletter", "consultation", "contact"]),
        "kind": st.sampled_from(["hard", "soft"]),
    },
)


@st.composite
def streams(draw: st.DrawFn, model: ScoringModel) -> list[Event]:
    prefix = uuid.uuid4().hex[:10]
    contacts = [f"{prefix}-c{i}" for i in range(draw(st.integers(1, 3)))]
    types = sorted(model.event_types)
    clock = datetime(2026, 1, 1, tzinfo=UTC)
    events: list[Event] = []
    for i in range(draw(st.integers(1, 50))):
        if events and draw(st.integers(0, 9)) == 0:
            events.append(draw(st.sampled_from(events)))  # a duplicate delivery
            continue
        step = draw(st.sampled_from([0, 2, 30, 600, 3600, 86_400, 40 * 86_400]))
        clock += timedelta(seconds=step)
        late = timedelta(seconds=draw(st.sampled_from([0, 0, 0, 5, 7200])))
        kind = draw(st.sampled_from(types))
        props = draw(ATTRIBUTES) if kind == "contact_updated" else draw(PROPS)
        events.append(
            Event(
                event_id=f"e{i}",
                contact_id=draw(st.sampled_from(contacts)),
                type=kind,
                occurred_at=clock - late,
                properties=props,
            )
        )
    return events


async def _apply(batches: list[tuple[Pipeline, list[Event]]]) -> list[dict[str, object]]:
    async def one(pipeline: Pipeline, batch: list[Event]) -> list[dict[str, object]]:
        applied = await pipeline.apply(batch)
        assert applied.failed == {}
        pending = applied.pending
        await pipeline.store.mark_relayed(pending)
        return [json.loads(p.payload) for p in pending]

    results = await asyncio.gather(*(one(p, b) for p, b in batches))
    return [a for r in results for a in r]


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
async def test_redis_path_matches_engine(services: Services, data: st.DataObject) -> None:
    model = data.draw(st.sampled_from(MODELS))
    events = data.draw(streams(model))
    cuts = data.draw(st.lists(st.integers(1, 50), max_size=4))
    concurrent = data.draw(st.booleans())
    cache = data.draw(st.sampled_from([0, 1, 1000]))  # contacts a store keeps in memory
    # From what size a contact keeps its awards and ids in a log that writes append to
    # (0: every contact; the default: none of these).
    log_above = data.draw(st.sampled_from([0, 0, 200, LOG_ABOVE]))
    first = aioredis.from_url(services.redis_url)
    second = aioredis.from_url(services.redis_url)
    # Long-lived stores, as in two workers: each trusts its in-memory states only
    # while Redis still holds their versions.
    stores = [
        RedisStore(client, model, ttl_seconds=3600, cache_contacts=cache, log_above=log_above)
        for client in (first, second)
    ]
    one, two = (pipeline_on(store) for store in stores)
    try:
        bounds = sorted({0, len(events), *(c for c in cuts if c < len(events))})
        batches = [events[lo:hi] for lo, hi in itertools.pairwise(bounds)]
        relayed: list[dict[str, object]] = []
        if concurrent:
            # Two workers at once on the same contacts: the second gets the whole stream,
            # as after a rebalance that replays what the first is still applying.
            relayed += await _apply([(one, batches[0]), (two, events)])
            for batch in batches[1:]:
                relayed += await _apply([(one, batch)])
        else:
            for batch in batches:
                relayed += await _apply([(one, batch)])

        states, crossings = replay(events, model)
        store = RedisStore(first, model, ttl_seconds=3600)
        for cid, state in states.items():
            got = await store.read_state(cid)
            assert got is not None
            assert got.to_json() == state.to_json(), cid
            assert got.values == state.values, cid
        want = {alert_id(c, model): json.loads(alert_payload(c, model)) for c in crossings}
        got_ids = {a["alert_id"] for a in relayed}
        assert got_ids == set(want)
        for alert in relayed:
            assert alert == want[str(alert["alert_id"])]
        # Per contact, alerts were recorded in the order the engine crossed.
        for cid in states:
            order = [a["alert_id"] for a in relayed if a["contact_id"] == cid]
            deduped = list(dict.fromkeys(order))
            assert deduped == [alert_id(c, model) for c in crossings if c.contact_id == cid]
        # A replay of everything changes nothing and records no new alert.
        again = await pipeline_on(store).apply(events)
        assert again.pending == []
        assert again.failed == {}
        for cid, state in states.items():
            got = await store.read_state(cid)
            assert got is not None
            assert got.to_json() == state.to_json()
    finally:
        await first.aclose()
        await second.aclose()
