"""The cost of a hot contact: does an event cost the same at its 100,000th as at its first?

Mixes N events (default 100,000) for one contact with as many for 20,000
others, in batches of the worker's size (half hot, half normal traffic), and
applies them through the worker's :class:`Pipeline` into a redis-server
started here (or ``REDIS_URL``, whose database is flushed), no Kafka. Prints
the cost per event over the first and the last tenth of the batches, their
ratio (the target: at most 1.5), and the size of the hot contact's stored
state at the end. Never asserts on time.

    .venv/bin/python benchmarks/hot_contact.py [--events 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis.asyncio as aioredis
from pipeline import ROOT, make_events

from stream_scorer.dev import services as devservices
from stream_scorer.events import CONTACT_UPDATED, Event
from stream_scorer.scoring.model import load_model
from stream_scorer.settings import Settings
from stream_scorer.worker.keys import contact_keys
from stream_scorer.worker.pipeline import Pipeline
from stream_scorer.worker.store import RedisStore

HOT = "hot-contact"


def hot_events(types: list[str], n: int, start: datetime) -> list[Event]:
    rng = random.Random(11)
    urls = ["https://a.io/pricing", "https://a.io/blog/x", "https://a.io/docs", "/"]
    return [
        Event(
            event_id=f"hot-e{i}",
            contact_id=HOT,
            type=rng.choice(types),
            occurred_at=start + timedelta(milliseconds=i * 50),
            properties={"url": rng.choice(urls), "form_id": "x"},
        )
        for i in range(n)
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1_000)
    args = parser.parse_args()
    model = load_model(ROOT / "config" / "scoring.yaml")
    start = datetime.now(UTC) - timedelta(days=2)
    types = sorted(t for t in model.event_types if t != CONTACT_UPDATED)
    hot = hot_events(types, args.events, start)
    normal = make_events(model, args.events, 20_000, start)
    half = args.batch // 2
    batches = [hot[i : i + half] + normal[i : i + half] for i in range(0, args.events, half)]
    print(
        f"{args.events:,} events for one contact mixed with {args.events:,} for 20,000 others, "
        f"{len(batches)} batches of {args.batch}"
    )

    with contextlib.ExitStack() as stack:
        redis_url = os.environ.get("REDIS_URL")
        if not redis_url:  # a redis-server of our own
            server = devservices.start_redis(Path(tempfile.mkdtemp(prefix="bench-hot-")))
            stack.callback(server.stop)
            redis_url = server.url
        client = aioredis.from_url(redis_url)
        await client.flushdb()
        settings = Settings(redis_url=redis_url)
        store = RedisStore(
            client,
            model,
            settings.contact_ttl_seconds,
            dedupe_seconds=int(settings.dedupe_days * 86_400),
            namespace="bench-hot",
            cache_contacts=settings.state_cache_contacts,
        )

        async def no_dead_letters(*args: object) -> None:
            raise RuntimeError("the events are all valid")

        pipeline = Pipeline(settings, model, store, no_dead_letters)
        seconds: list[float] = []
        for batch in batches:
            began = time.perf_counter()
            applied = await pipeline.apply(batch, dict.fromkeys({e.contact_id for e in batch}, 0))
            await store.mark_relayed(applied.pending)
            seconds.append(time.perf_counter() - began)
        stored = len(await client.hget(contact_keys(HOT)[0], "s") or b"")
        await client.flushdb()
        await client.aclose()

    tenth = max(1, len(batches) // 10)
    first = sum(seconds[:tenth]) / sum(len(b) for b in batches[:tenth])
    last = sum(seconds[-tenth:]) / sum(len(b) for b in batches[-tenth:])
    print(f"  per event, first tenth of the batches   {first * 1e6:>9,.1f} µs")
    print(f"  per event, last tenth of the batches    {last * 1e6:>9,.1f} µs")
    print(f"  last / first                            {last / first:>9.2f}  (target: at most 1.5)")
    print(f"  the hot contact's stored state          {stored:>9,} bytes")


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    asyncio.run(main())
