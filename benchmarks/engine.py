"""Engine throughput: events per second of the pure reference engine, in one process.

Prints absolute figures and ratios against a baseline measured in the same
run (a bare Python loop that adds points per event type to a dict: the
least any per-event scorer in Python can do). Never asserts on time.

When the engine is compiled (mypyc, see setup.py), the same source run as
pure Python is measured too, in a subprocess on a copy of the package.

    .venv/bin/python benchmarks/engine.py [--events 200000] [--contacts 5000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from stream_scorer.events import CONTACT_UPDATED, Event
from stream_scorer.scoring import ContactState, apply, native, replay
from stream_scorer.scoring.model import ScoringModel, load_model

ROOT = Path(__file__).resolve().parents[1]


def make_events(model: ScoringModel, n: int, contacts: int, seed: int = 1) -> list[Event]:
    rng = random.Random(seed)
    types = sorted(t for t in model.event_types if t != CONTACT_UPDATED)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    urls = ["https://a.io/pricing", "https://a.io/blog/x", "https://a.io/careers", "/"]
    out = []
    for i in range(n):
        cid = f"c-{rng.randrange(contacts)}"
        when = start + timedelta(seconds=i * 20)
        if rng.random() < 0.05:
            props: dict[str, object] = {
                "country": rng.choice(["US", "DE", "BR"]),
                "job_title": rng.choice(["VP Sales", "Engineer", "Head of Marketing"]),
                "company_size": rng.choice([20, 300, 4000]),
                "industry": rng.choice(["saas", "retail"]),
            }
            kind = CONTACT_UPDATED
        else:
            props = {"url": rng.choice(urls), "form_id": rng.choice(["newsletter", "x"])}
            kind = rng.choice(types)
        out.append(
            Event(event_id=f"e{i}", contact_id=cid, type=kind, occurred_at=when, properties=props)
        )
    return out


def baseline(events: list[Event], model: ScoringModel) -> None:
    points = {t: sum(r.points for r in rules) for t, rules in model.by_type.items()}
    scores: dict[str, int] = {}
    seen: set[str] = set()
    for e in events:
        if e.event_id in seen:
            continue
        seen.add(e.event_id)
        scores[e.contact_id] = scores.get(e.contact_id, 0) + points.get(e.type, 0)


def engine_replay(events: list[Event], model: ScoringModel) -> None:
    replay(events, model)


def engine_apply_copying(events: list[Event], model: ScoringModel) -> None:
    states: dict[str, ContactState] = {}
    for e in events:
        states[e.contact_id], _ = apply(states.get(e.contact_id) or ContactState(), e, model)


def measure(
    fn: Callable[[list[Event], ScoringModel], None],
    events: list[Event],
    model: ScoringModel,
    repeat: int,
) -> float:
    return statistics.median(_rate(fn, events, model) for _ in range(repeat))


def measure_pair(
    events: list[Event], model: ScoringModel, repeat: int
) -> tuple[float, float, float]:
    """Baseline and replay rates, and the median of their per-round ratios.

    The two alternate, so a machine that slows down mid-run (a shared VM)
    moves both: the ratio is the figure to compare across machines and runs.
    """
    pairs = [
        (_rate(baseline, events, model), _rate(engine_replay, events, model)) for _ in range(repeat)
    ]
    return (
        statistics.median(b for b, _ in pairs),
        statistics.median(r for _, r in pairs),
        statistics.median(r / b for b, r in pairs),
    )


def _rate(
    fn: Callable[[list[Event], ScoringModel], None], events: list[Event], model: ScoringModel
) -> float:
    start = time.perf_counter()
    fn(events, model)
    return len(events) / (time.perf_counter() - start)


def pure_replay_rate(args: argparse.Namespace) -> float:
    """Replay rate of the same source as pure Python: a copy without extension modules."""
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(
            ROOT / "stream_scorer",
            Path(tmp) / "stream_scorer",
            ignore=shutil.ignore_patterns("*.so", "_native.json", "__pycache__"),
        )
        out = subprocess.run(
            [sys.executable, __file__, "--replay-only", *_common(args)],
            env={**os.environ, "PYTHONPATH": tmp},
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    return float(out.split()[-1])


def _common(args: argparse.Namespace) -> list[str]:
    return [
        f"--events={args.events}",
        f"--contacts={args.contacts}",
        f"--repeat={args.repeat}",
        f"--model={args.model}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--contacts", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", default=str(ROOT / "config" / "scoring.yaml"))
    parser.add_argument("--replay-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    model = load_model(args.model)
    events = make_events(model, args.events, args.contacts)
    if args.replay_only:
        print(native.describe(), measure(engine_replay, events, model, args.repeat))
        return
    print(
        f"model {model.name}: {len(model.rules)} rules; {len(events):,} events, "
        f"{args.contacts:,} contacts; median of {args.repeat} runs; "
        f"engine {native.describe()}"
    )
    base, replay_rate, ratio = measure_pair(events, model, args.repeat)
    rows = [
        ("baseline: points per type in a dict", base),
        ("engine: replay (apply in place)", replay_rate),
        (
            "engine: apply() returning new states",
            measure(engine_apply_copying, events, model, min(args.repeat, 1)),
        ),
    ]
    if any(native.compiled().values()):
        rows.append(("engine: replay, same source pure Python", pure_replay_rate(args)))
    for name, rate in rows:
        print(f"  {name:<40} {rate:>12,.0f} events/s   {rate / base:6.3f} x baseline")
    print(
        f"replay / baseline, median of per-round ratios: {ratio:.3f}; "
        f"target 100,000 events/s -> replay at {replay_rate / 100_000:.2f}x the target"
    )


if __name__ == "__main__":
    main()
