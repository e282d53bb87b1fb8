"""End-to-end throughput and latency of the worker, against baselines from the same run.

Measured on one topic of N events (default 200,000) for real Apache Kafka and
redis-server (started here unless KAFKA_BOOTSTRAP_SERVERS / REDIS_URL are set):

1. consume-only: a plain aiokafka ``getmany`` loop over the topic (the baseline);
2. engine alone: the same events replayed by the reference engine, in process;
3. engine + store: the events, decoded, through the worker's
   :class:`Pipeline` (engine, compare-and-set in Redis) in the worker's batch
   size, and cleared from the outboxes, no Kafka;
4. pipeline: the same from the worker's raw messages (decode and check too);
5. worker: ``stream-scorer worker`` from start to all offsets committed;
   with ``--workers N``, also N worker processes in one group on the same topic;
   with ``--redis-cluster``, also engine + store and the worker(s) on a local
   Redis Cluster of three primaries (one script call per slot);
6. latency: p50/p99 from an event's send to its alert's arrival, at a fixed
   offered load (default 5,000 events/s).

Prints each figure and its ratio to consume-only, measured in the same run
(the in-process ones with the worker's collector settings). Never asserts
on time.

    .venv/bin/python benchmarks/pipeline.py [--events 200000] [--contacts 20000]
        [--workers 3] [--redis-cluster]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from redis.asyncio.cluster import RedisCluster

from stream_scorer.connections.redis import RedisClient, connect, connect_settings
from stream_scorer.dev import services as devservices
from stream_scorer.dev.cluster import start_redis_cluster
from stream_scorer.events import CONTACT_UPDATED, Event, encode_event
from stream_scorer.scoring import replay
from stream_scorer.scoring.model import ScoringModel, load_model
from stream_scorer.settings import Settings
from stream_scorer.worker import collector
from stream_scorer.worker.pipeline import Message, Pipeline
from stream_scorer.worker.store import RedisStore
from stream_scorer.worker.topics import ensure_topics

ROOT = Path(__file__).resolve().parents[1]


def make_events(
    model: ScoringModel, n: int, contacts: int, start: datetime, prefix: str = "c"
) -> list[Event]:
    rng = random.Random(3)
    types = sorted(t for t in model.event_types if t != CONTACT_UPDATED)
    urls = ["https://a.io/pricing", "https://a.io/blog/x", "https://a.io/careers", "/"]
    out = []
    for i in range(n):
        cid = f"{prefix}-{rng.randrange(contacts)}"
        if rng.random() < 0.05:
            props: dict[str, object] = {
                "country": rng.choice(["US", "DE", "BR"]),
                "job_title": rng.choice(["VP Sales", "Engineer", "Head of Marketing"]),
                "company_size": rng.choice([20, 300, 4000]),
            }
            kind = CONTACT_UPDATED
        else:
            props = {"url": rng.choice(urls), "form_id": rng.choice(["newsletter", "x"])}
            kind = rng.choice(types)
        out.append(
            Event(
                event_id=f"{prefix}-e{i}",
                contact_id=cid,
                type=kind,
                occurred_at=start + timedelta(milliseconds=i * 5),
                properties=props,
            )
        )
    return out


def kafka_and_redis(stack: contextlib.ExitStack) -> tuple[str, str]:
    """``KAFKA_BOOTSTRAP_SERVERS`` and ``REDIS_URL`` if both are set, else local services."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    redis_url = os.environ.get("REDIS_URL")
    if not bootstrap or not redis_url:
        kafka, redis = stack.enter_context(devservices.local_services())
        bootstrap, redis_url = kafka.bootstrap_servers, redis.url
    return bootstrap, redis_url


def fresh(settings: Settings, name: str, **changes: object) -> Settings:
    """The same settings on new topics, group and web port: a worker that replays nothing."""
    tag = f"{settings.app_id}-{name}"
    return settings.model_copy(
        update={
            "app_id": tag,
            "events_topic": f"{tag}.events",
            "alerts_topic": f"{tag}.alerts",
            "dlq_topic": f"{tag}.dlq",
            "web_port": devservices.free_port(),
            **changes,
        }
    )


async def scratch_pipeline(
    stack: contextlib.AsyncExitStack, model: ScoringModel, namespace: str, state_format: int = 0
) -> tuple[aioredis.Redis, RedisStore, Pipeline]:
    """The worker's pipeline on an empty Redis: a redis-server of our own, else ``REDIS_URL``
    (flushed, and flushed again on the way out). No Kafka: every event must be valid."""
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:  # nothing else in its memory
        server = devservices.start_redis(Path(tempfile.mkdtemp(prefix=f"{namespace}-")))
        stack.callback(server.stop)
        redis_url = server.url
    client = connect(redis_url)  # the worker's client
    await client.flushdb()
    stack.push_async_callback(client.aclose)
    stack.push_async_callback(client.flushdb)
    settings = Settings(redis_url=redis_url)
    store = RedisStore(
        client,
        model,
        settings.contact_ttl_seconds,
        dedupe_seconds=int(settings.dedupe_days * 86_400),
        namespace=namespace,
        cache_contacts=settings.state_cache_contacts,
        state_format=state_format or settings.state_format,
    )

    async def no_dead_letters(*args: object) -> None:
        raise RuntimeError("a benchmark's events are all valid")

    return client, store, Pipeline(settings, model, store, no_dead_letters)


