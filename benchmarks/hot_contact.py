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
import random
import sys
import time
from datetime import UTC, datetime, timedelta

from pipeline import ROOT, make_events, scratch_pipeline

from stream_scorer.events import CONTACT_UPDATED, Event
from stream_scorer.scoring.model import load_model
from stream_scorer.worker.keys import contact_keys

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

    async with contextlib.AsyncExitStack() as stack:
        client, store, pipeline = await scratch_pipeline(stack, model, "bench-hot")
        seconds: list[float] = []
        for batch in batches:
            began = time.perf_counter()
            applied = await pipeline.apply(batch, dict.fromkeys({e.contact_id for e in batch}, 0))
            await store.mark_relayed(applied.pending)
            seconds.append(time.perf_counter() - began)
        stored = len(await client.hget(contact_keys(HOT)[0], "s") or b"")

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
