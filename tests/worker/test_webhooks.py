"""The webhook sink against real Kafka, Redis and local HTTP receivers.

The first test runs a whole worker; the others run the sink alone in this
process, on alerts published straight to the alerts topic, so that they
control what is on the topic before and after the sink starts.
"""

from __future__ import annotations

import asyncio
import hashlib
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
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

from stream_scorer.connections.redis import RedisClient, connect_settings
from stream_scorer.dev import services as devservices
from stream_scorer.scoring import alert_id as id_of
from stream_scorer.scoring import load_model, replay
from stream_scorer.settings import Settings
from stream_scorer.times import parse_time
from stream_scorer.worker import webhooks
from stream_scorer.worker.keys import hook_digest, hook_failed_key
from stream_scorer.worker.metrics import Metrics
from stream_scorer.worker.topics import ensure_topics
from stream_scorer.worker.webhooks import WebhookSink, hook_group, verify_signature

from ..support.scenario import make_stream
from ..support.secured import RedisTarget
from ..support.services import Services
from ..support.workers import Worker, encoded, make_worker, produce, unique_settings

pytestmark = pytest.mark.integration

MODEL = load_model("config/scoring.yaml")
SECRET = "hook-secret-for-tests"  # settings take 16 characters or more


class Receiver:
    """An HTTP endpoint that records what it is sent; ``answer`` picks the status per alert."""

    def __init__(self, answer: Callable[[str], int] = lambda alert_id: 204) -> None:
        self.answer = answer
        self.attempts: Counter[str] = Counter()
        self.delivered: list[str] = []
        self.bad_signatures = 0
        self.moved = 0  # requests that followed a redirect
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
        if 300 <= status < 400:  # to a page that answers 200, to a GET too
            return web.Response(status=status, headers={"Location": self.path + "/moved"})
        return web.Response(status=status)

    async def handle_moved(self, request: web.Request) -> web.Response:
        self.moved += 1
        return web.Response(status=200)

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
            app.router.add_route("*", receiver.path + "/moved", receiver.handle_moved)
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
    services: Services, tmp_path: Path, worker_factory: list[Worker], redis_target: RedisTarget
) -> None:
    # Again on the Redis Cluster: each URL's delivery records are keys of their own.
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
            **redis_target.settings,  # its client is emptied
        )
        proc = worker.start()
        events = make_stream(MODEL, contacts=60, events=1_500, seed=51)
        await produce(worker.settings, encoded(events))
        known = [e for e in events if e.type in MODEL.event_types]
        want = {id_of(c, MODEL) for c in replay(known, MODEL)[1]}
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
    settings: Settings, redis: RedisClient, metrics: Metrics | None = None
) -> AsyncIterator[WebhookSink]:
    """The sink, started as the worker starts it: ``start`` returns when it counts as ready."""
    sink = WebhookSink(settings, redis, metrics=metrics)
    await asyncio.wait_for(sink.start(), 30)  # whatever a URL's group does
    try:
        yield sink
        assert not sink.crashed, "the webhook sink crashed (it would stop the worker)"
    finally:
        await asyncio.wait_for(sink.stop(), 30)


def deliveries(metrics: Metrics, outcome: str) -> float:
    """``scorer_webhook_deliveries_total`` for one outcome, as ``GET /metrics`` shows it."""
    value = metrics.registry.get_sample_value(
        "scorer_webhook_deliveries_total", {"outcome": outcome}
    )
    return value or 0.0


def new_alert_id() -> str:
    """Like the worker's: 40 lowercase hex digits."""
    return hashlib.sha1(uuid.uuid4().bytes).hexdigest()


