"""The webhook sink against a running worker and two local HTTP receivers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import defaultdict
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition

from stream_scorer.dev import services as devservices
from stream_scorer.scoring import load_model, replay
from stream_scorer.worker.webhooks import signature

from ..support.scenario import make_stream
from ..support.services import Services
from ..support.workers import Worker, encoded, make_worker, produce

pytestmark = pytest.mark.integration

MODEL = load_model("config/scoring.yaml")
SECRET = "hook-secret"


class Receiver:
    """An HTTP endpoint that records deliveries; the first ``fail`` answers are 503."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.failed = 0
        self.delivered: list[str] = []
        self.bad_signatures = 0
        self.port = devservices.free_port()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("X-Scorer-Signature") != signature(SECRET, body):
            self.bad_signatures += 1
        if self.failed < self.fail:
            self.failed += 1
            return web.Response(status=503)
        alert = json.loads(body)
        assert request.headers["X-Scorer-Alert-Id"] == alert["alert_id"]
        self.delivered.append(alert["alert_id"])
        return web.Response(status=204)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


async def test_every_alert_reaches_every_url_once_signed_and_retried(
    services: Services, tmp_path: Path, worker_factory: list[Worker], redis_client: aioredis.Redis
) -> None:
    await redis_client.flushdb()
    steady, flaky = Receiver(), Receiver(fail=5)
    runners = []
    for receiver in (steady, flaky):
        app = web.Application()
        app.router.add_post("/hook", receiver.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", receiver.port).start()
        runners.append(runner)
    try:
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

        async def everyone_has_all() -> None:
            deadline = time.monotonic() + 90
            while not all(set(r.delivered) >= want for r in (steady, flaky)):
                assert time.monotonic() < deadline, "webhooks did not receive every alert"
                await asyncio.sleep(0.5)

        await everyone_has_all()
        assert flaky.failed == 5, "the failing receiver was retried"
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
        consumer = AIOKafkaConsumer(
            bootstrap_servers=services.kafka_bootstrap,
            group_id=f"{worker.settings.app_id}-webhooks",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            tps = [
                TopicPartition(worker.settings.alerts_topic, p)
                for p in range(worker.settings.topic_partitions)
            ]
            consumer.assign(tps)
            await consumer.commit(dict.fromkeys(tps, 0))
        finally:
            await consumer.stop()
        before = (len(steady.delivered), len(flaky.delivered))
        worker.start()
        await _until_group_at_end(services, f"{worker.settings.app_id}-webhooks", tps)
        assert (len(steady.delivered), len(flaky.delivered)) == before
    finally:
        for runner in runners:
            await runner.cleanup()


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
