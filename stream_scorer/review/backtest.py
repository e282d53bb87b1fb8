"""Backtests: history replayed through a model by the reference engine, no Kafka or Redis.

The engine is the specification the live path agrees with, so a backtest's
scores and alerts are what the live path would have produced for the same
events in event-time order. Scores are taken *as of* a time: events after it
are not applied, and points that expired by then do not count. With
conversions, each converter is scored just before its conversion instead, so
events after a conversion never explain it (point-in-time correctness).

JSON Lines are read with msgspec and checked against the same rules as the
wire format; a line the fast reader does not accept is read again by the
pydantic validator, which names the exact problem (and reads Segment and
CloudEvents lines).
"""

from __future__ import annotations

import gc
import heapq
import json
import multiprocessing
import re
import zlib
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgspec
import msgspec.structs

from stream_scorer.errors import BacktestError, InvalidEvent
from stream_scorer.event_files import read_events
from stream_scorer.events import CONTACT_ID_PATTERN, Event, decode_event
from stream_scorer.scoring.crossings import alert_payload
from stream_scorer.scoring.engine import ContactState, Crossing, advance_in_place, explain, replay
from stream_scorer.scoring.model import ScoringModel
from stream_scorer.times import EPOCH, ONE_MS, format_ms

#: How many bad lines a backtest keeps as examples.
EXAMPLES = 10


class _Line(msgspec.Struct, gc=False):
    """A native event line; checked by :func:`_checked` before it is trusted."""

    event_id: str
    contact_id: str
    type: str
    occurred_at: datetime
    properties: dict[str, Any] = msgspec.field(default_factory=dict)


# ``$`` would also match before a trailing newline; the wire validator does not.
_CONTACT = re.compile(CONTACT_ID_PATTERN.removesuffix("$") + r"\Z")
_KEY = b'"contact_id"'


def _route(line: bytes) -> bytes | None:
    """The raw contact id of a native line, found without decoding it, to share lines.

    None when only decoding can tell: no such key, an escape, the key twice
    (once inside properties), or other spacing than ``json.dumps`` writes.
    """
    at = line.find(_KEY)
    if at < 0 or b'"specversion"' in line or b'"messageId"' in line:
        return None  # CloudEvents and Segment calls name the contact elsewhere
    start = at + 12
    if line.startswith(b':"', start):
        start += 2
    elif line.startswith(b': "', start):
        start += 3
    else:
        return None
    end = line.find(b'"', start)
    if end <= start or line.find(b"\\", start, end) >= 0 or line.find(_KEY, end) >= 0:
        return None
    return line[start:end]


def _share_of(contact: bytes, shares: int) -> int:
    return zlib.crc32(contact) % shares


@dataclass
class History:
    """The valid events of a file in event-time order, and what was rejected."""

    events: list[Event]
    times: list[int]
    rejected: Counter[str] = field(default_factory=Counter)
    examples: list[tuple[int, str]] = field(default_factory=list)

    def reject(self, number: int, error: InvalidEvent) -> None:
        self.rejected[error.reason] += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append((number, f"line {number}: {error}"))


def _fast_lines(path: Path, progress: Callable[[int], None] | None) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if progress is not None and number % 4096 == 0:
                progress(handle.tell())
            yield number, line
    if progress is not None:
        progress(path.stat().st_size)


