"""What forwarding and the reordering grace cost, against a baseline from the same run.

Against real Apache Kafka and redis-server (started here unless
KAFKA_BOOTSTRAP_SERVERS / REDIS_URL are set), on fresh topics each time:

1. baseline: the worker's throughput over N events (default 50,000), every
   one produced by aiokafka, so on its contact's home partition;
2. forwarded: the same events, half of them produced by librdkafka
   (confluent-kafka) with its default partitioner, so most of those are
   forwarded to their home partition before they are applied;
3. grace: the events of 1 with ``SCORER_REORDER_GRACE_MS`` (default 500);
4. event-to-alert latency at a fixed offered load (default 2,000 events/s),
   without and with the grace.

Prints each throughput as a ratio to the baseline, and both latencies. Never
asserts on time.

    .venv/bin/python benchmarks/routing.py [--events 50000] [--grace-ms 500]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from confluent_kafka import Producer as LibrdkafkaProducer
from pipeline import ROOT, fresh, kafka_and_redis, latency, make_events, produce, worker_rate

from stream_scorer.events import Event
from stream_scorer.scoring.model import load_model
from stream_scorer.settings import Settings
from stream_scorer.worker.routing import home_partition
from stream_scorer.worker.topics import ensure_topics


def produce_with_librdkafka(bootstrap: str, topic: str, events: list[Event]) -> int:
    """Send with librdkafka's default partitioner; how many landed away from home."""
    producer = LibrdkafkaProducer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    away = 0

    def delivered(err: object, msg: object) -> None:
        nonlocal away
        if err is not None:
            raise RuntimeError(f"librdkafka could not deliver an event: {err}")
        cid = msg.key().decode()  # type: ignore[attr-defined]
        away += msg.partition() != home_partition(cid, 8)  # type: ignore[attr-defined]

    for e in events:
        while True:
            try:
                value, key = e.model_dump_json().encode(), e.contact_id.encode()
                producer.produce(topic, value, key, on_delivery=delivered)
                break
            except BufferError:  # the local queue is full: let it drain
                producer.poll(0.1)
        producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("librdkafka did not deliver every event")
    return away


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--contacts", type=int, default=5_000)
    parser.add_argument("--grace-ms", type=int, default=500)
    parser.add_argument("--rate", type=int, default=2_000)
    parser.add_argument("--latency-seconds", type=float, default=15)
    args = parser.parse_args()
    model = load_model(ROOT / "config" / "scoring.yaml")

    with contextlib.ExitStack() as stack:
        bootstrap, redis_url = kafka_and_redis(stack)
        tmp = Path(tempfile.mkdtemp(prefix="bench-routing-"))
        base = Settings(
            kafka_bootstrap_servers=bootstrap,
            redis_url=redis_url,
            app_id=f"bench-{uuid.uuid4().hex[:6]}",
            model_path=ROOT / "config" / "scoring.yaml",
            sweep_interval_seconds=0,
            topic_partitions=8,
            log_level="INFO",
        )
        start = datetime.now(UTC) - timedelta(days=1)
        events = make_events(model, args.events, args.contacts, start)
        print(f"{len(events):,} events for {args.contacts:,} contacts, 8 partitions")

        async def throughput(name: str, mixed: bool, **changes: object) -> float:
            settings = fresh(base, name, **changes)
            await ensure_topics(settings)
            if mixed:
                rng = random.Random(1)
                rdk = [rng.random() < 0.5 for _ in events]
                mine = [e for e, r in zip(events, rdk, strict=True) if not r]
                theirs = [e for e, r in zip(events, rdk, strict=True) if r]
                await produce(bootstrap, settings.events_topic, mine)
                away = produce_with_librdkafka(bootstrap, settings.events_topic, theirs)
                print(f"  {len(theirs):,} events from librdkafka, {away:,} away from home")
            else:
                await produce(bootstrap, settings.events_topic, events)
            return await worker_rate(settings, len(events), tmp / f"{name}.log")

        baseline = await throughput("baseline", mixed=False)
        forwarded = await throughput("forwarded", mixed=True)
        grace = await throughput("grace", mixed=False, reorder_grace_ms=args.grace_ms)
        print(f"  baseline, all on their home partition   {baseline:>9,.0f} events/s  1.00")
        print(
            f"  half from librdkafka (forwarded)         {forwarded:>9,.0f} events/s  "
            f"{forwarded / baseline:.2f}"
        )
        print(
            f"  reordering grace {args.grace_ms} ms                 {grace:>9,.0f} events/s  "
            f"{grace / baseline:.2f}"
        )

        for grace_ms in (0, args.grace_ms):
            settings = fresh(base, f"latency-{grace_ms}", reorder_grace_ms=grace_ms)
            await ensure_topics(settings)
            delays = await latency(
                settings, model, args.rate, args.latency_seconds, tmp / f"lat-{grace_ms}.log"
            )
            if len(delays) < 2:
                print(f"  grace {grace_ms} ms: too few alerts arrived to measure latency")
                continue
            q = statistics.quantiles(delays, n=100)
            print(
                f"  event-to-alert latency, grace {grace_ms} ms, {args.rate:,}/s offered: "
                f"p50 {q[49] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms ({len(delays)} alerts)"
            )


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    asyncio.run(main())
