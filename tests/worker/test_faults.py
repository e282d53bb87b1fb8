"""The pipeline under the failures a production stream sees.

Each test streams events for many contacts through real Kafka and Redis,
breaks something mid-stream, and then requires every contact's state in
Redis to equal the reference engine's replay, and the alerts on the topic,
deduplicated by ``alert_id``, to equal the engine's crossings exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from redis.exceptions import BusyLoadingError

from stream_scorer.events import Event
from stream_scorer.scoring import (
    ContactState,
    ScoringModel,
    alert_id,
    alert_payload,
    load_model,
    replay,
)
from stream_scorer.worker.keys import progress_key
from stream_scorer.worker.store import RedisStore

from ..support.scenario import make_stream
from ..support.services import Services
from ..support.workers import Worker, encoded, make_worker, produce, read_topic

pytestmark = pytest.mark.integration

MODEL = load_model("config/scoring.yaml")


def known(events: list[Event], model: ScoringModel) -> list[Event]:
    return [e for e in events if e.type in model.event_types]


async def wait_for_states(
    store: RedisStore, expected: dict[str, ContactState], wait_seconds: float = 180
) -> None:
    """Until every contact's state in Redis equals the engine's (then it must stay so)."""
    deadline = time.monotonic() + wait_seconds
    remaining = dict(expected)
    while remaining:
        for cid in list(remaining):
            got = await store.read_state(cid)
            if got is not None and got.seen == remaining[cid].seen:
                assert got.to_json() == remaining[cid].to_json(), cid
                del remaining[cid]
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(remaining)}/{len(expected)} contacts not fully scored")
        await asyncio.sleep(0.5)


async def wait_for_alerts(
    services: Services, topic: str, want: dict[str, bytes], wait_seconds: float = 60
) -> list[bytes]:
    deadline = time.monotonic() + wait_seconds
    while True:
        records = [v for _, v, _ in await read_topic(services.kafka_bootstrap, topic)]
        ids = {json.loads(v)["alert_id"] for v in records}
        if ids >= set(want) or time.monotonic() > deadline:
            return records
        await asyncio.sleep(0.5)


async def check_exact(
    services: Services,
    worker: Worker,
    model: ScoringModel,
    events: list[Event],
    redis_client: aioredis.Redis,
) -> list[bytes]:
    states, crossings = replay(known(events, model), model)
    store = RedisStore(redis_client, model, ttl_seconds=3600)
    await wait_for_states(store, states)
    want = {alert_id(c, model): alert_payload(c, model) for c in crossings}
    records = await wait_for_alerts(services, worker.settings.alerts_topic, want)
    got = {json.loads(v)["alert_id"]: v for v in records}
    assert set(got) == set(want), (
        f"missing {len(set(want) - set(got))}, extra {len(set(got) - set(want))}"
    )
    for made, payload in got.items():
        assert payload == want[made]
    return records


def alert_ids(records: list[bytes]) -> set[str]:
    return {json.loads(v)["alert_id"] for v in records}


def engine_alert_ids(events: list[Event], model: ScoringModel) -> set[str]:
    return {alert_id(c, model) for c in replay(known(events, model), model)[1]}


async def wait_until_some_progress(redis_client: aioredis.Redis, contacts: int) -> None:
    """Until the worker has written about a third of the contacts."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        count = 0
        async for _ in redis_client.scan_iter(match="ss:{c-*}:state", count=1000):
            count += 1
        if count >= contacts // 3:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the worker made no progress")


