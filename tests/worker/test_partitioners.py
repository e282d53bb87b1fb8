"""One contact, one partition, one order: whatever partitioner the producers use.

librdkafka's producers (confluent-kafka, kcat, Go and .NET clients) hash keys
with CRC32 by default, the Java client and aiokafka with murmur2: two such
producers put one contact's events on two partitions, and a worker reading
a backlog would apply one partition's later events before the other's
earlier ones. The worker forwards an event found away from its contact's
home partition (murmur2, as the Java client picks it) and applies it from
there. These tests use the real clients: librdkafka through confluent-kafka,
aiokafka, and the Java client from Kafka's own jars.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import subprocess
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaTimeoutError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from confluent_kafka import Producer as LibrdkafkaProducer
from hypothesis import given
from hypothesis import strategies as st

from stream_scorer.dev import services as devservices
from stream_scorer.events import Event
from stream_scorer.scoring import alert_id, alert_payload, load_model, replay
from stream_scorer.settings import Settings
from stream_scorer.worker.consumer import EventsConsumer
from stream_scorer.worker.metrics import Metrics
from stream_scorer.worker.pipeline import FORWARDED_FROM, Message, Pipeline, SendForward
from stream_scorer.worker.relay import Relay
from stream_scorer.worker.routing import home_partition, murmur2
from stream_scorer.worker.store import RedisStore
from stream_scorer.worker.topics import ensure_topics

from ..support.scenario import make_stream
from ..support.services import Services
from ..support.workers import (
    Worker,
    make_worker,
    metric,
    read_topic,
    unique_settings,
    wait_until_scored,
)

MODEL = load_model("config/scoring.yaml")
PARTITIONS = 8


@given(st.binary(max_size=300))
def test_murmur2_is_aiokafkas(data: bytes) -> None:
    assert murmur2(data) == aiokafka_murmur2(data)


@given(st.text(min_size=1, max_size=200), st.integers(min_value=1, max_value=10_000))
def test_home_partition_is_where_aiokafka_puts_the_contact_id_as_key(
    contact_id: str, partitions: int
) -> None:
    everywhere = list(range(partitions))
    chosen = DefaultPartitioner()(contact_id.encode(), everywhere, everywhere)
    assert home_partition(contact_id, partitions) == chosen


_JAVA = """
import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

public class Partitions {
    public static void main(String[] args) throws Exception {
        for (String line : Files.readAllLines(Path.of(args[0]), StandardCharsets.UTF_8)) {
            String[] parts = line.split("\\t", 2);
            int n = Integer.parseInt(parts[0]);
            byte[] key = parts[1].getBytes(StandardCharsets.UTF_8);
            System.out.println(BuiltInPartitioner.partitionForKey(key, n));
        }
    }
}
"""


def test_home_partition_is_where_the_java_client_puts_the_contact_id_as_key(
    tmp_path: Path,
) -> None:
    java = shutil.which("java")
    assert java is not None, "Java runs Kafka in these tests; it must be installed"
    rng = random.Random(13)
    cases = [(1, "c-1"), (7, ""), (100, "ü-ñ-中-\U0001f600")] + [
        (
            rng.randrange(1, 500),
            "".join(rng.choices("abcdef0123456789-_.@é", k=rng.randrange(1, 60))),
        )
        for _ in range(400)
    ]
    cases = [(n, cid) for n, cid in cases if cid]  # an empty key is not a contact id
    (tmp_path / "keys.tsv").write_text("".join(f"{n}\t{cid}\n" for n, cid in cases))
    (tmp_path / "Partitions.java").write_text(_JAVA)
    out = subprocess.run(
        [
            java,
            "-cp",
            f"{devservices.fetch_kafka()}/*",
            str(tmp_path / "Partitions.java"),
            str(tmp_path / "keys.tsv"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    assert len(out) == len(cases)
    for (n, cid), java_partition in zip(cases, out, strict=True):
        assert home_partition(cid, n) == int(java_partition), (n, cid)


# --- the worker, against real producers ----------------------------------------------


async def produce_with_aiokafka(settings: Settings, events: Sequence[Event]) -> None:
    """Keyed by contact id with aiokafka's default partitioner (murmur2, as Java's)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        for e in events:
            await producer.send(
                settings.events_topic, e.model_dump_json().encode(), key=e.contact_id.encode()
            )
        await producer.flush()
    finally:
        await producer.stop()


