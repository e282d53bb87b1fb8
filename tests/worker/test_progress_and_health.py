"""Positions, oversized dead letters, retries and readiness, on real Kafka and Redis."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    TopicAuthorizationFailedError,
)
from faust.exceptions import ProducerSendError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from stream_scorer.dev import services as devservices
from stream_scorer.scoring import load_model, replay
from stream_scorer.worker.health import Health
from stream_scorer.worker.keys import progress_key
from stream_scorer.worker.metrics import Metrics
from stream_scorer.worker.retry import is_transient, retry
from stream_scorer.worker.store import RedisStore
from stream_scorer.worker.topics import ensure_topics

from ..support.scenario import make_stream
from ..support.services import Services
from ..support.workers import (
    Worker,
    encoded,
    make_worker,
    metric,
    produce,
    read_topic,
    wait_until_scored,
)

MODEL = load_model("config/scoring.yaml")


async def ready(worker: Worker) -> tuple[int, dict[str, object]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{worker.port}/readyz") as response,
    ):
        return response.status, await response.json()


# Units: what is retried, and what health reports.


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_health_reports_a_long_failure_and_a_stuck_loop_then_recovers() -> None:
    clock = Clock()
    metrics = Metrics()
    health = Health(10, metrics, clock=clock)
    assert health.problem() is None  # not started: no heartbeat expected yet
    health.beat()
    first = health.failing("redis.apply")
    clock.now += 9
    health.beat()
    second = health.failing("redis.apply")  # another loop failing on the same operation
    assert health.failing("redis.apply", first) == first
    assert health.problem() is None  # failing, but not for long
    clock.now += 2
    health.beat()
    assert health.problem() == "redis.apply has been failing for 11 s"
    assert b"scorer_stalled 1.0" in metrics.render()
    health.done(first)
    assert health.problem() is None  # the other loop has failed for 2 s only
    clock.now += 9
    health.beat()
    assert health.problem() == "redis.apply has been failing for 11 s"
    health.done(second)
    assert health.problem() is None
    assert b"scorer_stalled 0.0" in metrics.render()
    clock.now += 11  # no failure, but the loop did not come round
    assert health.problem() == "the events consumer has not made progress for 11 s"


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (KafkaConnectionError(), True),
        (KafkaTimeoutError(), True),
        (TopicAuthorizationFailedError(), False),
        (MessageSizeTooLargeError(), False),
        (RedisConnectionError(), True),
        (ResponseError("OOM command not allowed"), True),
        (ResponseError("NOSCRIPT No matching script"), False),
        (ResponseError("ERR wrong number of arguments"), False),
    ],
)
def test_only_retriable_errors_are_retried(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient
    wrapped = ProducerSendError("Error while sending")  # how Faust's producer raises them
    wrapped.__cause__ = error
    assert is_transient(wrapped) is transient


async def test_retry_reports_to_health_and_gives_up_on_what_cannot_succeed() -> None:
    health = Health(60, Metrics())
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise RedisConnectionError("away")
        assert health._failing, "failures are reported while they last"
        return "ok"

    assert await retry("redis.test", flaky, 0.01, first_delay=0.001, health=health) == "ok"
    assert not health._failing

    async def forever() -> None:
        raise RedisConnectionError("away")

    # A retry loop cancelled (a revocation that timed out) is not failing any more.
    task = asyncio.ensure_future(retry("redis.test", forever, 0.01, health=health))
    await asyncio.sleep(0.05)
    assert health._failing
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not health._failing

    async def refused() -> None:
        raise TopicAuthorizationFailedError()

    with pytest.raises(TopicAuthorizationFailedError):
        await retry("kafka.test", refused, 0.01, health=health)


# Live: a real worker.


async def test_a_recorded_position_beyond_the_end_is_reset_and_nothing_is_lost(
    services: Services, tmp_path: Path, worker_factory: list[Worker], redis_client: aioredis.Redis
) -> None:
    # The topic was recreated (or Redis came from another cluster): its positions mean nothing.
    await redis_client.flushdb()
    worker = make_worker(worker_factory, services, tmp_path)
    settings = worker.settings
    await ensure_topics(settings)
    key = progress_key(settings.app_id, settings.events_topic)
    await redis_client.hset(key, mapping={p: 1_000_000 for p in range(settings.topic_partitions)})
    events = [e for e in make_stream(MODEL, 40, 400, seed=31) if e.type in MODEL.event_types]
    await produce(settings, encoded(events))
    worker.start()
    states, _ = replay(events, MODEL)
    store = RedisStore(redis_client, MODEL, ttl_seconds=3600)
    got = await wait_until_scored(store, redis_client, states)
    assert {cid: s.to_json() for cid, s in got.items()} == {
        cid: s.to_json() for cid, s in states.items()
    }
    assert await metric(worker, "scorer_position_resets_total") == settings.topic_partitions
    assert "recorded position is beyond the end of the partition" in worker.tail(100_000)
    recorded = {int(p): int(o) for p, o in (await redis_client.hgetall(key)).items()}
    assert sum(recorded.values()) == len(events)  # reset, then moved by the batches


async def test_a_dead_letter_too_large_for_kafka_is_truncated_and_marked(
    services: Services, tmp_path: Path, worker_factory: list[Worker], redis_client: aioredis.Redis
) -> None:
    await redis_client.flushdb()
    worker = make_worker(worker_factory, services, tmp_path)
    settings = worker.settings
    worker.start()
    huge = b'{"event_id": "e-huge", "pad": "' + b"x" * 1_040_000 + b'"}'
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, max_request_size=2_000_000
    )
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.events_topic, huge, key=b"c-huge", headers=[("trace", b"t-1")]
        )
    finally:
        await producer.stop()
    events = [e for e in make_stream(MODEL, 10, 100, seed=32) if e.type in MODEL.event_types]
    await produce(settings, encoded(events))  # sent after it, scored all the same
    states, _ = replay(events, MODEL)
    await wait_until_scored(RedisStore(redis_client, MODEL, ttl_seconds=3600), redis_client, states)
    deadline = time.monotonic() + 30
    while not (dead := await read_topic(settings.kafka_bootstrap_servers, settings.dlq_topic)):
        assert time.monotonic() < deadline, "no dead letter"
        await asyncio.sleep(0.5)
    [(key, value, headers)] = dead
    assert key == b"c-huge"
    assert headers["reason"] == b"oversized"
    assert headers["truncated"] == b"true"
    assert headers["original_bytes"] == str(len(huge)).encode()
    assert headers["trace"] == b"t-1"  # the original headers are kept when they fit
    assert value == huge[: settings.max_event_bytes]


async def test_a_stall_makes_the_worker_not_ready_and_shows_in_metrics(
    services: Services, tmp_path: Path, worker_factory: list[Worker]
) -> None:
    redis_server = devservices.start_redis(tmp_path / "redis")
    try:
        worker = make_worker(
            worker_factory, services, tmp_path, redis_url=redis_server.url, stall_seconds=3
        )
        worker.start()
        deadline = time.monotonic() + 60
        while (await ready(worker))[0] != 200:  # partitions assigned
            assert time.monotonic() < deadline, await ready(worker)
            await asyncio.sleep(0.5)
        redis_server.stop()
        events = [e for e in make_stream(MODEL, 10, 200, seed=33) if e.type in MODEL.event_types]
        await produce(worker.settings, encoded(events))
        deadline = time.monotonic() + 60
        while (await ready(worker))[0] != 503 or await metric(worker, "scorer_stalled") != 1:
            assert time.monotonic() < deadline, "the stall never showed"
            await asyncio.sleep(0.5)
        _, body = await ready(worker)
        assert body["checks"]["progress"] is False
        assert re.search(r"(failing|not made progress) for \d+ s", body["stalled"])
        # The lag gauge moves without any batch completing.
        while await metric(worker, "scorer_consumer_lag") < len(events):
            assert time.monotonic() < deadline, "the lag gauge did not move"
            await asyncio.sleep(0.5)
        assert await metric(worker, "scorer_retries_total") > 0
        redis_server.restart()
        client = aioredis.from_url(redis_server.url)
        try:
            store = RedisStore(client, MODEL, ttl_seconds=3600)
            await wait_until_scored(store, client, replay(events, MODEL)[0])
        finally:
            await client.aclose()
        deadline = time.monotonic() + 60
        while (await ready(worker))[0] != 200:
            assert time.monotonic() < deadline, "the worker did not become ready again"
            await asyncio.sleep(0.5)
        assert await metric(worker, "scorer_stalled") == 0
    finally:
        redis_server.stop()
