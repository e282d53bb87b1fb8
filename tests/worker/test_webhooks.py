"""The webhook sink against real Kafka, Redis and local HTTP receivers.

The first test runs a whole worker; the others run the sink alone in this
process, on alerts published straight to the alerts topic, so that they
control what is on the topic before and after the sink starts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stream_scorer.dev import services as devservices
from stream_scorer.scoring import load_model, replay
from stream_scorer.settings import Settings
from stream_scorer.times import parse_time
from stream_scorer.worker import webhooks
from stream_scorer.worker.keys import hook_failed_key
from stream_scorer.worker.metrics import Metrics
from stream_scorer.worker.topics import ensure_topics
from stream_scorer.worker.webhooks import WebhookSink, hook_group, verify_signature

from ..support.scenario import make_stream
from ..support.services import Services
from ..support.workers import Worker, encoded, make_worker, produce, unique_settings

pytestmark = pytest.mark.integration

MODEL = load_model("config/scoring.yaml")
SECRET = "hook-secret"


class Receiver:
    """An HTTP endpoint that records what it is sent; ``answer`` picks the status per alert."""

    def __init__(self, answer: Callable[[str], int] = lambda alert_id: 204) -> None:
        self.answer = answer
        self.attempts: Counter[str] = Counter()
        self.delivered: list[str] = []
        self.bad_signatures = 0
        self.port = devservices.free_port()
        self.path = f"/hook/{uuid.uuid4().hex[:8]}"  # its own Redis keys, whatever ran before

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        alert_id = request.headers["X-Scorer-Alert-Id"]
        assert alert_id == json.loads(body)["alert_id"]
        if not verify_signature(
            SECRET,
            request.headers.get("X-Scorer-Timestamp", ""),
            alert_id,
            body,
            request.headers.get("X-Scorer-Signature", ""),
        ):
            self.bad_signatures += 1
        self.attempts[alert_id] += 1
        status = self.answer(alert_id)
        if 200 <= status < 300:
            self.delivered.append(alert_id)
        return web.Response(status=status)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"


@asynccontextmanager
async def serving(*receivers: Receiver) -> AsyncIterator[None]:
    runners = []
    try:
        for receiver in receivers:
            app = web.Application()
            app.router.add_post(receiver.path, receiver.handle)
            runner = web.AppRunner(app)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, "127.0.0.1", receiver.port).start()
        yield
    finally:
        for runner in runners:
            await runner.cleanup()


async def until(done: Callable[[], bool], what: str, wait_seconds: float = 30) -> None:
    deadline = time.monotonic() + wait_seconds
    while not done():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


async def test_every_alert_reaches_every_url_once_signed_and_retried(
    services: Services, tmp_path: Path, worker_factory: list[Worker], redis_client: aioredis.Redis
) -> None:
    await redis_client.flushdb()
    flaky_left = [5]

    def flaky_answer(alert_id: str) -> int:
        if flaky_left[0]:
            flaky_left[0] -= 1
            return 503
        return 204

    steady, flaky = Receiver(), Receiver(flaky_answer)
    async with serving(steady, flaky):
        worker = make_worker(
            worker_factory,
            services,
            tmp_path,
            webhook_urls=f"{steady.url},{flaky.url}",
            webhook_secret=SECRET,
            webhook_max_backoff=0.5,
        )
        proc = worker.start()
        events = make_stream(MODEL, contacts=60, events=1_500, seed=51)
        await produce(worker.settings, encoded(events))
        known = [e for e in events if e.type in MODEL.event_types]
        want = {c.alert_id for c in replay(known, MODEL)[1]}
        assert want

        await until(
            lambda: all(set(r.delivered) >= want for r in (steady, flaky)),
            "webhooks did not receive every alert",
            wait_seconds=90,
        )
        assert flaky_left == [0], "the failing receiver was retried"
        for receiver in (steady, flaky):
            assert set(receiver.delivered) == want
            counts: dict[str, int] = defaultdict(int)
            for alert_id in receiver.delivered:
                counts[alert_id] += 1
            assert max(counts.values()) == 1, "an alert was delivered twice"
            assert receiver.bad_signatures == 0

        # Replay the alerts topic from the start: nothing is delivered again.
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(60)
        tps = [
            TopicPartition(worker.settings.alerts_topic, p)
            for p in range(worker.settings.topic_partitions)
        ]
        groups = [hook_group(worker.settings.app_id, r.url) for r in (steady, flaky)]
        for group in groups:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=services.kafka_bootstrap, group_id=group, enable_auto_commit=False
            )
            await consumer.start()
            try:
                consumer.assign(tps)
                await consumer.commit(dict.fromkeys(tps, 0))
            finally:
                await consumer.stop()
        before = (len(steady.delivered), len(flaky.delivered))
        worker.start()
        for group in groups:
            await _until_group_at_end(services, group, tps)
        assert (len(steady.delivered), len(flaky.delivered)) == before


async def _until_group_at_end(services: Services, group: str, tps: list[TopicPartition]) -> None:
    """Until ``group`` has committed every partition's end: it read everything again."""
    deadline = time.monotonic() + 60
    consumer = AIOKafkaConsumer(
        bootstrap_servers=services.kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        end = await consumer.end_offsets(tps)
        while True:
            done = [await consumer.committed(tp) for tp in tps]
            if all(d is not None and d >= end[tp] for d, tp in zip(done, tps, strict=True)):
                return
            assert time.monotonic() < deadline, "the webhook sink did not read the topic again"
            await asyncio.sleep(0.5)
    finally:
        await consumer.stop()


# The sink alone, on alerts published straight to the topic.


def sink_settings(
    services: Services, tmp_path: Path, *receivers: Receiver, **overrides: object
) -> Settings:
    settings, _ = unique_settings(
        services,
        tmp_path,
        webhook_urls=",".join(r.url for r in receivers),
        webhook_secret=SECRET,
        webhook_max_backoff=0.5,
        **overrides,
    )
    return settings


@asynccontextmanager
async def running(
    settings: Settings, redis: aioredis.Redis, metrics: Metrics | None = None
) -> AsyncIterator[WebhookSink]:
    """The sink, started as the worker starts it: ``start`` returns when it counts as ready."""
    sink = WebhookSink(settings, redis, metrics=metrics)
    await sink.start()
    try:
        yield sink
    finally:
        await asyncio.wait_for(sink.stop(), 30)


def deliveries(metrics: Metrics, outcome: str) -> float:
    """``scorer_webhook_deliveries_total`` for one outcome, as ``GET /metrics`` shows it."""
    value = metrics.registry.get_sample_value(
        "scorer_webhook_deliveries_total", {"outcome": outcome}
    )
    return value or 0.0


def alerts(count: int, contact: str = "contact") -> list[tuple[str, bytes]]:
    """Alerts as the worker publishes them (only ``alert_id`` matters to the sink)."""
    out = []
    for n in range(count):
        alert_id = uuid.uuid4().hex
        body = {"alert_id": alert_id, "contact_id": f"{contact}-{n}", "direction": "up"}
        out.append((alert_id, json.dumps(body).encode()))
    return out


async def publish(
    producer: AIOKafkaProducer,
    settings: Settings,
    batch: list[tuple[str, bytes]],
    partitions: list[int] | None = None,
) -> set[str]:
    """Each alert to the next of ``partitions`` (all of them by default), acknowledged."""
    parts = partitions if partitions is not None else list(range(settings.topic_partitions))
    for n, (alert_id, body) in enumerate(batch):
        await producer.send_and_wait(
            settings.alerts_topic, body, key=alert_id.encode(), partition=parts[n % len(parts)]
        )
    return {alert_id for alert_id, _ in batch}


@asynccontextmanager
async def producing(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def test_a_refused_alert_is_recorded_once_and_the_next_ones_still_arrive(
    services: Services,
    tmp_path: Path,
    redis_client: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(webhooks, "FAILED_KEEP", 3)
    batch = alerts(12, contact="secret-contact")
    refused = {alert_id for alert_id, _ in batch[::3]}  # 4 of them, on every partition
    picky = Receiver(lambda alert_id: 404 if alert_id in refused else 204)
    steady = Receiver()
    settings = sink_settings(services, tmp_path, picky, steady)
    metrics = Metrics()
    caplog.set_level(logging.INFO)
    async with serving(picky, steady), producing(settings) as producer:
        async with running(settings, redis_client, metrics):
            want = await publish(producer, settings, batch)
            await until(
                lambda: set(steady.delivered) == want and set(picky.delivered) == want - refused,
                "a refusal held up the alerts behind it",
            )
            await until(
                lambda: deliveries(metrics, "failed") == 4,
                "refusals were not counted",
            )
        assert {a: picky.attempts[a] for a in refused} == dict.fromkeys(refused, 1), "retried"
        assert deliveries(metrics, "delivered") == 8 + 12
        assert picky.bad_signatures == steady.bad_signatures == 0

        # The latest refusals, capped, newest first.
        records = [
            json.loads(r) for r in await redis_client.lrange(hook_failed_key(picky.url), 0, -1)
        ]
        assert len(records) == 3
        assert {r["alert_id"] for r in records} < refused
        for record in records:
            assert record["url"] == picky.url
            assert record["status"] == 404
            assert record["reason"] == "Not Found"
            assert abs(parse_time(record["failed_at"], "failed_at") / 1000 - time.time()) < 120
        assert await redis_client.exists(hook_failed_key(steady.url)) == 0

        # Logged, without a contact id or a URL.
        logged = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert len(logged) == 4
        assert all("status=404" in line for line in logged)
        assert {a for a in refused if any(a in line for line in logged)} == refused
        ours = "\n".join(r.getMessage() for r in caplog.records if r.name != "aiohttp.access")
        assert "secret-contact" not in ours
        assert picky.path not in ours

        # A new sink on the same groups: everything is delivered or refused already.
        before = (len(picky.delivered), sum(picky.attempts.values()), len(steady.delivered))
        async with running(settings, redis_client):
            await asyncio.sleep(2)
        assert (len(picky.delivered), sum(picky.attempts.values()), len(steady.delivered)) == before


async def test_a_url_failing_with_503_holds_up_only_itself(
    services: Services, tmp_path: Path, redis_client: aioredis.Redis
) -> None:
    down, steady = Receiver(lambda alert_id: 503), Receiver()
    settings = sink_settings(services, tmp_path, down, steady)
    metrics = Metrics()
    async with serving(down, steady), producing(settings) as producer:
        async with running(settings, redis_client, metrics):
            want = await publish(producer, settings, alerts(20))
            await until(lambda: set(steady.delivered) == want, "a failing URL held up another")
            await until(lambda: max(down.attempts.values(), default=0) >= 3, "503 not retried")
            started = time.monotonic()
        assert time.monotonic() - started < 10, "stopping waited for a URL that keeps failing"
    assert not down.delivered
    assert deliveries(metrics, "delivered") == 20
    assert deliveries(metrics, "failed") == 0
    assert await redis_client.exists(hook_failed_key(down.url)) == 0


async def test_a_new_sink_starts_at_the_latest_alert_and_keeps_its_place(
    services: Services, tmp_path: Path, redis_client: aioredis.Redis
) -> None:
    receiver = Receiver()
    settings = sink_settings(services, tmp_path, receiver)
    assert settings.webhook_start == "latest"
    async with serving(receiver), producing(settings) as producer:
        before = await publish(producer, settings, alerts(8))
        async with running(settings, redis_client):
            # Published the moment the sink counts as started: not one may be skipped.
            after = await publish(producer, settings, alerts(4), partitions=[0])
            await until(lambda: set(receiver.delivered) >= after, "an alert after the start")
            await asyncio.sleep(1)
        assert set(receiver.delivered) == after, "alerts from before the sink were sent"

        # Stopped with nothing ever delivered from partitions 1-3: their start was kept.
        away = await publish(producer, settings, alerts(6), partitions=[1, 2, 3])
        async with running(settings, redis_client):
            await until(lambda: set(receiver.delivered) >= after | away, "alerts while away")
            await asyncio.sleep(1)
    assert sorted(receiver.delivered) == sorted(after | away)
    assert not before & set(receiver.delivered)


async def test_a_new_sink_keeps_its_start_even_when_it_delivered_nothing(
    services: Services, tmp_path: Path, redis_client: aioredis.Redis
) -> None:
    receiver = Receiver()
    settings = sink_settings(services, tmp_path, receiver)
    async with serving(receiver), producing(settings) as producer:
        before = await publish(producer, settings, alerts(4))
        async with running(settings, redis_client):
            pass  # started, then stopped, nothing to deliver: only its start was committed
        away = await publish(producer, settings, alerts(8))
        async with running(settings, redis_client):
            await until(lambda: set(receiver.delivered) >= away, "alerts while away were skipped")
            await asyncio.sleep(1)
    assert sorted(receiver.delivered) == sorted(away)
    assert not before & set(receiver.delivered)


async def test_two_workers_share_each_url_and_send_each_alert_once(
    services: Services, tmp_path: Path, redis_client: aioredis.Redis
) -> None:
    first, second = Receiver(), Receiver()
    settings = sink_settings(services, tmp_path, first, second)
    want: set[str] = set()

    def everything_arrived() -> bool:
        return all(set(r.delivered) == want for r in (first, second))

    async with (
        serving(first, second),
        producing(settings) as producer,
        running(settings, redis_client),
    ):
        want |= await publish(producer, settings, alerts(10))
        async with running(settings, redis_client):  # a second worker: a rebalance
            want |= await publish(producer, settings, alerts(10))
            await until(everything_arrived, "alerts were lost while sharing")
        want |= await publish(producer, settings, alerts(10))  # and back to one
        await until(everything_arrived, "alerts were lost after a worker left")
    for receiver in (first, second):
        assert sorted(receiver.delivered) == sorted(want), "an alert was sent twice"


async def test_a_new_sink_from_the_earliest_alert_sends_those_already_published(
    services: Services, tmp_path: Path, redis_client: aioredis.Redis
) -> None:
    receiver = Receiver()
    settings = sink_settings(services, tmp_path, receiver, webhook_start="earliest")
    async with serving(receiver), producing(settings) as producer:
        before = await publish(producer, settings, alerts(8))
        async with running(settings, redis_client):
            after = await publish(producer, settings, alerts(4))
            await until(lambda: set(receiver.delivered) == before | after, "not every alert")
    assert len(receiver.delivered) == 12
