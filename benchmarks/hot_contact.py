"""The cost of a hot contact: does an event cost the same at its 100,000th as at its first?

Mixes N events (default 100,000) for one contact with as many for 20,000
others, in batches of the worker's size (half hot, half normal traffic), and
applies them through the worker's :class:`Pipeline` into a redis-server
started here (or ``REDIS_URL``, whose database is flushed), no Kafka. Prints
the cost per event over the first and the last tenth of the batches, their
ratio (the target: at most 1.5), and the size of the hot contact's stored
state at the end. Runs with the worker's collector settings. Never asserts
on time.

The machine is shared, and one stall (another process, a collection) in
twenty batches moves a tenth's figure by a third; so the whole run is
repeated (``--repeats``, 3) on a fresh Redis, each run's figures printed,
and the ratio taken between the fastest first tenth and the fastest last
tenth. Costs that recur (a compaction every few batches, a larger write)
are in every run, so the minimum keeps them.

    .venv/bin/python benchmarks/hot_contact.py [--events 100000] [--repeats 3]
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
from stream_scorer.scoring.model import ScoringModel, load_model
from stream_scorer.worker import collector
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
    parser.add_argument("--repeats", type=int, default=3)
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

    first, last, stored = await tenths(model, batches, args.repeats)
    print(f"  per event, first tenth of the batches   {first * 1e6:>9,.1f} µs (fastest run)")
    print(f"  per event, last tenth of the batches    {last * 1e6:>9,.1f} µs (fastest run)")
    print(f"  last / first                            {last / first:>9.2f}  (target: at most 1.5)")
    print(f"  the hot contact's stored state and log  {stored:>9,} bytes")
    # What the normal traffic alone does over the same batches: its 20,000 contacts are
    # new in the first tenth and carry a few events each by the last, which costs more
    # to score and write whether or not a hot contact is there.
    alone = [normal[i : i + half] for i in range(0, args.events, half)]
    first, last, _ = await tenths(model, alone, args.repeats, quiet=True)
    print(f"  the normal traffic alone: last / first  {last / first:>9.2f}")


async def tenths(
    model: ScoringModel, batches: list[list[Event]], repeats: int, quiet: bool = False
) -> tuple[float, float, int]:
    """The fastest run's cost per event over the first and the last tenth of the batches."""
    tenth = max(1, len(batches) // 10)
    firsts: list[float] = []
    lasts: list[float] = []
    stored = 0
    for run in range(repeats):
        seconds, stored = await one_run(model, batches)
        first = sum(seconds[:tenth]) / sum(len(b) for b in batches[:tenth])
        last = sum(seconds[-tenth:]) / sum(len(b) for b in batches[-tenth:])
        firsts.append(first)
        lasts.append(last)
        if not quiet:
            print(
                f"  run {run + 1}: first tenth {first * 1e6:,.1f} µs an event, "
                f"last tenth {last * 1e6:,.1f} µs, last / first {last / first:.2f}"
            )
    return min(firsts), min(lasts), stored


async def one_run(model: ScoringModel, batches: list[list[Event]]) -> tuple[list[float], int]:
    """Seconds per batch through a fresh pipeline on an empty Redis, and the hot state's size."""
    async with contextlib.AsyncExitStack() as stack:
        client, store, pipeline = await scratch_pipeline(stack, model, "bench-hot")
        # As the worker does once set up: the events made above, which a worker never
        # holds (they stream in), are frozen with the rest, so no full collection walks them.
        collector.tune()
        seconds: list[float] = []
        for batch in batches:
            began = time.perf_counter()
            applied = await pipeline.apply(batch, dict.fromkeys({e.contact_id for e in batch}, 0))
            await store.mark_relayed(applied.pending)
            seconds.append(time.perf_counter() - began)
        state_key, _, log_key = contact_keys(HOT)
        stored = len(await client.hget(state_key, "s") or b"") + await client.strlen(log_key)
    return seconds, stored


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    asyncio.run(main())
