"""A backtest's files, written by one process or by ``--jobs`` forked processes.

``stream-scorer backtest`` reads an event file and writes ``scores.jsonl``,
``alerts.jsonl`` and ``backtest.json``. With several processes, each owns
the contacts of one share (by a hash of the contact id), reads the file
itself and scores its contacts up to one common ``as_of``; the parent merges
the parts' lines, so the files are the same byte for byte.
"""

from __future__ import annotations

import heapq
import json
import multiprocessing
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from stream_scorer.errors import BacktestError
from stream_scorer.review.backtest.history import EXAMPLES, History, read_history
from stream_scorer.review.backtest.output import AlertLines, ScoreLines, encoded, model_summary
from stream_scorer.review.backtest.run import Backtest, run_backtest
from stream_scorer.scoring import ScoringModel
from stream_scorer.times import format_ms


@dataclass
class _Part:
    """What one process of a parallel backtest found."""

    scores: ScoreLines
    alerts: AlertLines
    events: int
    applied: int
    rejected: Counter[str]
    examples: list[tuple[int, str]]
    first: int | None


def _run_part(
    history: History,
    model: ScoringModel,
    as_of: int | None,
    conversions: Mapping[str, int] | None,
) -> tuple[_Part, Backtest]:
    result = run_backtest(
        model, history.events, history.times, as_of=as_of, conversions=conversions
    )
    scores, alerts = encoded(result)
    first = history.times[0] if history.times else None
    part = _Part(
        scores,
        alerts,
        len(history.events),
        result.events,
        history.rejected,
        history.examples,
        first,
    )
    return part, result


def _child(
    conn: Connection,
    path: Path,
    model: ScoringModel,
    share: tuple[int, int],
    conversions: Mapping[str, int] | None,
    position: Any,
) -> None:
    """One process of a parallel backtest: read its share, report its last time, then score."""
    try:

        def progress(at: int) -> None:
            position.value = at

        history = read_history(path, model, progress, share=share)
        conn.send(("read", history.times[-1] if history.times else None))
        as_of: int = conn.recv()
        part, _ = _run_part(history, model, as_of, conversions)
        conn.send(("done", part))
    except BaseException as exc:  # reported to the parent, which raises
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _parallel(
    path: Path,
    model: ScoringModel,
    jobs: int,
    as_of: int | None,
    conversions: Mapping[str, int] | None,
    progress: Callable[[int], None] | None,
) -> tuple[list[_Part], int]:
    """Parts scored by ``jobs`` forked processes, each owning the contacts of one share."""
    context = multiprocessing.get_context("fork")  # the model is inherited, not pickled
    positions = [context.Value("q", 0, lock=False) for _ in range(jobs)]
    pipes = [context.Pipe() for _ in range(jobs)]
    processes = [
        context.Process(
            target=_child,
            args=(pipes[i][1], path, model, (i, jobs), conversions, positions[i]),
            daemon=True,
        )
        for i in range(jobs)
    ]
    for process in processes:
        process.start()
    for _, child_end in pipes:
        child_end.close()
    try:

        def receive(conn: Connection, kind: str) -> Any:
            while not conn.poll(0.1):
                if progress is not None:
                    progress(min(int(p.value) for p in positions))
            try:
                got, value = conn.recv()
            except EOFError:
                raise BacktestError("a backtest process ended without a result") from None
            if got == "error":
                raise BacktestError(f"a backtest process failed: {value}")
            assert got == kind, got
            return value

        lasts = [receive(parent, "read") for parent, _ in pipes]
        if progress is not None:
            progress(path.stat().st_size)
        if as_of is None:
            known = [t for t in lasts if t is not None]
            as_of = max(known) if known else 0
        for parent, _ in pipes:
            parent.send(as_of)
        parts: list[_Part] = [receive(parent, "done") for parent, _ in pipes]
    finally:
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
    return parts, as_of


def backtest_file(
    path: Path,
    model: ScoringModel,
    out: Path,
    *,
    as_of: int | None = None,
    conversions: Mapping[str, int] | None = None,
    jobs: int = 1,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Backtest an event file into ``out``; the summary and the first rejected lines.

    With ``jobs`` > 1 and JSON Lines, that many processes share the contacts;
    the files written are the same byte for byte.
    """
    if jobs > 1 and path.suffix.lower() != ".csv":
        parts, as_of = _parallel(path, model, jobs, as_of, conversions, progress)
    else:
        history = read_history(path, model, progress)
        part, result = _run_part(history, model, as_of, conversions)
        parts, as_of = [part], result.as_of
    firsts = [p.first for p in parts if p.first is not None]
    if not firsts:
        rejected_lines = sum(sum(p.rejected.values()) for p in parts)
        raise BacktestError(f"{path}: no events to score ({rejected_lines} line(s) rejected)")
    out.mkdir(parents=True, exist_ok=True)
    with (out / "scores.jsonl").open("wb") as handle:
        for _, line in heapq.merge(*(p.scores for p in parts), key=_first):
            handle.write(line)
    with (out / "alerts.jsonl").open("wb") as handle:
        for _, line in heapq.merge(*(p.alerts for p in parts), key=_first):
            handle.write(line)
    rejected: Counter[str] = Counter()
    for p in parts:
        rejected.update(p.rejected)
    examples = sorted(e for p in parts for e in p.examples)[:EXAMPLES]
    meta = {
        **model_summary(model),
        "as_of": format_ms(as_of),
        # Conversions before this have no history to explain them.
        "first_event_at": format_ms(min(firsts)),
        "point_in_time": "before_conversion" if conversions else "as_of",
        "events": sum(p.events for p in parts),
        "applied": sum(p.applied for p in parts),
        "rejected": sum(rejected.values()),
        "rejected_by_reason": dict(sorted(rejected.items())),
        "contacts": sum(len(p.scores) for p in parts),
        "alerts": sum(len(p.alerts) for p in parts),
    }
    (out / "backtest.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta, [text for _, text in examples]


def _first(item: tuple[Any, bytes]) -> Any:
    return item[0]