def alerts(count: int, contact: str = "contact") -> list[tuple[str, bytes]]:
    """Alerts as the worker publishes them (only ``alert_id`` matters to the sink)."""
    out = []
    for n in range(count):
        alert_id = new_alert_id()
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
    redis_target: RedisTarget,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Refusals go into the URL's capped list in one transaction (on a cluster too, as the
    minimal ACL user)."""
    monkeypatch.setattr(webhooks, "FAILED_KEEP", 3)
    batch = alerts(12, contact="secret-contact")
    refused = {alert_id for alert_id, _ in batch[::3]}  # 4 of them, on every partition
    picky = Receiver(lambda alert_id: 404 if alert_id in refused else 204)
    steady = Receiver()
    settings = sink_settings(services, tmp_path, picky, steady, **redis_target.settings)
    redis_client = redis_target.client  # every right, to look
    sink_client = connect_settings(settings)  # the worker's
    metrics = Metrics()
    caplog.set_level(logging.INFO)
    async with serving(picky, steady), producing(settings) as producer:
        async with running(settings, sink_client, metrics):
            want = await publish(producer, settings, batch)
            await until(
                lambda: set(steady.delivered) == want and set(picky.delivered) == want - refused,
                "a refusal held up the alerts behind it",
            )
            await until(
                lambda: deliveries(metrics, "failed") == 4,
                "refusals were not counted",
            )
            # The receiver has an alert before the sink records and counts it.
            await until(lambda: deliveries(metrics, "delivered") == 8 + 12, "not counted")
        assert {a: picky.attempts[a] for a in refused} == dict.fromkeys(refused, 1), "retried"
        assert deliveries(metrics, "delivered") == 8 + 12
        assert picky.bad_signatures == steady.bad_signatures == 0

        # The latest refusals, capped, newest first.
        records_raw = await redis_client.lrange(hook_failed_key(picky.url), 0, -1)
        records = [json.loads(r) for r in records_raw]
        assert len(records) == 3
        assert {r["alert_id"] for r in records} < refused
        for record in records:
            assert record["hook"] == hook_digest(picky.url)
            assert "url" not in record
            assert record["status"] == 404
            assert record["reason"] == "Not Found"
            assert abs(parse_time(record["failed_at"], "failed_at") / 1000 - time.time()) < 120
        assert await redis_client.exists(hook_failed_key(steady.url)) == 0
        raw = json.dumps([json.loads(r) for r in records_raw])
        assert picky.path not in raw, "a URL (and its token) stored in Redis"

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
        async with running(settings, sink_client):
            await asyncio.sleep(2)
        assert (len(picky.delivered), sum(picky.attempts.values()), len(steady.delivered)) == before
    await sink_client.aclose()


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
            await until(lambda: deliveries(metrics, "delivered") == 20, "deliveries not counted")
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


async def _commit_group(services: Services, group: str, offsets: dict[TopicPartition, int]) -> None:
    """Commit ``offsets`` for ``group`` (which has no member) as its last deliveries."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=services.kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


def logged(caplog: pytest.LogCaptureFixture, *words: str) -> list[str]:
    """The sink's log lines holding every one of ``words``."""
    lines = [r.getMessage() for r in caplog.records if r.name == webhooks.log.name]
    return [line for line in lines if all(w in line for w in words)]


