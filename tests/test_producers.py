"""Producers: the Python client and ``stream-scorer produce``, against a running worker."""

from __future__ import annotations

import asyncio
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from stream_scorer.client import EventProducer
from stream_scorer.errors import InvalidEvent
from stream_scorer.events import Event
from stream_scorer.scoring import load_model, replay
from stream_scorer.worker.store import RedisStore

from .support.scenario import make_stream
from .support.services import Services
from .support.workers import Worker, make_worker, read_topic

pytestmark = pytest.mark.integration

MODEL = load_model("config/scoring.yaml")


async def _scored(
    store: RedisStore, events: list[Event], wait: float = 90
) -> tuple[dict[str, object], dict[str, object]]:
    """Redis's states of the contacts of ``events`` and the engine's, once equal (or time's up)."""
    states, _ = replay([e for e in events if e.type in MODEL.event_types], MODEL)
    want = {cid: state.to_json() for cid, state in states.items()}
    deadline = time.monotonic() + wait
    while True:
        got: dict[str, object] = {}
        for cid in want:
            state = await store.read_state(cid)
            got[cid] = None if state is None else state.to_json()
        if got == want or time.monotonic() > deadline:
            return got, want
        await asyncio.sleep(0.5)


async def test_client_validates_and_publishes_keyed_by_contact(
    services: Services, tmp_path: Path, worker_factory: list[Worker], redis_client: aioredis.Redis
) -> None:
    await redis_client.flushdb()
    worker = make_worker(worker_factory, services, tmp_path)
    worker.start()
    events = make_stream(MODEL, contacts=20, events=200, seed=31)
    async with EventProducer(services.kafka_bootstrap, worker.settings.events_topic) as producer:
        for i, event in enumerate(events):  # models, mappings and JSON are all accepted
            item = (event, event.model_dump(mode="json"), event.model_dump_json())[i % 3]
            await producer.send(item)
        with pytest.raises(InvalidEvent) as bad:
            await producer.send({"event_id": "x", "contact_id": "c-1", "type": "email_open"})
        assert bad.value.reason == "missing_field"
    records = await read_topic(services.kafka_bootstrap, worker.settings.events_topic)
    assert len(records) == len(events)
    assert all(json.loads(v)["contact_id"].encode() == k for k, v, _ in records)
    got, want = await _scored(RedisStore(redis_client, MODEL, ttl_seconds=3600), events)
    assert got == want, "the worker scored the produced events as the engine does"


def _run_produce(worker: Worker, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream_scorer", "produce", str(path)],
        env=worker.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_produce_a_json_lines_file_with_bad_lines(
    services: Services, tmp_path: Path, worker_factory: list[Worker], redis_client: aioredis.Redis
) -> None:
    await redis_client.flushdb()
    worker = make_worker(worker_factory, services, tmp_path)
    worker.start()
    events = make_stream(MODEL, contacts=30, events=300, seed=32)
    lines = [e.model_dump_json() for e in events]
    lines.insert(10, '{"event_id": "broken"')
    lines.insert(20, json.dumps({"event_id": "m", "contact_id": "c-1", "type": "email_open"}))
    lines.insert(30, "")  # blank lines are skipped
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = _run_produce(worker, path)
    assert result.returncode == 1, result.stderr
    assert f"sent {len(events)}, rejected 2" in result.stdout
    assert "malformed_json: 1" in result.stdout
    assert "missing_field: 1" in result.stdout
    assert "line 11: malformed_json" in result.stdout
    records = await read_topic(services.kafka_bootstrap, worker.settings.events_topic)
    assert sorted(json.loads(v)["event_id"] for _, v, _ in records) == sorted(
        e.event_id for e in events
    )
    got, want = await _scored(RedisStore(redis_client, MODEL, ttl_seconds=3600), events)
    assert got == want, "the worker scored the produced events as the engine does"


async def test_produce_a_csv_file(
    services: Services, tmp_path: Path, worker_factory: list[Worker], redis_client: aioredis.Redis
) -> None:
    await redis_client.flushdb()
    worker = make_worker(worker_factory, services, tmp_path)
    worker.start()
    events = [
        e
        for e in make_stream(MODEL, contacts=20, events=200, seed=33)
        if all(isinstance(v, str) for v in e.properties.values())  # CSV cells are text
    ]
    columns = sorted({k for e in events for k in e.properties})
    path = tmp_path / "events.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["event_id", "contact_id", "type", "occurred_at", *columns])
        for e in events:
            row = [e.event_id, e.contact_id, e.type, e.occurred_at.isoformat()]
            writer.writerow(row + [e.properties.get(c, "") for c in columns])
    result = _run_produce(worker, path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"sent {len(events)}, rejected 0" in result.stdout
    got, want = await _scored(RedisStore(redis_client, MODEL, ttl_seconds=3600), events)
    assert got == want, "the worker scored the produced events as the engine does"


async def test_segment_and_cloudevents_are_scored_like_native_events(
    services: Services, tmp_path: Path, worker_factory: list[Worker], redis_client: aioredis.Redis
) -> None:
    await redis_client.flushdb()
    worker = make_worker(worker_factory, services, tmp_path)
    worker.start()
    when = "2026-11-20T10:00:00Z"
    native = [
        Event.model_validate(e)
        for e in (
            {
                "event_id": "s-1",
                "contact_id": "fmt-1",
                "type": "contact_updated",
                "occurred_at": when,
                "properties": {"country": "US", "job_title": "VP Sales"},
            },
            {
                "event_id": "c-1",
                "contact_id": "fmt-1",
                "type": "demo_request",
                "occurred_at": when,
                "properties": {},
            },
            {
                "event_id": "c-2",
                "contact_id": "fmt-1",
                "type": "webinar_attended",
                "occurred_at": when,
                "properties": {"webinar": "w1"},
            },
        )
    ]
    segment = {
        "type": "identify",
        "userId": "fmt-1",
        "messageId": "s-1",
        "timestamp": when,
        "traits": {"country": "US", "job_title": "VP Sales"},
    }
    structured = {
        "specversion": "1.0",
        "id": "c-1",
        "source": "/crm",
        "type": "demo_request",
        "time": when,
        "subject": "fmt-1",
    }
    binary_headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"c-2"),
        ("ce_source", b"/web"),
        ("ce_type", b"webinar_attended"),
        ("ce_time", when.encode()),
        ("ce_subject", b"fmt-1"),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=services.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        topic = worker.settings.events_topic
        await producer.send_and_wait(topic, json.dumps(segment).encode(), key=b"fmt-1")
        await producer.send_and_wait(topic, json.dumps(structured).encode(), key=b"fmt-1")
        await producer.send_and_wait(
            topic, b'{"webinar": "w1"}', key=b"fmt-1", headers=binary_headers
        )
    finally:
        await producer.stop()
    got, want = await _scored(RedisStore(redis_client, MODEL, ttl_seconds=3600), native)
    assert got == want, "scored as the native events would be"
    state = got["fmt-1"]
    assert isinstance(state, dict)
    assert state["attributes"]["job_title"] == "VP Sales"  # from the Segment identify
    awarded = {a["event_id"] for a in state["awards"]}
    assert awarded == {"c-1", "c-2"}  # the structured and the binary CloudEvent