def read_history(
    path: Path,
    model: ScoringModel,
    progress: Callable[[int], None] | None = None,
    share: tuple[int, int] | None = None,
) -> History:
    """Every valid event of a JSON Lines or CSV file, sorted by event time (stably).

    Events of types no rule scores are rejected as ``unknown_type``, as the
    live worker dead-letters them by default. ``progress`` is given the bytes
    read so far. With ``share=(i, n)`` (JSON Lines only), only the events of
    contacts in share ``i`` of ``n`` are kept, and only lines of that share are
    decoded: ``n`` processes each read the file and split the work.

    The cyclic garbage collector is paused meanwhile, as in a replay: events
    make no cycles, but collections that walk millions of them took a third
    of the time.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _read(path, model, progress, share)
    finally:
        if collecting:
            gc.enable()


def _read(
    path: Path,
    model: ScoringModel,
    progress: Callable[[int], None] | None,
    share: tuple[int, int] | None,
) -> History:
    known = model.event_types
    events: list[Event] = []
    times: list[int] = []
    history = History(events, times)
    if path.suffix.lower() == ".csv":
        for number, item in read_events(path):
            if isinstance(item, InvalidEvent):
                history.reject(number, item)
            elif item.type not in known:
                history.reject(number, _unknown(item.type))
            else:
                events.append(item)
                times.append((item.occurred_at - EPOCH) // ONE_MS)
        if progress is not None:
            progress(path.stat().st_size)
    else:
        decode = msgspec.json.Decoder(_Line).decode
        contacts: set[str] = set()
        event_ids_ok = _event_id_ok
        mine, shares = share if share is not None else (0, 1)
        for number, raw in _fast_lines(path, progress):
            if not raw.strip():
                continue
            line = raw.rstrip(b"\r\n")
            routed = _route(line) if shares > 1 else b""
            if routed and _share_of(routed, shares) != mine:
                continue
            event: Event | None = None
            if b'"specversion"' not in line and b'"messageId"' not in line:
                try:
                    fast = decode(line)
                except msgspec.DecodeError:  # ValidationError is one
                    fast = None
                if (
                    fast is not None
                    and fast.occurred_at.tzinfo is not None
                    and event_ids_ok(fast.event_id)
                    and (fast.contact_id in contacts or _contact_ok(fast.contact_id, contacts))
                    and fast.type in known
                ):
                    event = _trusted(msgspec.structs.asdict(fast))
            if event is None:
                try:
                    event = decode_event(line, max_bytes=1 << 30)
                except InvalidEvent as exc:
                    if routed is not None or number % shares == mine:  # counted once
                        history.reject(number, exc)
                    continue
            if routed is None and _share_of(event.contact_id.encode(), shares) != mine:
                continue  # another process's contact
            if event.type not in known:
                history.reject(number, _unknown(event.type))
                continue
            events.append(event)
            times.append((event.occurred_at - EPOCH) // ONE_MS)
    if any(times[i] > times[i + 1] for i in range(len(times) - 1)):
        order = sorted(range(len(times)), key=times.__getitem__)
        history.events = [events[i] for i in order]
        history.times = [times[i] for i in order]
    return history


_FIELDS = frozenset(Event.model_fields)
_new = object.__new__
_set = object.__setattr__


def _trusted(fields: dict[str, Any]) -> Event:
    """An :class:`Event` from fields checked here as its validator would, without re-validating.

    What ``Event.model_construct`` does, at a sixth of its cost: a history has
    millions of events, and the checks are made by msgspec and :func:`read_history`.
    """
    event: Event = _new(Event)
    _set(event, "__dict__", fields)
    _set(event, "__pydantic_fields_set__", set(_FIELDS))
    _set(event, "__pydantic_extra__", None)
    _set(event, "__pydantic_private__", None)
    return event


def _event_id_ok(event_id: str) -> bool:
    return 0 < len(event_id) <= 200


def _contact_ok(contact_id: str, valid: set[str]) -> bool:
    if _CONTACT.match(contact_id):
        valid.add(contact_id)
        return True
    return False


def _unknown(event_type: str) -> InvalidEvent:
    return InvalidEvent("unknown_type", f"no rule of the model scores {event_type!r}")


@dataclass
class Backtest:
    """Each contact's state as of its cut-off, and every crossing up to it."""

    model: ScoringModel
    states: dict[str, ContactState]
    cutoffs: dict[str, int]
    crossings: list[Crossing]
    as_of: int
    point_in_time: str
    events: int


