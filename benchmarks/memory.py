"""Redis memory per contact after a simulated history, and what a contact's state weighs.

Replays ``stream-scorer simulate``'s history (default 3,000 contacts, 180
days, the default model) through the worker's :class:`Pipeline` into a
redis-server started here (or ``REDIS_URL``, whose database is flushed), in
event-time order and the worker's batch size, with alerts cleared as the
relay would. Then prints:

- the ``INFO memory`` delta (``used_memory``) divided by the contacts: the
  issue's figure of merit (target: at most 600 bytes per contact);
- ``MEMORY USAGE`` percentiles of the contacts' state keys, and the size of
  the stored state value;
- what a state holds: remembered event ids and live awards per contact.

Never asserts on size or time.

    .venv/bin/python benchmarks/memory.py [--contacts 3000] [--days 180] [--format 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time

from pipeline import ROOT, scratch_pipeline

from stream_scorer.events import Event
from stream_scorer.review.simulation import generate
from stream_scorer.scoring.codec import FORMAT, FORMATS
from stream_scorer.scoring.model import load_model
from stream_scorer.worker.keys import contact_keys

#: The issue's target, printed next to the measured figure.
TARGET_BYTES_PER_CONTACT = 600


def quantiles(values: list[int]) -> str:
    q = statistics.quantiles(values, n=10)
    return f"p50 {statistics.median(values):,.0f}, p90 {q[8]:,.0f}, max {max(values):,}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=3_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--format", type=int, default=FORMAT, choices=FORMATS)
    args = parser.parse_args()
    model = load_model(ROOT / "config" / "scoring.yaml")
    docs, _ = generate(args.contacts, args.days, seed=0)
    events = [Event.model_validate(d) for d in docs]
    events = [e for e in events if e.type in model.event_types]
    contacts = sorted({e.contact_id for e in events})
    print(
        f"{len(events):,} events of {len(contacts):,} contacts over {args.days} days "
        f"(simulate --contacts {args.contacts}), model {model.name}, state format {args.format}"
    )

    async with contextlib.AsyncExitStack() as stack:
        client, store, pipeline = await scratch_pipeline(stack, model, "bench-memory", args.format)
        before = int((await client.info("memory"))["used_memory"])
        start = time.perf_counter()
        for i in range(0, len(events), args.batch):
            chunk = events[i : i + args.batch]
            applied = await pipeline.apply(chunk, dict.fromkeys({e.contact_id for e in chunk}, 0))
            await store.mark_relayed(applied.pending)
        took = time.perf_counter() - start
        after = int((await client.info("memory"))["used_memory"])
        state_keys = [contact_keys(cid)[0] for cid in contacts]
        usage = [int(await client.memory_usage(k) or 0) for k in state_keys]
        values = [len(await client.hget(k, "s") or b"") for k in state_keys]
        logs = sum([await client.exists(contact_keys(cid)[2]) for cid in contacts])
        states = [await store.read_state(cid) for cid in contacts]
        seen = [len(s.seen) for s in states if s is not None]
        awards = [len(s.awards) for s in states if s is not None]

    per_contact = (after - before) / len(contacts)
    print(f"  applied in {took:.1f} s ({len(events) / took:,.0f} events/s, no Kafka)")
    target = TARGET_BYTES_PER_CONTACT
    print(
        f"  INFO used_memory delta per contact   {per_contact:>8,.0f} bytes "
        f"({per_contact / target:.1f}x the {target}-byte target)"
    )
    print(f"  MEMORY USAGE of a state key         {quantiles(usage)} bytes")
    print(f"  the stored state value              {quantiles(values)} bytes")
    print(f"  remembered event ids per contact    {quantiles(seen)}")
    print(f"  live awards per contact             {quantiles(awards)}")
    print(f"  contacts with a log                 {logs:,}")


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    asyncio.run(main())
