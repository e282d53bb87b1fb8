"""Backtest throughput: events per second from an event file to scores.jsonl, in one process.

Measures the whole of ``stream-scorer backtest`` (read and validate the
JSON Lines, sort by time, replay through the engine, advance every contact
to the cut-off, write scores and alerts) and each phase, against a baseline
measured in the same run: the least a Python backtest can do (``json.loads``
each line, add points per event type per contact, write one line per
contact). Rounds alternate, so a shared machine that slows down moves both;
the per-round ratio is the figure to compare. Never asserts on time.

    .venv/bin/python benchmarks/backtest.py [--events 200000] [--contacts 5000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine import make_events

from stream_scorer.review.backtest import backtest_file, read_history, run_backtest
from stream_scorer.review.backtest.output import encoded
from stream_scorer.scoring import ScoringModel, load_model, native

ROOT = Path(__file__).resolve().parents[1]


def baseline(path: Path, model: ScoringModel, out: Path) -> None:
    points = {t: sum(r.points for r in rules) for t, rules in model.by_type.items()}
    scores: dict[str, int] = {}
    seen: set[str] = set()
    with path.open("rb") as lines:
        for line in lines:
            e = json.loads(line)
            if e["event_id"] in seen:
                continue
            seen.add(e["event_id"])
            scores[e["contact_id"]] = scores.get(e["contact_id"], 0) + points.get(e["type"], 0)
    with (out / "baseline.jsonl").open("w") as handle:
        for contact, value in sorted(scores.items()):
            handle.write(json.dumps({"contact_id": contact, "score": value}) + "\n")


def backtest(path: Path, model: ScoringModel, out: Path, jobs: int) -> dict[str, float]:
    """The seconds each phase of one process took, and the whole command with ``jobs``."""
    t0 = time.perf_counter()
    history = read_history(path, model)
    t1 = time.perf_counter()
    result = run_backtest(model, history.events, history.times)
    t2 = time.perf_counter()
    encoded(result)
    t3 = time.perf_counter()
    backtest_file(path, model, out, jobs=1)
    t4 = time.perf_counter()
    backtest_file(path, model, out, jobs=jobs)
    t5 = time.perf_counter()
    return {"read": t1 - t0, "replay": t2 - t1, "encode": t3 - t2, "one": t4 - t3, "jobs": t5 - t4}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--contacts", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", default=str(ROOT / "config" / "scoring.yaml"))
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument(
        "--file", type=Path, help="An event file to use instead of a generated one."
    )
    args = parser.parse_args()
    model = load_model(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        path: Path = args.file or out / "events.jsonl"
        if args.file is None:
            with path.open("w") as handle:
                for event in make_events(model, args.events, args.contacts):
                    handle.write(event.model_dump_json() + "\n")
        n = sum(1 for _ in path.open("rb"))
        print(
            f"model {model.name}: {len(model.rules)} rules; {n:,} events in {path.name}; "
            f"median of {args.repeat} rounds; engine {native.describe()}"
        )
        rounds = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            baseline(path, model, out)
            base = n / (time.perf_counter() - start)
            phases = backtest(path, model, out / "bt", args.jobs)
            rounds.append((base, phases))
    base = statistics.median(b for b, _ in rounds)
    labels = {
        "read": "phase: read and validate",
        "replay": "phase: replay and advance",
        "encode": "phase: encode rows and alerts",
        "one": "backtest, 1 process, end to end",
        "jobs": f"backtest, {args.jobs} processes, end to end",
    }
    for phase, label in labels.items():
        rate = statistics.median(n / p[phase] for _, p in rounds)
        ratio = statistics.median(n / p[phase] / b for b, p in rounds)
        print(f"  {label:<36} {rate:>12,.0f} events/s   {ratio:6.3f} x baseline")
    print(f"  {'baseline: json.loads + dict':<36} {base:>12,.0f} events/s")
    total = statistics.median(n / p["jobs"] for _, p in rounds)
    print(f"target 100,000 events/s -> backtest at {total / 100_000:.2f}x the target")


if __name__ == "__main__":
    main()