def produce_with_librdkafka(
    settings: Settings, events: Sequence[Event], partitioner: str | None = None
) -> dict[str, set[int]]:
    """Keyed by contact id with librdkafka's default partitioner (or the one named)."""
    config: dict[str, object] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
    }
    if partitioner is not None:
        config["partitioner"] = partitioner
    producer = LibrdkafkaProducer(config)
    landed: dict[str, set[int]] = defaultdict(set)
    failed: list[str] = []

    def delivered(err: object, msg: object) -> None:
        if err is not None:
            failed.append(str(err))
        else:
            landed[msg.key().decode()].add(msg.partition())  # type: ignore[attr-defined]

    for e in events:
        producer.produce(
            settings.events_topic,
            key=e.contact_id.encode(),
            value=e.model_dump_json().encode(),
            on_delivery=delivered,
        )
        producer.poll(0)
    assert producer.flush(60) == 0, "librdkafka did not deliver every event"
    assert not failed, failed
    return landed


async def assert_equals_the_engine(
    services: Services,
    redis_client: aioredis.Redis,
    worker: Worker,
    events: Sequence[Event],
) -> None:
    known = [e for e in events if e.type in MODEL.event_types]
    states, crossings = replay(sorted(known, key=lambda e: e.occurred_at), MODEL)
    store = RedisStore(redis_client, MODEL, ttl_seconds=3600)
    got = await wait_until_scored(store, redis_client, states, wait_seconds=120)
    wrong = [cid for cid, state in states.items() if got[cid].to_json() != state.to_json()]
    assert not wrong, f"{len(wrong)} contacts differ from the engine's event-time replay"

    want = {alert_id(c, MODEL): alert_payload(c, MODEL) for c in crossings}
    records = await read_topic(services.kafka_bootstrap, worker.settings.alerts_topic)
    payloads: dict[str, set[bytes]] = defaultdict(set)
    for _, value, _ in records:
        payloads[json.loads(value)["alert_id"]].add(value)
    assert all(len(p) == 1 for p in payloads.values()), "an alert id with two payloads"
    assert {i: p.pop() for i, p in payloads.items()} == want


def away_from_home(landed: dict[str, set[int]]) -> int:
    return sum(1 for cid, parts in landed.items() if parts - {home_partition(cid, PARTITIONS)})


@pytest.mark.integration
async def test_librdkafka_set_to_murmur2_random_puts_every_contact_home(
    services: Services, tmp_path: Path
) -> None:
    # What docs/streaming.md tells librdkafka users to set: no event takes the detour.
    settings, _ = unique_settings(services, tmp_path, topic_partitions=PARTITIONS)
    await ensure_topics(settings)
    events = make_stream(MODEL, contacts=300, events=600, seed=3)
    landed = produce_with_librdkafka(settings, events, partitioner="murmur2_random")
    assert set(landed) == {e.contact_id for e in events}
    assert away_from_home(landed) == 0
    assert away_from_home(produce_with_librdkafka(settings, events)) > 200  # the default


@pytest.mark.integration
async def test_two_producers_mixed_after_a_backlog_match_the_event_time_replay(
    services: Services, tmp_path: Path, worker_factory: list[Worker], redis_client: aioredis.Redis
) -> None:
    # Each event goes through one of two producers at random, both sending as they
    # come: the worker starts after all are in Kafka (a restart, a burst).
    await redis_client.flushdb()
    worker = make_worker(
        worker_factory,
        services,
        tmp_path,
        topic_partitions=PARTITIONS,
        reorder_grace_ms=3000,
    )
    await ensure_topics(worker.settings)
    events = make_stream(MODEL, contacts=200, events=3000, seed=23)
    rng = random.Random(5)
    by_librdkafka = [rng.random() < 0.5 for _ in events]
    await produce_with_aiokafka(
        worker.settings, [e for e, r in zip(events, by_librdkafka, strict=True) if not r]
    )
    landed = produce_with_librdkafka(
        worker.settings, [e for e, r in zip(events, by_librdkafka, strict=True) if r]
    )
    assert away_from_home(landed) > 100, "librdkafka should put most contacts elsewhere"

    worker.start()
    await assert_equals_the_engine(services, redis_client, worker, events)
    assert await metric(worker, "scorer_events_forwarded_total") >= sum(by_librdkafka) / 2