async def produce(bootstrap: str, topic: str, events: list[Event]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024, acks="all"
    )
    await producer.start()
    try:
        futures = [
            await producer.send(topic, e.model_dump_json().encode(), key=e.contact_id.encode())
            for e in events
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def consume_only(bootstrap: str, topic: str, total: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"plain-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=1000,
    )
    await consumer.start()
    try:
        seen = 0
        start = time.perf_counter()
        while seen < total:
            batch = await consumer.getmany(timeout_ms=500, max_records=1000)
            seen += sum(len(v) for v in batch.values())
            if batch:
                await consumer.commit()
        return total / (time.perf_counter() - start)
    finally:
        await consumer.stop()


def engine_only(model: ScoringModel, events: list[Event]) -> float:
    """Events/s of the reference engine alone, in process: the upper bound of any worker."""
    start = time.perf_counter()
    replay(events, model)
    return len(events) / (time.perf_counter() - start)


async def redis_cpu_seconds(client: RedisClient) -> float:
    """CPU time the Redis server has used so far (user and system, every thread; every
    primary of a cluster)."""
    if isinstance(client, RedisCluster):
        nodes = [await client.info("cpu", target_nodes=n) for n in client.get_primaries()]
    else:
        nodes = [await client.info("cpu")]
    return sum(float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]) for cpu in nodes)


async def pipeline_only(
    settings: Settings, model: ScoringModel, events: list[Event], batch: int, decoded: bool = False
) -> tuple[float, float]:
    """Events/s through the worker's pipeline on Redis, no Kafka, and Redis's CPU µs per event.

    From raw messages (decode and check, engine, compare-and-set), or with
    ``decoded`` from events already decoded (engine and store only).
    """

    async def dead_letter(key: bytes | None, value: bytes | None, headers: object) -> None:
        raise RuntimeError("the benchmark's events are all valid")

    messages: list[Message] = [
        (e.contact_id.encode(), encode_event(e), settings.events_topic, 0, i, [])
        for i, e in enumerate(events)
    ]
    client = connect_settings(settings)  # the worker's client, single or cluster
    store = RedisStore(
        client,
        model,
        ttl_seconds=3600,
        namespace=f"bench-{uuid.uuid4()}",
        cache_contacts=settings.state_cache_contacts,
    )
    pipeline = Pipeline(settings, model, store, dead_letter)
    try:
        cpu = await redis_cpu_seconds(client)
        start = time.perf_counter()
        for i in range(0, len(messages), batch):
            if decoded:
                pending = (await pipeline.apply(events[i : i + batch])).pending
            else:
                pending = await pipeline.run(messages[i : i + batch])
            await store.mark_relayed(pending)
        rate = len(events) / (time.perf_counter() - start)
        return rate, (await redis_cpu_seconds(client) - cpu) / len(events) * 1e6
    finally:
        await client.flushdb()
        await client.aclose()


