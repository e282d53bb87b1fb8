"""Expiry that fires: an idle contact above a tier drops below it with no new event."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stream_scorer.events import Event

from ..support.secured import RedisTarget
from ..support.services import Services
from ..support.workers import Worker, encoded, make_worker, produce, read_topic

pytestmark = pytest.mark.integration

MODEL = """\
version: 1
name: short-expiry
scores:
  engagement:
    max: 100
    thresholds: [{name: mql, at: 50, rearm_below: 40}]
rules:
  - {id: demo, score: engagement, on: {type: demo_request}, points: 30, expires: 6s}
  - {id: webinar, score: engagement, on: {type: webinar_attended}, points: 25}
"""


async def test_expiring_points_cross_down_once_without_new_events(
    services: Services, tmp_path: Path, worker_factory: list[Worker], redis_target: RedisTarget
) -> None:
    # Again on the Redis Cluster: the sweeper reads the due index and writes through it.
    model_path = tmp_path / "model.yaml"
    model_path.write_text(MODEL)
    worker = make_worker(
        worker_factory,
        services,
        tmp_path,
        model_path=str(model_path),
        sweep_interval_seconds=1,
        **redis_target.settings,
    )
    worker.start()
    now = datetime.now(UTC)
    events = [
        Event(event_id="w1", contact_id="c-exp", type="webinar_attended", occurred_at=now),
        Event(
            event_id="d1",
            contact_id="c-exp",
            type="demo_request",
            occurred_at=now + timedelta(milliseconds=10),
        ),
        Event(event_id="w2", contact_id="c-stay", type="webinar_attended", occurred_at=now),
        Event(
            event_id="w3",
            contact_id="c-stay",
            type="webinar_attended",
            occurred_at=now + timedelta(milliseconds=10),
        ),
    ]
    await produce(worker.settings, encoded(events))
    # 55 points: up at once; after 6 s the demo's 30 points expire, 25 < 40: down.
    deadline = time.monotonic() + 6 + 1 + 20  # expiry, one sweep interval, generous slack
    alerts: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        alerts = [
            json.loads(v)
            for _, v, _ in await read_topic(services.kafka_bootstrap, worker.settings.alerts_topic)
        ]
        if any(a["direction"] == "down" for a in alerts):
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(3)  # several more sweeps: still exactly one down alert
    alerts = [
        json.loads(v)
        for _, v, _ in await read_topic(services.kafka_bootstrap, worker.settings.alerts_topic)
    ]
    mine = [(a["contact_id"], a["direction"], a["value"], a["trigger"]) for a in alerts]
    assert sorted(mine) == sorted(
        [
            ("c-exp", "up", 55, "event"),
            ("c-exp", "down", 25, "expiry"),
            ("c-stay", "up", 50, "event"),  # points that do not expire: it stays up
        ]
    ), mine
    down = next(a for a in alerts if a["direction"] == "down")
    expiry_ms = int((now + timedelta(milliseconds=10, seconds=6)).timestamp() * 1000)
    assert down["event_id"] is None
    assert down["previous"] == 55
    assert abs(datetime.fromisoformat(str(down["occurred_at"])).timestamp() * 1000 - expiry_ms) < 2
