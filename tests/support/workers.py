"""Worker processes and the Kafka and Redis chores of the integration tests.

A real ``stream-scorer worker`` per test, on unique topics and its own
consumer group, stopped by pid; messages produced and topics read back with
plain aiokafka clients.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException

from stream_scorer.connections.kafka import kafka_options
from stream_scorer.connections.redis import RedisClient
from stream_scorer.dev import services as devservices
from stream_scorer.events import Event
from stream_scorer.scoring import ContactState, ScoringModel, alert_id, alert_payload, replay
from stream_scorer.settings import Settings
from stream_scorer.worker.keys import contact_keys
from stream_scorer.worker.pipeline import Pipeline
from stream_scorer.worker.store import RedisStore

from .services import Services


@dataclass
class Worker:
    """A ``stream-scorer worker`` child process; stopped by pid."""

    settings: Settings
    env: dict[str, str]
    log: Path
    procs: list[devservices.subprocess.Popen[bytes]] = field(default_factory=list)
    port: int = 0

    def start(
        self, timeout: float = 90.0, same_port: bool = False
    ) -> devservices.subprocess.Popen[bytes]:
        """Start a worker process; ``same_port`` keeps the last one's (a restarted pod)."""
        start = self.log.stat().st_size if self.log.exists() else 0
        if not (same_port and self.port):
            self.port = devservices.free_port()  # one per process; the last started is here
        env = {**self.env, "SCORER_WEB_PORT": str(self.port)}
        proc = devservices.spawn(
            [sys.executable, "-m", "stream_scorer", "worker"], self.log, env=env
        )
        self.procs.append(proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited {proc.returncode}:\n{self.tail()}")
            with self.log.open("rb") as f:
                f.seek(start)
                if b"Worker]: Ready" in f.read():
                    return proc
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready in {timeout}s:\n{self.tail()}")

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop_all(self) -> None:
        for proc in self.procs:
            devservices.stop_process(proc)


async def metric(worker: Worker, name: str) -> float:
    """The sum of a metric's samples on the worker's ``GET /metrics``."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{worker.port}/metrics") as response,
    ):
        text = await response.text()
    found = re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, flags=re.MULTILINE)
    return sum(float(v) for v in found)


def unique_settings(
    services: Services, tmp: Path, **overrides: object
) -> tuple[Settings, dict[str, str]]:
    tag = uuid.uuid4().hex[:8]
    values: dict[str, object] = {
        "kafka_bootstrap_servers": services.kafka_bootstrap,
        "redis_url": services.redis_url,
        "events_topic": f"t-{tag}.events",
        "alerts_topic": f"t-{tag}.alerts",
        "dlq_topic": f"t-{tag}.dlq",
        "app_id": f"scorer-test-{tag}",
        "web_port": devservices.free_port(),
        "topic_partitions": 4,
        "model_path": str(Path("config/scoring.yaml").resolve()),
        # Streams in these tests carry historical times; tests of expiry turn the sweeper on.
        "sweep_interval_seconds": 0,
        **overrides,
    }
    settings = Settings(**values)  # type: ignore[arg-type]
    env = {**os.environ, **{f"SCORER_{k.upper()}": str(v) for k, v in values.items()}}
    return settings, env


def refused_start(worker: Worker) -> tuple[int, str, float]:
    """Run a worker that should not start: its exit code, what it printed, and how fast."""
    began = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "stream_scorer", "worker"],
        env={**worker.env, "SCORER_WEB_PORT": str(worker.settings.web_port)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc.returncode, proc.stderr + proc.stdout, time.monotonic() - began


def make_worker(made: list[Worker], services: Services, tmp: Path, **overrides: object) -> Worker:
    settings, env = unique_settings(services, tmp, **overrides)
    w = Worker(settings=settings, env=env, log=tmp / f"worker-{len(made)}.log")
    made.append(w)
    return w


def encoded(events: Sequence[Event]) -> list[tuple[bytes | None, bytes]]:
    """Events as Kafka messages: keyed by contact, the native JSON as the value."""
    return [(e.contact_id.encode(), e.model_dump_json().encode()) for e in events]


async def produce(settings: Settings, messages: list[tuple[bytes | None, bytes]]) -> None:
    """Publish to the events topic, connected as ``settings`` say (SASL, TLS)."""
    producer = AIOKafkaProducer(**kafka_options(settings), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send(settings.events_topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def read_topic(
    bootstrap: str, topic: str, settings: Settings | None = None
) -> list[tuple[bytes | None, bytes, dict[str, bytes]]]:
    """Every record of a topic from the beginning to its current end.

    With ``settings``, connected as they say (``bootstrap`` is then theirs).
    """
    options = {"bootstrap_servers": bootstrap} if settings is None else kafka_options(settings)
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    parts = [p["partition"] for d in described if d["error_code"] == 0 for p in d["partitions"]]
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    if not tps:
        return []
    consumer = AIOKafkaConsumer(**options, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[tuple[bytes | None, bytes, dict[str, bytes]]] = []
        while any([await consumer.position(tp) < end[tp] for tp in tps]):
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                out.extend((r.key, r.value, dict(r.headers)) for r in records)
        return out
    finally:
        await consumer.stop()


def pipeline_on(store: RedisStore) -> Pipeline:
    """The worker's pipeline on ``store``, without Kafka: for :meth:`Pipeline.apply`."""

    async def no_dead_letters(key: bytes | None, value: bytes | None, headers: object) -> None:
        raise AssertionError("valid events are never dead-lettered")

    return Pipeline(Settings(), store.model, store, no_dead_letters)


async def wait_until_scored(
    store: RedisStore,
    client: RedisClient,
    expected: dict[str, ContactState],
    wait_seconds: float = 90.0,
) -> dict[str, ContactState]:
    """Until every contact has applied all its events and relayed all its alerts.

    A Redis node away (a restart test) is waited for, as the worker does.
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        got: dict[str, ContactState] = {}
        try:
            for cid in expected:
                state = await store.read_state(cid)
                if state is not None:
                    got[cid] = state
            pending = sum([await client.llen(contact_keys(cid)[1]) for cid in expected])
        except (RedisConnectionError, RedisClusterException):
            assert time.monotonic() < deadline, "Redis did not come back"
            await asyncio.sleep(0.25)
            continue
        done = [cid for cid, s in expected.items() if cid in got and got[cid].seen == s.seen]
        if len(done) == len(expected) and not pending:
            return got
        if time.monotonic() > deadline:
            wrong = [cid for cid in expected if cid not in done][:5]
            detail = "; ".join(
                f"{cid}: "
                + (
                    "no state"
                    if cid not in got
                    else f"{len(set(expected[cid].seen) - set(got[cid].seen))} ids missing, "
                    f"{len(set(got[cid].seen) - set(expected[cid].seen))} extra"
                )
                for cid in wrong
            )
            raise AssertionError(
                f"only {len(done)}/{len(expected)} contacts scored, {pending} alerts pending "
                f"({detail})"
            )
        await asyncio.sleep(0.25)


async def assert_scored_like_engine(
    settings: Settings,
    client: RedisClient,
    model: ScoringModel,
    events: Sequence[Event],
    *,
    exactly_once: bool = True,
    wait_seconds: float = 120.0,
) -> list[tuple[bytes | None, bytes, dict[str, bytes]]]:
    """The worker's results equal the engine's replay of ``events``; returns the alerts.

    Every contact's state (scores, tiers, awards, remembered ids) equals the
    replay's, and the alerts topic holds exactly the engine's crossings, each
    with the engine's payload and keyed by its contact: once each with
    ``exactly_once``, else at least once (a crash may publish one again).
    """
    expected, crossings = replay([e for e in events if e.type in model.event_types], model)
    store = RedisStore(client, model, ttl_seconds=3600, namespace=settings.events_topic)
    got = await wait_until_scored(store, client, expected, wait_seconds)
    for cid, state in expected.items():
        assert got[cid].to_json() == state.to_json(), cid
    records = await read_topic(settings.kafka_bootstrap_servers, settings.alerts_topic, settings)
    want = {alert_id(c, model): alert_payload(c, model) for c in crossings}
    published: dict[str, bytes] = {}
    for key, value, _ in records:
        payload = json.loads(value)
        assert key == payload["contact_id"].encode()
        assert value == want.get(payload["alert_id"]), "an alert the engine did not cross"
        published[payload["alert_id"]] = value
    assert sorted(published) == sorted(want), "alerts differ from the engine's crossings"
    if exactly_once:
        assert len(records) == len(published), "an alert was published twice"
    return records
