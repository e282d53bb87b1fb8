"""A backtest says what the live path (Kafka, a worker, Redis) does for the same events."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from stream_scorer.review.backtest import score_row
from stream_scorer.scoring import advance, alert_payload, load_model, replay
from stream_scorer.times import epoch_ms
from stream_scorer.worker.store import RedisStore

from ..support.scenario import make_stream
from ..support.services import Services
from ..support.workers import Worker, encoded, make_worker, produce, read_topic, wait_until_scored

pytestmark = pytest.mark.integration

MODEL_PATH = Path("config/scoring.yaml")
MODEL = load_model(MODEL_PATH)


async def test_backtest_scores_and_alerts_equal_the_live_path(
    services: Services, tmp_path: Path, worker_factory: list[Worker], redis_client: aioredis.Redis
) -> None:
    await redis_client.flushdb()  # other tests use the same contact ids
    events = sorted(
        make_stream(MODEL, contacts=80, events=1500, seed=71), key=lambda e: e.occurred_at
    )
    history = tmp_path / "events.jsonl"
    history.write_text("".join(e.model_dump_json() + "\n" for e in events))

    worker = make_worker(worker_factory, services, tmp_path)
    worker.start()
    await produce(worker.settings, encoded(events))
    out = tmp_path / "backtest"
    command = [sys.executable, "-m", "stream_scorer", "backtest", "--model", str(MODEL_PATH)]
    command += ["--events", str(history), "--out", str(out)]
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

    known = [e for e in events if e.type in MODEL.event_types]
    expected, _ = replay(known, MODEL)  # only to know when the worker is done
    store = RedisStore(redis_client, MODEL, ttl_seconds=3600)
    live = await wait_until_scored(store, redis_client, expected)

    # The live states, advanced to the backtest's time as the sweeper would, are its rows.
    as_of = epoch_ms(known[-1].occurred_at)
    rows = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert sorted(r["contact_id"] for r in rows) == sorted(live)
    swept = []
    for row in rows:
        contact = row["contact_id"]
        state, effects = advance(live[contact], as_of, MODEL, contact)
        swept += effects.crossings
        assert row == score_row(contact, state, MODEL, as_of), contact
    assert any(r["tiers"]["engagement"] for r in rows), "some contact is sales-ready"
    assert any(r["awards"] for r in rows)

    # Every alert the worker published, plus the sweep's, and nothing else.
    records = await read_topic(services.kafka_bootstrap, worker.settings.alerts_topic)
    published = {value for _, value, _ in records}
    assert len(published) == len(records), "the worker published an alert twice"
    published |= {alert_payload(c, MODEL) for c in swept}
    lines = [line.encode() for line in (out / "alerts.jsonl").read_text().splitlines()]
    written = set(lines)
    assert len(written) == len(lines), "the backtest wrote an alert twice"
    assert written == published
    times = [datetime.fromisoformat(json.loads(a)["occurred_at"]) for a in lines]
    assert times == sorted(times), "alerts.jsonl is in time order"
    assert any(json.loads(a)["direction"] == "down" for a in written)
