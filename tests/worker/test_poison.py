"""No input stops scoring: poison events among good ones, read by a real worker.

Every poison kind that used to crash the worker (and stall its partition on
every restart) is dead-lettered with its reason, and every good event, those
sent after the poison included, is scored as the reference engine scores it.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from stream_scorer.scoring import load_model, replay
from stream_scorer.worker.keys import outbox_index_key
from stream_scorer.worker.store import RedisStore

from ..support.scenario import make_stream
from ..support.services import Services
from ..support.workers import (
    Worker,
    assert_scored_like_engine,
    encoded,
    make_worker,
    produce,
    read_topic,
    wait_until_scored,
)

pytestmark = pytest.mark.integration

MODEL = load_model("config/scoring.yaml")


def deep(key: str, levels: int = 20_000) -> bytes:
    return (f'{{"{key}": "p-1", "p": ' + "[" * levels + "]" * levels + "}").encode()


def native(event_id: str, **fields: object) -> bytes:
    base = {
        "event_id": event_id,
        "contact_id": "c-poison",
        "type": "email_open",
        "occurred_at": "2026-11-28T00:00:00Z",
    }
    return json.dumps({**base, **fields}).encode()


def segment_page(event_id: str, properties: object) -> bytes:
    call = {
        "messageId": event_id,
        "userId": "c-poison",
        "type": "page",
        "timestamp": "2026-11-28T00:00:00Z",
        "properties": properties,
    }
    return json.dumps(call).encode()


#: (value, headers, the reason the dead-letter topic must give).
POISON: list[tuple[bytes, list[tuple[str, bytes | None]], str]] = [
    (deep("messageId"), [], "malformed_json"),
    (deep("specversion"), [], "malformed_json"),
    (segment_page("p-3", 42), [], "invalid_field"),
    (segment_page("p-4", "a string"), [], "invalid_field"),
    (b"{}", [("ce_specversion", b"1.0"), ("ce_id", None), ("ce_type", b"email_open")], ""),
    (native("p-6", occurred_at="0001-01-01T00:00:00+01:00"), [], "invalid_field"),
    (native("p-7", properties={"n": 2**60}), [], "invalid_field"),
    (native("p-8", properties={"n": [[[[[[[[[[[1]]]]]]]]]]]}), [], "oversized"),
    # Too large for Kafka to take back whole with the dead-letter headers: sent truncated.
    (native("p-9", pad="x" * 1_040_000), [("trace", b"t-9")], "oversized"),
    # Older than the dedupe window behind c-poison's newest event (FIRST): its id may be forgotten.
    (native("p-10", occurred_at="2026-09-01T00:00:00Z"), [], "too_old"),
]
#: A valid event of c-poison, sent first, that p-10 is too old behind.
FIRST = native("p-first", occurred_at="2026-11-28T00:00:00Z")


async def test_poison_among_good_events_is_dead_lettered_and_the_rest_scored(
    services: Services, tmp_path: Path, worker_factory: list[Worker], redis_client: aioredis.Redis
) -> None:
    await redis_client.flushdb()
    worker = make_worker(worker_factory, services, tmp_path)
    events = [e for e in make_stream(MODEL, 40, 600, seed=31) if e.type in MODEL.event_types]
    good = encoded(events)
    proc = worker.start()
    producer = AIOKafkaProducer(
        bootstrap_servers=worker.settings.kafka_bootstrap_servers, max_request_size=2_000_000
    )
    await producer.start()
    try:
        await producer.send(worker.settings.events_topic, FIRST, key=b"c-poison")
        step = len(good) // (len(POISON) + 1)
        for i, (value, headers, _) in enumerate(POISON):
            for key, message in good[i * step : (i + 1) * step]:
                await producer.send(worker.settings.events_topic, message, key=key)
            await producer.send(
                worker.settings.events_topic, value, key=b"c-poison", headers=headers
            )
        for key, message in good[len(POISON) * step :]:  # after every poison
            await producer.send(worker.settings.events_topic, message, key=key)
        await producer.flush()
    finally:
        await producer.stop()

    store = RedisStore(redis_client, MODEL, ttl_seconds=3600)
    expected, _ = replay(events, MODEL)
    got = await wait_until_scored(store, redis_client, expected, wait_seconds=120)
    for cid, state in expected.items():
        assert got[cid].to_json() == state.to_json(), cid

    deadline = time.monotonic() + 30
    dead = await read_topic(services.kafka_bootstrap, worker.settings.dlq_topic)
    while len(dead) < len(POISON) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        dead = await read_topic(services.kafka_bootstrap, worker.settings.dlq_topic)
    assert len(dead) == len(POISON)
    by_value = {value: headers for _, value, headers in dead}
    cut = worker.settings.max_event_bytes
    for value, _, reason in POISON:
        headers = by_value.get(value) or by_value[value[:cut]]
        if len(value) > 1_000_000:
            assert (headers["truncated"], headers["trace"]) == (b"true", b"t-9")
        if reason:
            assert headers["reason"].decode() == reason, (value[:60], headers)
        else:  # a null attribute is absent: missing or, with data, invalid
            assert headers["reason"] in {b"missing_field", b"invalid_field"}
        assert headers["detail"]
    assert proc.poll() is None, "the worker stopped"
    assert "Traceback" not in worker.tail(400_000)


async def test_damaged_outbox_indexes_do_not_stop_the_worker(
    services: Services, tmp_path: Path, worker_factory: list[Worker], redis_client: aioredis.Redis
) -> None:
    # Every partition's outbox index holds another type (by hand, or another tool): the
    # recovery at assignment is refused and logged, the worker starts and scores.
    await redis_client.flushdb()
    worker = make_worker(worker_factory, services, tmp_path)
    for partition in range(worker.settings.topic_partitions):
        key = outbox_index_key(worker.settings.events_topic, partition)
        await redis_client.set(key, b"not a sorted set")
    events = [e for e in make_stream(MODEL, 20, 200, seed=32) if e.type in MODEL.event_types]
    proc = worker.start()
    await produce(worker.settings, encoded(events))
    await assert_scored_like_engine(worker.settings, redis_client, MODEL, events)
    log = worker.tail(400_000)
    assert "outbox recovery refused" in log
    assert "an index refused entries: index=outbox" in log
    assert proc.poll() is None, "the worker stopped"
    assert "Traceback" not in log