def run_backtest(
    model: ScoringModel,
    events: list[Event],
    times: list[int],
    *,
    as_of: int | None = None,
    conversions: Mapping[str, int] | None = None,
) -> Backtest:
    """Replay events (sorted by ``times``) up to each contact's cut-off.

    The cut-off is ``as_of`` (default: the last event's time), or for a contact
    in ``conversions`` the millisecond before it converted, if that is earlier.
    """
    if as_of is None:
        as_of = times[-1] if times else 0
    converted = conversions or {}

    def cutoff(contact: str) -> int:
        at = converted.get(contact)
        return as_of if at is None or at - 1 > as_of else at - 1

    if converted:
        kept = [e for e, t in zip(events, times, strict=True) if t <= cutoff(e.contact_id)]
    else:
        kept = events[: _upper(times, as_of)]
    collecting = gc.isenabled()
    gc.disable()  # as in replay: no cycles are made, and collections walk every state
    try:
        states, crossings = replay(kept, model)
        cutoffs: dict[str, int] = {}
        for contact, state in states.items():
            cutoffs[contact] = at = cutoff(contact)
            crossings.extend(advance_in_place(state, at, model, contact).crossings)
        crossings.sort(key=_alert_order)
    finally:
        if collecting:
            gc.enable()
    return Backtest(
        model,
        states,
        cutoffs,
        crossings,
        as_of,
        "before_conversion" if converted else "as_of",
        len(kept),
    )


def _alert_order(crossing: Crossing) -> tuple[int, str]:
    """Alerts in time order; a contact's alerts at one instant stay in the engine's order."""
    return crossing.at, crossing.contact_id


def _upper(times: list[int], limit: int) -> int:
    """How many of the sorted ``times`` are at or before ``limit``."""
    return bisect_right(times, limit)


def score_row(contact: str, state: ContactState, model: ScoringModel, as_of: int) -> dict[str, Any]:
    """One line of ``scores.jsonl``: the scores with the live awards that explain them."""
    explained = explain(state, model)
    gates: dict[str, bool] = {}
    for item in explained.values():
        gates.update(item.gates)
    return {
        "contact_id": contact,
        "as_of": format_ms(as_of),
        "scores": {name: e.value for name, e in explained.items()},
        "display": {name: e.display for name, e in explained.items()},
        "tiers": {name: e.tiers for name, e in explained.items()},
        "gates_passed": all(gates.values()),
        # A gate may hold back some scores only: what holds for each score.
        "gates_passed_by_score": {name: all(e.gates.values()) for name, e in explained.items()},
        "gates": gates,
        "grade": model.grade(state.values),
        "awards": [
            {
                "score": a.score,
                "rule": a.rule,
                "category": a.category,
                "points": a.points,
                "event_id": a.event_id,
                "awarded_at": format_ms(a.at),
                "expires_at": None if a.expires_at is None else format_ms(a.expires_at),
            }
            for e in explained.values()
            for a in e.awards
        ],
    }


def rows(result: Backtest) -> Iterable[dict[str, Any]]:
    """Score rows, by contact id."""
    for contact in sorted(result.states):
        yield score_row(contact, result.states[contact], result.model, result.cutoffs[contact])


def model_summary(model: ScoringModel) -> dict[str, Any]:
    """The model's scores, thresholds and rules, as evaluations need them."""
    spec = model.spec
    return {
        "model": model.name,
        "model_version": model.version,
        "scores": {
            name: {
                "min": score.min,
                "max": score.max,
                "thresholds": [
                    {"name": t.name, "at": t.at, "rearm_below": t.rearm_below}
                    for t in score.thresholds
                ],
            }
            for name, score in model.scores.items()
        },
        "rules": {
            rule.id: {"score": rule.score, "category": rule.category, "points": rule.points}
            for rule in spec.rules
        },
    }


#: Score lines by contact id, alert lines by (time, contact id): both ready to merge.
ScoreLines = list[tuple[str, bytes]]
AlertLines = list[tuple[tuple[int, str], bytes]]


def _encoded(result: Backtest) -> tuple[ScoreLines, AlertLines]:
    encode = msgspec.json.Encoder().encode
    scores = [(row["contact_id"], encode(row) + b"\n") for row in rows(result)]
    alerts = [(_alert_order(c), alert_payload(c, result.model) + b"\n") for c in result.crossings]
    return scores, alerts


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
    scores, alerts = _encoded(result)
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
