"""The Redis script agrees with the pure engine on random models and event streams."""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_scorer.engine import replay
from stream_scorer.events import Event
from stream_scorer.model import ScoringModel, ScoringModelSpec, compile_model
from stream_scorer.store import RedisStore, contact_keys

from ..conftest import Services

pytestmark = pytest.mark.integration

TYPES = ["email_open", "email_click", "page_visit", "form_submit", "unsubscribe", "other"]


@st.composite
def models(draw: st.DrawFn) -> ScoringModel:
    scores = {}
    for name in draw(
        st.lists(
            st.sampled_from(["engagement", "fit", "product_a"]), min_size=1, max_size=3, unique=True
        )
    ):
        low = draw(st.integers(-20, 10))
        high = draw(st.one_of(st.none(), st.integers(low, low + 120)))
        tiers = []
        for i, at in enumerate(
            sorted(draw(st.lists(st.integers(low, low + 100), max_size=3, unique=True)))
        ):
            tiers.append({"name": f"t{i}", "at": at, "rearm_below": at - draw(st.integers(0, 15))})
        scores[name] = {"min": low, "max": high, "thresholds": tiers}
    rules = [
        {
            "id": f"r{i}",
            "score": draw(st.sampled_from(sorted(scores))),
            "on": {"type": draw(st.sampled_from(TYPES[:-1]))},
            "points": draw(st.integers(-25, 25)),
        }
        for i in range(draw(st.integers(1, 8)))
    ]
    spec = ScoringModelSpec.model_validate(
        {"version": 1, "name": "random", "scores": scores, "rules": rules}
    )
    return compile_model(spec)


@st.composite
def streams(draw: st.DrawFn) -> list[Event]:
    prefix = uuid.uuid4().hex[:10]
    contacts = [f"{prefix}-c{i}" for i in range(draw(st.integers(1, 4)))]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    events: list[Event] = []
    for i in range(draw(st.integers(1, 60))):
        if events and draw(st.booleans()) and draw(st.booleans()):
            events.append(draw(st.sampled_from(events)))  # duplicate delivery
            continue
        events.append(
            Event(
                event_id=f"e{i}",
                contact_id=draw(st.sampled_from(contacts)),
                type=draw(st.sampled_from(TYPES)),
                occurred_at=start + timedelta(minutes=draw(st.integers(-1000, 1000))),
            )
        )
    return events


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(model=models(), events=streams(), cuts=st.lists(st.integers(1, 60), max_size=4))
async def test_redis_script_matches_engine(
    services: Services, model: ScoringModel, events: list[Event], cuts: list[int]
) -> None:
    client = aioredis.from_url(services.redis_url)
    try:
        store = RedisStore(client, model, ttl_seconds=3600)
        bounds = sorted({0, len(events), *(c for c in cuts if c < len(events))})
        relayed: list[dict[str, object]] = []
        for lo, hi in itertools.pairwise(bounds):
            pending = await store.apply_batch(events[lo:hi])
            relayed.extend(json.loads(p.payload) for p in pending)
            await store.mark_relayed(pending)
        states, crossings = replay(events, model)
        for cid, state in states.items():
            view = await store.read_contact(cid)
            assert view is not None
            assert view.events_applied == len(state.seen)
            for name, value in state.scores.items():
                assert view.scores[name] == value, (cid, name)
            assert {k: sorted(v) for k, v in view.active_tiers.items() if v} == {
                k: sorted(v) for k, v in state.active_tiers.items() if v
            }
            assert await client.ttl(contact_keys(cid)[1]) > 3000
        # Per contact, the alerts come in the order the engine crossed.
        for cid in states:
            got = [a for a in relayed if a["contact_id"] == cid]
            want = [c for c in crossings if c.contact_id == cid]
            assert [a["alert_id"] for a in got] == [c.alert_id for c in want]
            for alert, crossing in zip(got, want, strict=True):
                assert (
                    alert["direction"],
                    alert["value"],
                    alert["previous"],
                    alert["tier"],
                    alert["threshold"],
                    alert["event_id"],
                ) == (
                    crossing.direction,
                    crossing.value,
                    crossing.previous,
                    crossing.tier,
                    crossing.threshold,
                    crossing.event_id,
                )
        assert len(relayed) == len(crossings)
        # Applying everything again is a replay: nothing changes, nothing new is emitted.
        again = await store.apply_batch(events)
        assert again == []
        for cid, state in states.items():
            view = await store.read_contact(cid)
            assert view is not None
            assert view.scores == state.scores
    finally:
        await client.aclose()