@pytest.mark.integration
async def test_a_producer_switch_after_a_backlog_matches_the_event_time_replay(
    services: Services, tmp_path: Path, worker_factory: list[Worker], redis_client: aioredis.Redis
) -> None:
    # The first half of the history from aiokafka, the rest from librdkafka (a service
    # rewritten in Go, say), no reordering grace: forwarded events land after the ones
    # already on the home partition, so the contact's order holds. A worker killed
    # twice while forwarding neither loses an event nor applies one twice.
    await redis_client.flushdb()
    worker = make_worker(worker_factory, services, tmp_path, topic_partitions=PARTITIONS)
    await ensure_topics(worker.settings)
    events = sorted(
        make_stream(MODEL, contacts=150, events=3000, seed=31), key=lambda e: e.occurred_at
    )
    half = len(events) // 2
    await produce_with_aiokafka(worker.settings, events[:half])
    landed = produce_with_librdkafka(worker.settings, events[half:])
    assert away_from_home(landed) > 100

    store = RedisStore(redis_client, MODEL, ttl_seconds=3600)
    for pause in (0.3, 0.8):  # killed while forwarding and scoring the backlog
        proc = worker.start(same_port=True)
        await wait_for_progress(store, worker.settings)
        await asyncio.sleep(pause)
        proc.kill()
        proc.wait()
    worker.start(same_port=True)
    await assert_equals_the_engine(services, redis_client, worker, events)