async def test_kill_9_mid_stream_then_restart(
    services: Services, tmp_path: Path, worker_factory: list[Worker], redis_client: aioredis.Redis
) -> None:
    await redis_client.flushdb()
    worker = make_worker(worker_factory, services, tmp_path, batch_max_events=200)
    events = make_stream(MODEL, contacts=1000, events=20_000, seed=11)
    first = worker.start()
    await produce(worker.settings, encoded(events))
    await wait_until_some_progress(redis_client, 1000)
    os.kill(first.pid, signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    assert not await _group_caught_up(services, worker), "the kill should land mid-stream"
    worker.start()
    records = await check_exact(services, worker, MODEL, events, redis_client)
    assert alert_ids(records) == engine_alert_ids(events, MODEL) != set()


async def test_two_workers_one_stopped_and_started_again(
    services: Services, tmp_path: Path, worker_factory: list[Worker], redis_client: aioredis.Redis
) -> None:
    await redis_client.flushdb()
    worker = make_worker(worker_factory, services, tmp_path, batch_max_events=200)
    events = make_stream(MODEL, contacts=1000, events=20_000, seed=12)
    worker.start()
    second = worker.start()  # the same group: the partitions are shared
    await produce(worker.settings, encoded(events[:10_000]))
    await wait_until_some_progress(redis_client, 1000)
    os.kill(second.pid, signal.SIGTERM)
    assert second.wait(60) == 0, "a stopped worker exits cleanly"
    await produce(worker.settings, encoded(events[10_000:]))
    worker.start()
    records = await check_exact(services, worker, MODEL, events, redis_client)
    assert alert_ids(records) == engine_alert_ids(events, MODEL) != set()


async def test_redis_restarted_mid_stream(
    services: Services, tmp_path: Path, worker_factory: list[Worker], redis_client: aioredis.Redis
) -> None:
    if services.redis_restart is None:
        pytest.skip("needs the local redis-server (with append-only persistence) to restart")
    await redis_client.flushdb()
    worker = make_worker(worker_factory, services, tmp_path, batch_max_events=200)
    events = make_stream(MODEL, contacts=1000, events=20_000, seed=13)
    proc = worker.start()
    await produce(worker.settings, encoded(events))
    await wait_until_some_progress(redis_client, 1000)
    await asyncio.get_running_loop().run_in_executor(None, services.redis_restart)
    fresh = aioredis.from_url(services.redis_url)  # the old connections died with the server
    try:
        await _until_loaded(fresh)
        await check_exact(services, worker, MODEL, events, fresh)
    finally:
        await fresh.aclose()
    assert proc.poll() is None, "the worker should ride out a Redis restart"
    assert "transient failure, retrying" in worker.tail(200_000)


async def test_group_reset_to_earliest_replays_without_changes(
    services: Services, tmp_path: Path, worker_factory: list[Worker], redis_client: aioredis.Redis
) -> None:
    await redis_client.flushdb()
    worker = make_worker(worker_factory, services, tmp_path)
    events = make_stream(MODEL, contacts=300, events=5_000, seed=14)
    proc = worker.start()
    await produce(worker.settings, encoded(events))
    before = await check_exact(services, worker, MODEL, events, redis_client)
    store = RedisStore(redis_client, MODEL, ttl_seconds=3600)
    applied = await store.applied(worker.settings.app_id, worker.settings.events_topic)
    end = await _end_offsets(services, worker)
    assert applied == end, "Redis records every partition's position once all is applied"

    # 1. The group reset to earliest: Redis knows better, nothing is replayed.
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(60)
    await _commit(services, worker, 0)
    proc = worker.start()
    await _wait_caught_up(services, worker)
    after = await check_exact(services, worker, MODEL, events, redis_client)
    assert len(after) == len(before), "no alert was published again"

    # 2. The reset with the recorded positions lost too: a full replay, and no change.
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(60)
    await _commit(services, worker, 0)
    await redis_client.delete(progress_key(worker.settings.app_id, worker.settings.events_topic))
    worker.start()
    await _wait_caught_up(services, worker)
    assert await store.applied(worker.settings.app_id, worker.settings.events_topic) == end
    after = await check_exact(services, worker, MODEL, events, redis_client)
    assert len(after) == len(before), "a replay published alerts again"


async def test_committed_offsets_ahead_of_the_applied_positions_lose_nothing(
    services: Services, tmp_path: Path, worker_factory: list[Worker], redis_client: aioredis.Redis
) -> None:
    await redis_client.flushdb()
    worker = make_worker(worker_factory, services, tmp_path)
    events = make_stream(MODEL, contacts=300, events=6_000, seed=16)
    proc = worker.start()
    await produce(worker.settings, encoded(events[:3_000]))
    await check_exact(services, worker, MODEL, events[:3_000], redis_client)
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(60)
    # Events arrive while the worker is down, and something commits past them.
    await produce(worker.settings, encoded(events[3_000:]))
    await _commit(services, worker, None)
    worker.start()
    await check_exact(services, worker, MODEL, events, redis_client)
    assert "committed offset is ahead of the applied position" in worker.tail(200_000)


async def _until_loaded(client: aioredis.Redis) -> None:
    """Until a restarted Redis has loaded its append-only file and answers."""
    deadline = time.monotonic() + 60
    while True:
        try:
            await client.ping()
            return
        except BusyLoadingError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _end_offsets(services: Services, worker: Worker) -> dict[int, int]:
    async with group_consumer(services, worker) as (consumer, tps):
        return {tp.partition: o for tp, o in (await consumer.end_offsets(tps)).items()}


async def _commit(services: Services, worker: Worker, offset: int | None) -> None:
    """Commit the worker's group at ``offset`` on every partition (None: the end)."""
    async with group_consumer(services, worker) as (consumer, tps):
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.commit({tp: ends[tp] if offset is None else offset for tp in tps})


async def _wait_caught_up(services: Services, worker: Worker) -> None:
    await asyncio.sleep(2)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until the group has committed everything again
        if await _group_caught_up(services, worker):
            return
        await asyncio.sleep(0.5)
    raise AssertionError("the worker did not catch up")


@contextlib.asynccontextmanager
async def group_consumer(
    services: Services, worker: Worker
) -> AsyncIterator[tuple[AIOKafkaConsumer, list[TopicPartition]]]:
    """A consumer in the worker's group (it never subscribes) and the events partitions."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=services.kafka_bootstrap,
        group_id=worker.settings.app_id,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        yield (
            consumer,
            [
                TopicPartition(worker.settings.events_topic, p)
                for p in range(worker.settings.topic_partitions)
            ],
        )
    finally:
        await consumer.stop()


async def _group_caught_up(services: Services, worker: Worker) -> bool:
    async with group_consumer(services, worker) as (consumer, tps):
        end = await consumer.end_offsets(tps)
        for tp in tps:
            committed = await consumer.committed(tp)
            if committed is None or committed < end[tp]:
                return False
        return True


async def test_one_percent_bad_events_of_every_kind(
    services: Services, tmp_path: Path, worker_factory: list[Worker], redis_client: aioredis.Redis
) -> None:
    await redis_client.flushdb()
    worker = make_worker(worker_factory, services, tmp_path, max_event_bytes=4096)
    events = make_stream(MODEL, contacts=500, events=6_000, seed=15)
    good = known(events, MODEL)
    kinds = {
        "malformed_json": lambda i: b'{"event_id": "bad-%d", ' % i,
        "missing_field": lambda i: json.dumps(
            {"event_id": f"bad-{i}", "contact_id": "c-001", "type": "email_open"}
        ).encode(),
        "invalid_field": lambda i: json.dumps(
            {
                "event_id": f"bad-{i}",
                "contact_id": "c-001",
                "type": "email_open",
                "occurred_at": i,
            }
        ).encode(),
        "unknown_type": lambda i: json.dumps(
            {
                "event_id": f"bad-{i}",
                "contact_id": "c-001",
                "type": "telepathy",
                "occurred_at": "2026-10-01T00:00:00Z",
            }
        ).encode(),
        "oversized": lambda i: json.dumps(
            {
                "event_id": f"bad-{i}",
                "contact_id": "c-001",
                "type": "email_open",
                "occurred_at": "2026-10-01T00:00:00Z",
                "properties": {"pad": "x" * 5000},
            }
        ).encode(),
        "future_timestamp": lambda i: json.dumps(
            {
                "event_id": f"bad-{i}",
                "contact_id": "c-001",
                "type": "email_open",
                "occurred_at": "2099-01-01T00:00:00Z",
            }
        ).encode(),
    }
    per_kind = len(good) // 100
    stream: list[tuple[bytes | None, bytes]] = encoded(good)
    bad: dict[bytes, str] = {}
    n = 0
    for reason, make in kinds.items():
        for _ in range(per_kind):
            value = make(n)
            bad[value] = reason
            stream.insert((n * 97) % len(stream), (b"c-001", value))
            n += 1
    proc = worker.start()
    await produce(worker.settings, stream)
    await check_exact(services, worker, MODEL, good, redis_client)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        dead = await read_topic(services.kafka_bootstrap, worker.settings.dlq_topic)
        if len(dead) >= len(bad):
            break
        await asyncio.sleep(0.5)
    got = {v: h["reason"].decode() for _, v, h in dead}
    assert got == bad
    for _, _, headers in dead:
        assert headers["source_topic"].decode() == worker.settings.events_topic
        assert headers["detail"]
    assert proc.poll() is None, "the worker restarted or died"
    assert worker.tail(1_000_000).count("Worker]: Ready") == 1
