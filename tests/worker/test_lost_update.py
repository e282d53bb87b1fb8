"""No lost update: a write from a stale read is a conflict, and the event is scored again.

Two stores (two workers after a rebalance) read the same version of one
contact. The first writes its event's change; the second, paused between its
read and its write, then writes another event's change from the state it
read. That write must come back as a conflict (None), leave Redis as the
first wrote it, and once the second event is scored again the contact holds
both events, once each. Without the version check in ``store.lua`` the second
write would overwrite the first and its event would be lost: this test fails
then (the rest of the suite did not).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from stream_scorer.events import Event
from stream_scorer.scoring import (
    ContactState,
    alert_id,
    alert_payload,
    apply_in_place,
    event_key,
    load_model,
    replay,
)
from stream_scorer.scoring.state import seen_key_text
from stream_scorer.worker.store import Change, Outcome, RedisStore

from ..support.services import Services
from ..support.workers import pipeline_on

pytestmark = pytest.mark.integration

MODEL = load_model("config/scoring.yaml")
T0 = datetime(2026, 5, 1, tzinfo=UTC)


def _event(cid: str, n: int, kind: str, **properties: object) -> Event:
    return Event(
        event_id=f"{cid}-e{n}",
        contact_id=cid,
        type=kind,
        occurred_at=T0 + timedelta(hours=n),
        properties=properties,
    )


def _events(cid: str) -> tuple[Event, Event, Event]:
    """A contact with 30 fit points; A's event takes it to 60 (an MQL), B's adds 25 more."""
    seed = _event(cid, 0, "contact_updated", job_title="VP Sales", company_size=300, country="US")
    return seed, _event(cid, 1, "demo_request"), _event(cid, 2, "trial_signup")


@pytest.fixture
async def second_client(services: Services) -> AsyncIterator[aioredis.Redis]:
    """Another connection, as another worker has."""
    client = aioredis.from_url(services.redis_url)
    yield client
    await client.aclose()


def _store(client: aioredis.Redis) -> RedisStore:
    return RedisStore(client, MODEL, ttl_seconds=3600, namespace=f"lost-{uuid.uuid4().hex[:8]}")


async def _stored(client: aioredis.Redis, cid: str) -> dict[str, Any]:
    """The contact's state as Redis holds it (a new store: no cache of its own)."""
    state = await RedisStore(client, MODEL, ttl_seconds=3600).read_state(cid)
    assert state is not None
    return state.to_json()


def _change(cid: str, version: str, state: ContactState, event: Event) -> Change:
    effects = apply_in_place(state, event, MODEL)
    assert effects.awards, "each event awards points: a lost one shows in the state"
    alerts = [alert_payload(c, MODEL) for c in effects.crossings]
    return Change(cid, version, state, True, alerts, None)


@pytest.mark.parametrize("existing", [True, False], ids=["existing-contact", "new-contact"])
async def test_a_write_from_a_stale_read_is_a_conflict_and_the_event_is_scored_again(
    redis_client: aioredis.Redis, second_client: aioredis.Redis, existing: bool
) -> None:
    cid = f"lost-{uuid.uuid4().hex[:10]}"
    seed, first, second = _events(cid)
    before = [seed] if existing else []
    a, b = _store(redis_client), _store(second_client)
    if existing:
        assert (await pipeline_on(a).apply([seed])).failed == {}
    b_has_read, a_has_written = asyncio.Event(), asyncio.Event()
    b_outcome: list[Outcome] = []

    async def worker_b() -> None:
        [(version, state)] = await b.read([cid])
        b_has_read.set()
        await a_has_written.wait()  # paused between its read and its write
        b_outcome.extend(await b.write([_change(cid, version, state, second)]))

    async def worker_a() -> None:
        await b_has_read.wait()
        [(version, state)] = await a.read([cid])  # the same version B read
        [outcome] = await a.write([_change(cid, version, state, first)])
        assert outcome is not None, "the first writer wins"
        a_has_written.set()

    await asyncio.wait_for(asyncio.gather(worker_a(), worker_b()), timeout=30)

    assert b_outcome == [None], "a write from a stale read must be refused"
    kept, _ = replay([*before, first], MODEL)
    assert await _stored(redis_client, cid) == kept[cid].to_json(), (
        "the refused write left nothing behind"
    )

    again = await pipeline_on(b).apply([second])  # the pipeline scores B's event again
    assert again.failed == {}
    both, crossings = replay([*before, first, second], MODEL)
    stored = await _stored(redis_client, cid)
    assert stored == both[cid].to_json()
    assert set(stored["seen"]) == {
        seen_key_text(event_key(e.event_id)) for e in (*before, first, second)
    }
    rules = sorted(award["rule"] for award in stored["awards"])
    assert rules == ["demo-request", "free-trial"], "each event once"
    assert bool(crossings) == existing  # with the seed's fit points, A's event made an MQL


class PausedStore(RedisStore):
    """A store that pauses its first write until told to go, and records its outcomes."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.has_read = asyncio.Event()
        self.go = asyncio.Event()
        self.reads = 0
        self.outcomes: list[list[Outcome]] = []

    async def read(self, contacts: Sequence[str]) -> list[tuple[str, ContactState]]:
        rows = await super().read(contacts)
        self.reads += 1
        self.has_read.set()
        return rows

    async def write(self, changes: Sequence[Change]) -> list[Outcome]:
        await self.go.wait()
        outcomes = await super().write(changes)
        self.outcomes.append(outcomes)
        return outcomes


async def test_a_pipeline_paused_between_read_and_write_scores_its_event_again(
    redis_client: aioredis.Redis, second_client: aioredis.Redis
) -> None:
    """The same race through the worker's pipeline: it reads, scores again and writes both."""
    cid = f"lost-{uuid.uuid4().hex[:10]}"
    seed, first, second = _events(cid)
    a = pipeline_on(_store(redis_client))
    assert (await a.apply([seed])).failed == {}
    paused = PausedStore(second_client, MODEL, ttl_seconds=3600, namespace=a.store.namespace)
    b = pipeline_on(paused)

    b_run = asyncio.create_task(b.apply([second]))
    await asyncio.wait_for(paused.has_read.wait(), timeout=30)
    a_applied = await a.apply([first])  # written while B holds the older version
    assert a_applied.failed == {}
    paused.go.set()
    b_applied = await asyncio.wait_for(b_run, timeout=30)
    assert b_applied.failed == {}

    assert paused.outcomes[0] == [None], "B's first write, from the stale read, is a conflict"
    assert paused.reads == 2, "B read the contact again and scored its event on A's state"
    both, crossings = replay([seed, first, second], MODEL)
    assert await _stored(redis_client, cid) == both[cid].to_json()
    relayed = [json.loads(p.payload) for p in (*a_applied.pending, *b_applied.pending)]
    assert sorted(x["alert_id"] for x in relayed) == sorted(alert_id(c, MODEL) for c in crossings)
