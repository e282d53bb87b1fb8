"""The walking skeleton end to end: events through Kafka, scores in Redis, alerts out."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from stream_scorer.events import Event
from stream_scorer.scoring import alert_id, alert_payload, load_model, replay
from stream_scorer.worker.store import RedisStore

from ..support.scenario import make_stream
from ..support.secured import RedisTarget
from ..support.services import Services
from ..support.workers import Worker, encoded, make_worker, produce, read_topic, wait_until_scored

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("batch", [1000, 20])
async def test_thousand_events_exact_scores_and_alerts(
    services: Services,
    tmp_path: Path,
    worker_factory: list[Worker],
    redis_target: RedisTarget,
    batch: int,
) -> None:
    # With small batches, a contact's alerts are still being relayed when its next
    # batch writes: each must still be published once. Again on the Redis Cluster.
    redis_client = redis_target.client  # emptied: other tests use the same contact ids
    model = load_model("config/scoring.yaml")
    worker = make_worker(
        worker_factory, services, tmp_path, batch_max_events=batch, **redis_target.settings
    )
    events = make_stream(model, contacts=100, events=1000, seed=1)
    assert len({e.contact_id for e in events}) == 100
    unknown = {e.event_id for e in events if e.type not in model.event_types}
    assert unknown, "the stream should hold event types the model does not know"
    expected_states, expected_crossings = replay(
        [e for e in events if e.type in model.event_types], model
    )
    assert any(c.direction == "up" for c in expected_crossings)
    assert any(c.direction == "down" for c in expected_crossings)

    worker.start()
    await produce(worker.settings, encoded(events))
    store = RedisStore(redis_client, model, ttl_seconds=3600)
    got = await wait_until_scored(store, redis_client, expected_states)

    for cid, state in expected_states.items():
        assert got[cid].values == state.values, cid
        assert got[cid].tiers == state.tiers, cid
        assert got[cid].to_json() == state.to_json(), cid

    records = await read_topic(services.kafka_bootstrap, worker.settings.alerts_topic)
    want = {alert_id(c, model): alert_payload(c, model) for c in expected_crossings}
    got_alerts = {json.loads(v)["alert_id"]: v for _, v, _ in records}
    assert len(records) == len(got_alerts), "an alert was published twice"
    assert sorted(got_alerts) == sorted(want), "alerts differ from the engine"
    for key, value, _ in records:
        published = json.loads(value)["alert_id"]
        assert value == want[published]
        assert key == json.loads(value)["contact_id"].encode()

    dead = await read_topic(services.kafka_bootstrap, worker.settings.dlq_topic)
    assert {json.loads(v)["event_id"] for _, v, _ in dead} == unknown
    assert {h["reason"] for _, _, h in dead} == {b"unknown_type"}


async def test_bad_events_go_to_dead_letter_topic_with_reasons(
    services: Services, tmp_path: Path, worker_factory: list[Worker], redis_client: aioredis.Redis
) -> None:
    await redis_client.flushdb()  # other tests use the same contact ids
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
    model = load_model("config/scoring.yaml")
    store = RedisStore(redis_client, model, ttl_seconds=3600)
    expected, _ = replay([good], model)
    got = await wait_until_scored(store, redis_client, expected)
    assert got["c-dlq"].values == expected["c-dlq"].values
    assert got["c-dlq"].values["engagement"] > 0

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