@contextlib.contextmanager
def worker_process(settings: Settings, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    # Unset settings stay unset (str(None) would be a value, "None"), and there are no secrets.
    values = settings.model_dump(mode="json", exclude_none=True)
    env = {**os.environ, **{f"SCORER_{k.upper()}": str(v) for k, v in values.items()}}
    proc = devservices.spawn([sys.executable, "-m", "stream_scorer", "worker"], log, env=env)
    try:
        yield proc
    finally:
        devservices.stop_process(proc)


@contextlib.contextmanager
def worker_processes(
    settings: Settings, log: Path, count: int
) -> Iterator[list[tuple[subprocess.Popen[bytes], Path]]]:
    """``count`` workers in one consumer group, each with its own web port and log."""
    with contextlib.ExitStack() as stack:
        procs = []
        for i in range(count):
            own = settings.model_copy(update={"web_port": devservices.free_port()})
            path = log if count == 1 else log.with_name(f"{log.stem}-{i}{log.suffix}")
            procs.append((stack.enter_context(worker_process(own, path)), path))
        yield procs


async def committed_all(bootstrap: str, group: str, topic: str, partitions: int) -> bool:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        end = await consumer.end_offsets(tps)
        for tp in tps:
            done = await consumer.committed(tp)
            if done is None or done < end[tp]:
                return False
        return True
    finally:
        await consumer.stop()


def _ready(log: Path) -> bool:
    return log.exists() and "Worker]: Ready" in log.read_text(errors="replace")


def _exited(log: Path, proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        raise RuntimeError(f"the worker exited {proc.returncode}:\n{log.read_text()[-3000:]}")


async def _wait_ready(log: Path, proc: subprocess.Popen[bytes]) -> None:
    while not _ready(log):
        _exited(log, proc)  # a worker that cannot start is an error, not a wait
        await asyncio.sleep(0.05)


async def worker_rate(settings: Settings, total: int, log: Path, workers: int = 1) -> float:
    """Events/s of ``workers`` processes from all ready to every offset committed."""
    with worker_processes(settings, log, workers) as procs:
        for proc, path in procs:
            await _wait_ready(path, proc)
        start = time.perf_counter()
        while not await committed_all(  # noqa: ASYNC110 - polling Kafka
            settings.kafka_bootstrap_servers,
            settings.app_id,
            settings.events_topic,
            settings.topic_partitions,
        ):
            await asyncio.sleep(0.2)
        return total / (time.perf_counter() - start)


async def latency(
    settings: Settings, model: ScoringModel, rate: int, seconds: float, log: Path
) -> list[float]:
    """Offer ``rate`` events/s of the throughput mix; time the alerts of probe contacts.

    One event in 50 belongs to a probe: a new contact that fits well
    (``contact_updated``) and asks for a demo, which makes it an MQL. The
    demo request's send time starts its clock; its alert's arrival stops it.
    """
    sent: dict[str, float] = {}
    delays: list[float] = []
    background = [
        e.model_dump_json().encode()
        for e in make_events(
            model,
            int(rate * seconds) + 1,
            20_000,
            datetime.now(UTC) - timedelta(hours=1),
            prefix=f"bg{uuid.uuid4().hex[:6]}",
        )
    ]
    keys = [json.loads(v)["contact_id"].encode() for v in background]
    with worker_process(settings, log) as proc:
        await _wait_ready(log, proc)
        consumer = AIOKafkaConsumer(
            settings.alerts_topic,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            auto_offset_reset="latest",
        )
        await consumer.start()
        await asyncio.sleep(1)
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=5, acks="all"
        )
        await producer.start()
        stop = asyncio.Event()

        async def collect() -> None:
            async for record in consumer:
                alert = json.loads(record.value)
                if alert["event_id"] in sent:
                    delays.append(time.monotonic() - sent.pop(alert["event_id"]))
                if stop.is_set():
                    return

        collector = asyncio.create_task(collect())
        begin = time.monotonic()
        n = probes = 0
        while time.monotonic() - begin < seconds:
            if n % 50 == 0:
                probes += 1
                cid = f"l-{uuid.uuid4().hex[:10]}"
                now = datetime.now(UTC).isoformat()
                fit = {
                    "event_id": f"lat-{probes}-a",
                    "contact_id": cid,
                    "type": "contact_updated",
                    "occurred_at": now,
                    "properties": {
                        "country": "US",
                        "job_title": "VP Sales",
                        "company_size": 500,
                        "industry": "saas",
                    },
                }
                demo = {
                    "event_id": f"lat-{probes}-d",
                    "contact_id": cid,
                    "type": "demo_request",
                    "occurred_at": now,
                    "properties": {},
                }
                await producer.send(
                    settings.events_topic, json.dumps(fit).encode(), key=cid.encode()
                )
                sent[str(demo["event_id"])] = time.monotonic()
                await producer.send(
                    settings.events_topic, json.dumps(demo).encode(), key=cid.encode()
                )
                n += 2
            else:
                i = n % len(background)
                await producer.send(settings.events_topic, background[i], key=keys[i])
                n += 1
            ahead = begin + n / rate - time.monotonic()
            if ahead > 0.002:
                await asyncio.sleep(ahead)
        offered = n / (time.monotonic() - begin)
        await producer.stop()
        drain = time.monotonic() + 120  # until every probe's alert is in, or two minutes
        while len(delays) < probes and time.monotonic() < drain:  # noqa: ASYNC110
            await asyncio.sleep(0.5)
        stop.set()
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector
        await consumer.stop()
    print(f"  offered {offered:,.0f} events/s for {seconds:.0f}s, {probes} probes")
    return delays


async def again(settings: Settings, name: str, **changes: object) -> Settings:
    """A new consumer group on the same events, after an empty Redis: a worker run afresh."""
    rerun = settings.model_copy(
        update={"app_id": f"{settings.app_id}-{name}", "web_port": devservices.free_port()}
        | changes
    )
    client = connect_settings(rerun)
    try:
        await client.flushdb()  # the contacts' states of the run before would dedupe it all
    finally:
        await client.aclose()
    return rerun


async def scale_out(
    settings: Settings,
    model: ScoringModel,
    events: list[Event],
    tmp: Path,
    workers: int,
    cluster: bool,
) -> list[tuple[str, float]]:
    """The rows of ``--workers`` and ``--redis-cluster``: the same events, afresh each time."""
    rows: list[tuple[str, float]] = []
    total = len(events)
    if workers > 1:
        many = await again(settings, f"w{workers}")
        rate = await worker_rate(many, total, tmp / "workers.log", workers)
        rows.append((f"{workers} workers end to end", rate))
    if cluster:
        with contextlib.ExitStack() as stack:
            nodes = start_redis_cluster(Path(tempfile.mkdtemp(prefix="bench-cluster-")))
            stack.callback(nodes.stop)
            on_cluster = await again(settings, "cluster", redis_url=nodes.url, redis_cluster=True)
            stored, redis_us = await pipeline_only(
                on_cluster, model, events, on_cluster.batch_max_events, decoded=True
            )
            rows.append(("engine + store, Redis Cluster", stored))
            print(f"  Redis Cluster CPU per event (engine + store): {redis_us:.1f} µs")
            count = max(workers, 1)
            rate = await worker_rate(on_cluster, total, tmp / "cluster.log", count)
            rows.append((f"{count} worker(s), Redis Cluster", rate))
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=5_000)
    parser.add_argument("--latency-seconds", type=float, default=20)
    parser.add_argument("--model", default=str(ROOT / "config" / "scoring.yaml"))
    parser.add_argument(
        "--workers", type=int, default=1, help="also run N workers in one group (N > 1)"
    )
    parser.add_argument(
        "--redis-cluster",
        action="store_true",
        help="also run engine + store and the worker(s) on a local Redis Cluster",
    )
    args = parser.parse_args()
    model = load_model(args.model)

    with contextlib.ExitStack() as stack:
        bootstrap, redis_url = kafka_and_redis(stack)
        tmp = Path(tempfile.mkdtemp(prefix="bench-"))
        tag = uuid.uuid4().hex[:6]
        settings = Settings(
            kafka_bootstrap_servers=bootstrap,
            redis_url=redis_url,
            events_topic=f"bench-{tag}.events",
            alerts_topic=f"bench-{tag}.alerts",
            dlq_topic=f"bench-{tag}.dlq",
            app_id=f"bench-{tag}",
            model_path=Path(args.model),
            web_port=devservices.free_port(),
            sweep_interval_seconds=0,
            topic_partitions=8,
            log_level="INFO",
        )
        await ensure_topics(settings)
        events = make_events(
            model, args.events, args.contacts, datetime.now(UTC) - timedelta(days=1)
        )
        print(
            f"{len(events):,} events for {args.contacts:,} contacts, model {model.name}, "
            f"batch {settings.batch_max_events}"
        )
        t = time.perf_counter()
        await produce(bootstrap, settings.events_topic, events)
        print(f"  produced in {time.perf_counter() - t:.1f}s")

        collector.tune()  # as the worker does once it is set up
        consume = await consume_only(bootstrap, settings.events_topic, len(events))
        engine = engine_only(model, events)
        stored, redis_us = await pipeline_only(
            settings, model, events, settings.batch_max_events, decoded=True
        )
        scored, _ = await pipeline_only(settings, model, events, settings.batch_max_events)
        worker = await worker_rate(settings, len(events), tmp / "worker.log")
        rows = [
            ("consume-only (aiokafka getmany)", consume),
            ("engine alone (in process)", engine),
            ("engine + store (decoded events)", stored),
            ("pipeline (raw messages, no Kafka)", scored),
            ("worker end to end", worker),
        ]
        rows += await scale_out(settings, model, events, tmp, args.workers, args.redis_cluster)
        print(f"  {'':36} {'events/s':>10}  of consume-only")
        for name, rate in rows:
            print(f"  {name:36} {rate:>10,.0f}  {rate / consume:>6.3f}")
        print(f"  worker / consume-only: {worker / consume:.3f} (target 0.30, stretch 0.45)")
        print(
            f"  Redis CPU per event: {redis_us:.1f} µs (engine + store), so one Redis core "
            f"serves about {1e6 / redis_us:,.0f} events/s"
        )

        # Fresh topics: the latency worker must not first replay the throughput topic.
        lat_settings = fresh(settings, "lat")
        await ensure_topics(lat_settings)
        delays = await latency(
            lat_settings, model, args.rate, args.latency_seconds, tmp / "latency.log"
        )
        if delays:
            q = statistics.quantiles(delays, n=100)
            print(
                f"  event-to-alert latency at {args.rate:,}/s offered: "
                f"p50 {q[49] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms ({len(delays)} alerts; "
                "targets p50 30 ms, p99 100 ms)"
            )
        else:
            print("  no alerts arrived in the latency run")


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    asyncio.run(main())