async def wait_for_progress(store: RedisStore, settings: Settings) -> None:
    """Until the worker has recorded a position (it is consuming)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if await store.applied(settings.app_id, settings.events_topic):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the worker recorded no position within 60 s")


# --- a forward's offset is recorded only once Kafka has the copy ---------------------


def forwarding_pipeline(
    settings: Settings, store: RedisStore, send_forward: SendForward
) -> tuple[Pipeline, EventsConsumer, Metrics]:
    async def no_sends(*args: object) -> None:
        raise AssertionError("nothing else is sent")

    metrics = Metrics()
    pipeline = Pipeline(settings, MODEL, store, no_sends, metrics, send_forward=send_forward)
    relay = Relay(store, no_sends, metrics, 1.0)
    return pipeline, EventsConsumer(settings, store, pipeline, relay, metrics), metrics


def found_away(
    settings: Settings, cid: str, n: int, headers: Sequence[tuple[str, bytes]] = ()
) -> list[Message]:
    """``n`` events of ``cid`` found on a partition that is not its home."""
    elsewhere = (home_partition(cid, PARTITIONS) + 1) % PARTITIONS
    return [
        (
            cid.encode(),
            Event(
                event_id=f"e-{i}",
                contact_id=cid,
                type="page_visit",
                occurred_at="2026-11-01T00:00:00Z",  # type: ignore[arg-type]
            )
            .model_dump_json()
            .encode(),
            settings.events_topic,
            elsewhere,
            40 + i,
            list(headers),
        )
        for i in range(n)
    ]


@pytest.mark.integration
async def test_a_position_is_recorded_only_after_its_forwards_are_acknowledged(
    services: Services, tmp_path: Path, redis_client: aioredis.Redis
) -> None:
    settings, _ = unique_settings(services, tmp_path, topic_partitions=PARTITIONS)
    store = RedisStore(redis_client, MODEL, ttl_seconds=3600)
    sent: list[tuple[bytes, list[tuple[str, bytes]]]] = []
    ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def send_forward(
        key: bytes, value: bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> asyncio.Future[None]:
        sent.append((key, list(headers)))
        return ack

    pipeline, events, metrics = forwarding_pipeline(settings, store, send_forward)
    cid = "c-forwarded"
    (msg,) = found_away(settings, cid, 1)
    decoded = pipeline.decode([msg])
    away = pipeline.route(decoded, PARTITIONS)
    assert decoded.good == []
    assert len(away) == 1
    forwarding = asyncio.ensure_future(pipeline.forward(away))
    tp = TopicPartition(settings.events_topic, msg[3])
    finishing = asyncio.ensure_future(
        events._finish([], {tp: 41}, events.relay.hold([]), [forwarding])
    )
    await asyncio.sleep(0.5)
    # keyed by the contact: the producer's partitioner picks its home
    assert sent == [(cid.encode(), [(FORWARDED_FROM, f"{msg[3]}:40".encode())])]
    assert not finishing.done()
    assert await store.applied(settings.app_id, settings.events_topic) == {}, (
        "the position moved past an event whose forward Kafka has not acknowledged"
    )
    ack.set_exception(RuntimeError("the broker refused it"))  # not transient: the worker stops
    with pytest.raises(RuntimeError):
        await finishing
    assert await store.applied(settings.app_id, settings.events_topic) == {}
    assert metrics.forwarded._value.get() == 0  # type: ignore[attr-defined]


@pytest.mark.integration
async def test_after_a_failed_forward_the_rest_are_sent_again_in_order(
    services: Services, tmp_path: Path, redis_client: aioredis.Redis
) -> None:
    settings, _ = unique_settings(services, tmp_path, topic_partitions=PARTITIONS)
    store = RedisStore(redis_client, MODEL, ttl_seconds=3600)
    sent: list[str] = []
    loop = asyncio.get_running_loop()

    async def send_forward(
        key: bytes, value: bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> asyncio.Future[None]:
        event_id = json.loads(value or b"{}")["event_id"]
        ack: asyncio.Future[None] = loop.create_future()
        if event_id == "e-1" and event_id not in sent:  # its first ack times out
            ack.set_exception(KafkaTimeoutError())
        else:
            ack.set_result(None)
        sent.append(event_id)
        return ack

    pipeline, _, metrics = forwarding_pipeline(settings, store, send_forward)
    decoded = pipeline.decode(found_away(settings, "c-order", 3))
    await pipeline.forward(pipeline.route(decoded, PARTITIONS))
    # e-2 went out before e-1's ack failed: it goes again after e-1, so whatever
    # Kafka kept of the first attempt, e-1 and e-2 follow in order after it.
    assert sent == ["e-0", "e-1", "e-2", "e-1", "e-2"]
    assert metrics.forwarded._value.get() == 3  # type: ignore[attr-defined]


def test_an_event_forwarded_once_is_applied_where_it_landed(tmp_path: Path) -> None:
    # After partitions are added, the producer and this consumer may see different
    # homes for a while: a second forward could bounce the event between them.
    settings = Settings(topic_partitions=PARTITIONS)

    async def never(*args: object) -> None:
        raise AssertionError("not forwarded again")

    pipeline = Pipeline(settings, MODEL, None, never)  # type: ignore[arg-type]
    once = found_away(settings, "c-landed", 2, [(FORWARDED_FROM, b"3:17")])
    fresh = found_away(settings, "c-landed", 1)
    decoded = pipeline.decode([*once, *fresh])
    away = pipeline.route(decoded, PARTITIONS)
    assert [msg for _, msg in decoded.good] == once
    assert [msg for _, msg in away] == fresh


@pytest.mark.integration
async def test_a_later_batchs_forwards_never_overtake_an_earlier_batchs(
    services: Services, tmp_path: Path, redis_client: aioredis.Redis
) -> None:
    # The producer makes a sender wait when its buffer is full: the next batch's
    # forwards, started meanwhile, must queue behind, or one contact's events would
    # reach its home partition out of order.
    settings, _ = unique_settings(services, tmp_path, topic_partitions=PARTITIONS)
    store = RedisStore(redis_client, MODEL, ttl_seconds=3600)
    loop = asyncio.get_running_loop()
    full = asyncio.Event()
    sent: list[str] = []

    async def send_forward(
        key: bytes, value: bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> asyncio.Future[None]:
        event_id = json.loads(value or b"{}")["event_id"]
        if event_id == "e-1":
            await full.wait()  # the buffer is full until the test says
        sent.append(event_id)
        ack: asyncio.Future[None] = loop.create_future()
        ack.set_result(None)
        return ack

    pipeline, _, _ = forwarding_pipeline(settings, store, send_forward)
    messages = found_away(settings, "c-queue", 4)
    first = pipeline.decode(messages[:2])
    second = pipeline.decode(messages[2:])
    earlier = asyncio.ensure_future(pipeline.forward(pipeline.route(first, PARTITIONS)))
    await asyncio.sleep(0.05)
    later = asyncio.ensure_future(pipeline.forward(pipeline.route(second, PARTITIONS)))
    await asyncio.sleep(0.2)
    assert sent == ["e-0"], "the later batch went ahead of the earlier one"
    full.set()
    await asyncio.gather(earlier, later)
    assert sent == ["e-0", "e-1", "e-2", "e-3"]
