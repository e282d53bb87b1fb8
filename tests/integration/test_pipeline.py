"""The walking skeleton end to end: events through Kafka, scores in Redis, alerts out."""

from __future__ import annotations

import asyncio
import json
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from stream_scorer.engine import ContactState, replay
from stream_scorer.events import Event
from stream_scorer.model import ScoringModel, load_model
from stream_scorer.store import contact_keys

from ..conftest import Services
from .conftest import Worker, make_worker, produce, read_topic

pytestmark = pytest.mark.integration


def make_stream(model: ScoringModel, contacts: int, events: int, seed: int) -> list[Event]:
    """Events for ``contacts`` contacts, including duplicates and types no rule scores."""
    rng = random.Random(seed)
    types = [*sorted(model.by_type), "page_scroll"]
    weights = [1.0 if t not in {"unsubscribe", "email_bounce"} else 0.15 for t in types]
    start = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    out: list[Event] = []
    for i in range(events):
        if out and rng.random() < 0.03:
            out.append(rng.choice(out))  # a producer retry: same event id again
            continue
        out.append(
            Event(
                event_id=f"e-{seed}-{i}",
                contact_id=f"c-{rng.randrange(contacts):03d}",
                type=rng.choices(types, weights)[0],
                occurred_at=start + timedelta(seconds=i),
                properties={"n": i},
            )
        )
    return out


async def wait_until_scored(
    client: aioredis.Redis, expected: dict[str, ContactState], wait_seconds: float = 90.0
) -> None:
    """Until every contact has applied all its events and relayed all its alerts."""
    deadline = time.monotonic() + wait_seconds
    while True:
        async with client.pipeline(transaction=False) as pipe:
            for cid in expected:
                _, seen, outbox = contact_keys(cid)
                pipe.scard(seen)
                pipe.llen(outbox)
            counts = await pipe.execute()
        applied = counts[0::2]
        pending = counts[1::2]
        if all(
            a == len(s.seen) for a, s in zip(applied, expected.values(), strict=True)
        ) and not any(pending):
            return
        if time.monotonic() > deadline:
            done = sum(a == len(s.seen) for a, s in zip(applied, expected.values(), strict=True))
            raise AssertionError(f"only {done}/{len(expected)} contacts fully scored in time")
        await asyncio.sleep(0.25)


async def test_thousand_events_exact_scores_and_alerts(
    services: Services, tmp_path: Path, worker_factory: list[Worker], redis_client: aioredis.Redis
) -> None:
    model = load_model("config/scoring.yaml")
    worker = make_worker(worker_factory, services, tmp_path)
    events = make_stream(model, contacts=100, events=1000, seed=1)
    assert len({e.contact_id for e in events}) == 100
    expected_states, expected_crossings = replay(events, model)
    assert any(c.direction == "up" for c in expected_crossings)
    assert any(c.direction == "down" for c in expected_crossings)

    worker.start()
    await produce(
        worker.settings, [(e.contact_id.encode(), e.model_dump_json().encode()) for e in events]
    )
    await wait_until_scored(redis_client, expected_states)

    for cid, state in expected_states.items():
        raw = await redis_client.hgetall(contact_keys(cid)[0])
        assert int(raw.get(b"s:engagement", b"0")) == state.scores.get("engagement", 0), cid
        tiers = sorted(k.decode().split(":")[2] for k in raw if k.startswith(b"t:"))
        assert tiers == sorted(state.active_tiers.get("engagement", [])), cid

    records = await read_topic(services.kafka_bootstrap, worker.settings.alerts_topic)
    got = [json.loads(v) for _, v, _ in records]
    want = {c.alert_id: c for c in expected_crossings}
    assert sorted(a["alert_id"] for a in got) == sorted(want), "alerts differ from the engine"
    for alert, (key, _, _) in zip(got, records, strict=True):
        crossing = want[alert["alert_id"]]
        assert key == crossing.contact_id.encode()
        assert (
            alert["contact_id"],
            alert["score"],
            alert["tier"],
            alert["direction"],
            alert["value"],
            alert["previous"],
            alert["event_id"],
        ) == (
            crossing.contact_id,
            crossing.score,
            crossing.tier,
            crossing.direction,
            crossing.value,
            crossing.previous,
            crossing.event_id,
        )
        assert alert["model"] == model.name


async def test_bad_events_go_to_dead_letter_topic_with_reasons(
    services: Services, tmp_path: Path, worker_factory: list[Worker], redis_client: aioredis.Redis
) -> None:
    worker = make_worker(worker_factory, services, tmp_path, max_event_bytes=2048)
    good = Event(
        event_id="ok-1",
        contact_id="c-dlq",
        type="demo_request",
        occurred_at=datetime(2026, 11, 28, tzinfo=UTC),
    )
    bad = {
        "malformed_json": b'{"event_id": "x",',
        "missing_field": b'{"event_id": "x2", "contact_id": "c-1", "type": "email_open"}',
        "invalid_field": json.dumps(
            {"event_id": "x3", "contact_id": "c-1", "type": "email_open", "occurred_at": 17}
        ).encode(),
        "oversized": json.dumps(
            {
                "event_id": "x4",
                "contact_id": "c-1",
                "type": "email_open",
                "occurred_at": "2026-11-28T00:00:00Z",
                "properties": {"pad": "x" * 4000},
            }
        ).encode(),
    }
    worker.start()
    await produce(
        worker.settings,
        [(b"c-1", v) for v in bad.values()] + [(b"c-dlq", good.model_dump_json().encode())],
    )
    await wait_until_scored(redis_client, {"c-dlq": ContactState(seen={"ok-1"})})
    assert int(await redis_client.hget(contact_keys("c-dlq")[0], "s:engagement") or 0) == 25

    deadline = time.monotonic() + 30
    while True:
        dead = await read_topic(services.kafka_bootstrap, worker.settings.dlq_topic)
        if len(dead) >= len(bad) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    reasons = {h["reason"].decode(): v for _, v, h in dead}
    assert reasons == {reason: value for reason, value in bad.items()}
    for _, _, headers in dead:
        assert headers["source_topic"].decode() == worker.settings.events_topic
        assert int(headers["source_offset"]) >= 0
        assert headers["detail"]
