"""Expiry work against what expires: does catching up N instants cost N, or N squared?

A contact gets N email replies a minute apart (each award expires 90 days
later, at its own instant), then is advanced past every expiry in one call,
as the sweep does for a contact that was idle for months or a sweep that
fell behind. Prints, for several N, the time per expired award and its
ratio to the time per event of applying the same N events (a baseline
measured in the same run). Flat ratios mean the work is proportional to
what expires. Never asserts on time.

    .venv/bin/python benchmarks/expiry.py [--sizes 1000 4000 16000]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta

from pipeline import ROOT

from stream_scorer.events import Event
from stream_scorer.scoring import ContactState, advance_in_place, apply_in_place
from stream_scorer.scoring.model import load_model


def replies(n: int) -> list[Event]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        Event(
            event_id=f"r{i}",
            contact_id="c",
            type="email_reply",
            occurred_at=start + timedelta(minutes=i),
            properties={},
        )
        for i in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 4_000, 16_000])
    args = parser.parse_args()
    model = load_model(ROOT / "config" / "scoring.yaml")
    print(f"{'awards':>8} {'apply µs/event':>15} {'expire µs/award':>16} {'ratio':>7}")
    ratios = []
    for n in args.sizes:
        state = ContactState()
        events = replies(n)
        start = time.perf_counter()
        for event in events:
            apply_in_place(state, event, model)
        applying = (time.perf_counter() - start) / n
        assert len(state.awards) == n, "every reply awards points"
        later = int(events[-1].occurred_at.timestamp() * 1000) + 200 * 86_400_000
        start = time.perf_counter()
        effects = advance_in_place(state, later, model, "c")
        expiring = (time.perf_counter() - start) / n
        assert len(effects.expired) == n
        assert not state.awards
        ratios.append(expiring / applying)
        print(f"{n:>8,} {applying * 1e6:>15.1f} {expiring * 1e6:>16.1f} {ratios[-1]:>7.2f}")
    print(f"largest / smallest size's ratio: {ratios[-1] / ratios[0]:.2f} (flat: about 1)")


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    main()