async def test_a_redirect_is_not_a_delivery_and_is_retried_until_the_url_takes_the_post(
    services: Services,
    tmp_path: Path,
    redis_client: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    moving = [True]
    receiver = Receiver(lambda alert_id: 301 if moving[0] else 204)
    settings = sink_settings(services, tmp_path, receiver)
    metrics = Metrics()
    caplog.set_level(logging.INFO)
    async with serving(receiver), producing(settings) as producer:
        async with running(settings, redis_client, metrics):
            want = await publish(producer, settings, alerts(3), partitions=[0])
            await until(
                lambda: max(receiver.attempts.values(), default=0) >= 3, "a 301 was not retried"
            )
            assert receiver.moved == 0, "the redirect was followed (as a GET, without the alert)"
            assert not receiver.delivered
            assert deliveries(metrics, "delivered") == deliveries(metrics, "failed") == 0
            assert len(receiver.attempts) == 1, "the alerts behind a redirect went on"
            lines = logged(caplog, "redirects", "status=301", hook_digest(receiver.url))
            assert lines, "the redirect was not logged"
            assert not any(receiver.path in line for line in lines)

            moving[0] = False  # the URL fixed: everything arrives, in order, once
            await until(lambda: set(receiver.delivered) == want, "not delivered once fixed")
            await until(lambda: deliveries(metrics, "delivered") == 3, "deliveries not counted")
        assert receiver.moved == 0
        assert deliveries(metrics, "delivered") == 3
        assert sorted(receiver.delivered) == sorted(want)


class _ForeignAssignor(RoundRobinPartitionAssignor):  # type: ignore[misc]
    """Another client's protocol: a group it holds refuses the sink's consumer."""

    name = "foreign"


async def test_a_group_never_placed_holds_up_neither_the_start_nor_another_url(
    services: Services,
    tmp_path: Path,
    redis_client: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(webhooks, "PLACE_TIMEOUT_SECONDS", 1.0)
    held, steady = Receiver(), Receiver()
    settings = sink_settings(services, tmp_path, held, steady)
    caplog.set_level(logging.INFO)
    async with serving(held, steady), producing(settings) as producer:
        before = await publish(producer, settings, alerts(4))
        # Joining the held URL's group fails (only getmany says so), for as long as it lasts.
        foreign = AIOKafkaConsumer(
            settings.alerts_topic,
            bootstrap_servers=services.kafka_bootstrap,
            group_id=hook_group(settings.app_id, held.url),
            partition_assignment_strategy=(_ForeignAssignor,),
            enable_auto_commit=False,
        )
        await foreign.start()
        try:
            await until(lambda: bool(foreign.assignment()), "the foreign client did not join")
            async with running(settings, redis_client) as sink:  # a start that returns
                want = await publish(producer, settings, alerts(8))
                await until(
                    lambda: set(steady.delivered) == want, "a group not placed held up another"
                )
                await until(
                    lambda: bool(logged(caplog, "not placed", hook_digest(held.url))),
                    "a group not placed was not logged",
                )
                assert not held.attempts
                assert not sink.crashed

                # Once the group is free, the URL starts where the sink started.
                await foreign.stop()
                await until(lambda: set(held.delivered) == want, "the held URL never caught up")
                await asyncio.sleep(1)
        finally:
            await foreign.stop()
    assert sorted(held.delivered) == sorted(want)
    assert not before & set(held.delivered)
    assert sorted(steady.delivered) == sorted(want)


@pytest.mark.parametrize("kept_early", [True, False], ids=["kept-at-start", "kept-when-placed"])
async def test_latest_is_where_the_topic_ended_when_the_sink_started_however_late_the_group(
    services: Services,
    tmp_path: Path,
    redis_client: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    kept_early: bool,
) -> None:
    """An alert published once the sink counts as started is delivered, placed or not yet.

    Without ``kept_early`` Kafka took no commit before the group was joined
    (another worker was in it, say): the placement alone keeps the start.
    """
    receiver = Receiver()
    settings = sink_settings(services, tmp_path, receiver)
    gate = asyncio.Event()
    assign = webhooks._Hook.on_partitions_assigned

    async def late(self: webhooks._Hook, assigned: set[TopicPartition]) -> None:
        await gate.wait()  # the group is placed only after the alerts below
        await assign(self, assigned)

    async def not_kept(self: webhooks._Hook, ends: dict[TopicPartition, int]) -> None:
        return None

    monkeypatch.setattr(webhooks._Hook, "on_partitions_assigned", late)
    if not kept_early:
        monkeypatch.setattr(webhooks._Hook, "keep_start", not_kept)
    async with serving(receiver), producing(settings) as producer:
        before = await publish(producer, settings, alerts(8))
        async with running(settings, redis_client) as sink:
            after = await publish(producer, settings, alerts(8))
            assert not any(hook.placed for hook in sink.hooks)
            await asyncio.sleep(1)  # the end moved on before the group is placed
            gate.set()
            await until(lambda: set(receiver.delivered) >= after, "alerts after the start lost")
            await asyncio.sleep(1)
    assert sorted(receiver.delivered) == sorted(after)
    assert not before & set(receiver.delivered)


async def test_a_committed_offset_no_longer_on_the_topic_goes_on_at_the_oldest_alert_left(
    services: Services, tmp_path: Path, redis_client: aioredis.Redis
) -> None:
    receiver = Receiver()
    settings = sink_settings(services, tmp_path, receiver)
    assert settings.webhook_start == "latest"
    tps = [TopicPartition(settings.alerts_topic, p) for p in range(settings.topic_partitions)]
    async with serving(receiver), producing(settings) as producer:
        batch = alerts(10)
        await publish(producer, settings, batch, partitions=[0])
        # Delivered the first 2, then retention (here by hand) deleted the first 6.
        group = hook_group(settings.app_id, receiver.url)
        await _commit_group(services, group, {tps[0]: 2, **dict.fromkeys(tps[1:], 0)})
        admin = AIOKafkaAdminClient(bootstrap_servers=services.kafka_bootstrap)
        await admin.start()
        try:
            assert await admin.delete_records({tps[0]: RecordsToDelete(6)}) == {tps[0]: 6}
        finally:
            await admin.close()
        left = [alert_id for alert_id, _ in batch[6:]]
        async with running(settings, redis_client):
            await until(lambda: set(receiver.delivered) >= set(left), "alerts left were skipped")
            more = await publish(producer, settings, alerts(2), partitions=[0])
            await until(lambda: set(receiver.delivered) >= more, "later alerts")
            await asyncio.sleep(1)
    assert receiver.delivered[:4] == left
    assert sorted(receiver.delivered[4:]) == sorted(more)


async def test_records_that_are_not_alerts_are_skipped_counted_and_never_stop_delivery(
    services: Services,
    tmp_path: Path,
    redis_client: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = Receiver()
    settings = sink_settings(services, tmp_path, receiver)
    metrics = Metrics()
    caplog.set_level(logging.INFO)
    valid = new_alert_id()

    def alert(alert_id: object) -> bytes:
        return json.dumps({"alert_id": alert_id, "contact_id": "secret-contact"}).encode()

    junk: list[bytes | None] = [
        None,
        b"not json",
        b"\xff\xfe\x00",
        b"[1, 2]",
        b'"' + valid.encode() + b'"',
        b"{}",
        alert(12345),
        alert(valid.upper()),
        alert(valid[:-1] + "."),
        alert("a.b"),
        alert(valid + "\r\n"),
        alert(valid + "0"),
        # A scorer id, but nested too deep to parse: Python's json raises RecursionError.
        alert(valid)[:-1] + b', "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    ]
    async with (
        serving(receiver),
        producing(settings) as producer,
        running(settings, redis_client, metrics) as sink,
    ):
        for value in junk:  # all before the alerts, on their partition
            await producer.send_and_wait(settings.alerts_topic, value, key=b"junk", partition=0)
        want = await publish(producer, settings, alerts(3), partitions=[0])
        await until(lambda: set(receiver.delivered) == want, "junk stopped the alerts behind")
        await until(lambda: deliveries(metrics, "delivered") == 3, "deliveries not counted")
        assert not sink.crashed
    assert set(receiver.attempts) == want, "junk was POSTed"
    assert deliveries(metrics, "skipped") == len(junk)
    assert deliveries(metrics, "delivered") == 3
    assert len(logged(caplog, "not an alert", hook_digest(receiver.url))) == len(junk)
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name != "aiohttp.access")
    assert "secret-contact" not in ours


async def test_an_unexpected_error_on_one_alert_is_recorded_and_the_next_ones_arrive(
    services: Services,
    tmp_path: Path,
    redis_client: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver = Receiver()
    settings = sink_settings(services, tmp_path, receiver)
    metrics = Metrics()
    caplog.set_level(logging.INFO)
    batch = alerts(3)
    bad = batch[1][0]
    sign = webhooks.signature

    def failing(secret: str, timestamp: int, alert_id: str, body: bytes) -> str:
        if alert_id == bad:
            raise RuntimeError("a bug in the sink")
        return sign(secret, timestamp, alert_id, body)

    monkeypatch.setattr(webhooks, "signature", failing)
    async with (
        serving(receiver),
        producing(settings) as producer,
        running(settings, redis_client, metrics),
    ):
        want = await publish(producer, settings, batch, partitions=[0]) - {bad}
        await until(lambda: set(receiver.delivered) == want, "one error stopped delivery")
        await until(lambda: deliveries(metrics, "failed") == 1, "the error was not counted")
    assert bad not in receiver.attempts
    records = [
        json.loads(r) for r in await redis_client.lrange(hook_failed_key(receiver.url), 0, -1)
    ]
    assert [(r["alert_id"], r["hook"], r["status"], r["reason"]) for r in records] == [
        (bad, hook_digest(receiver.url), None, "internal_error")
    ]
    lines = logged(caplog, "RuntimeError", hook_digest(receiver.url), bad)
    assert len(lines) == 1


async def test_a_redis_error_that_is_not_transient_waits_and_retries_without_a_crash(
    services: Services,
    tmp_path: Path,
    redis_client: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    refusing = Receiver(lambda alert_id: 404)
    settings = sink_settings(services, tmp_path, refusing, redis_retry_max_backoff=0.2)
    metrics = Metrics()
    caplog.set_level(logging.INFO)
    key = hook_failed_key(refusing.url)
    await redis_client.set(key, "not a list")  # every LPUSH: WRONGTYPE
    async with (
        serving(refusing),
        producing(settings) as producer,
        running(settings, redis_client, metrics) as sink,
    ):
        want = await publish(producer, settings, alerts(2), partitions=[0])
        await until(
            lambda: len(logged(caplog, "redis refused", hook_digest(refusing.url))) >= 3,
            "the Redis error was not retried",
        )
        assert not sink.crashed
        assert len(refusing.attempts) == 1, "a refusal not recorded was skipped"
        assert deliveries(metrics, "failed") == 0

        await redis_client.delete(key)  # fixed: both refusals recorded, in order
        await until(lambda: deliveries(metrics, "failed") == 2, "not retried once fixed")
    records = [json.loads(r) for r in await redis_client.lrange(key, 0, -1)]
    assert sorted(r["alert_id"] for r in records) == sorted(want)
    assert all(r["status"] == 404 for r in records)


def test_the_webhook_sink_is_registered_before_the_events_consumer(
    services: Services, tmp_path: Path
) -> None:
    """Faust starts services in that order: the sink's start is recorded before events flow."""
    from stream_scorer.worker.app import create_app

    settings, _ = unique_settings(services, tmp_path, webhook_urls="http://127.0.0.1:1/hook")
    app = create_app(settings)
    names = [service.__name__ for service in app._extra_services]
    assert names.index("Webhooks") < names.index("Events")


def test_a_refusal_rule_warns_that_a_url_refuses_alerts() -> None:
    import yaml

    rules = yaml.safe_load((Path(__file__).parents[2] / "deploy" / "alerts.rules.yml").read_text())
    rule = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}["ScorerWebhookRefusals"]
    assert rule["expr"] == (
        'sum by (instance) (increase(scorer_webhook_deliveries_total{outcome="failed"}[15m])) > 0'
    )
    assert rule["labels"]["severity"] == "warning"
    assert "4xx" in rule["annotations"]["summary"]
    assert "ss:{hook:<digest>}:failed" in rule["annotations"]["summary"]
