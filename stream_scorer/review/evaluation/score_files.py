"""Reading a backtest's files for evaluation: ``scores.jsonl`` rows and ``backtest.json``.

Both are checked as they are read: any problem is an
:class:`~stream_scorer.errors.EvaluationError` naming the file and line, so
an evaluation never starts on rows it would misread.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from stream_scorer.errors import ConversionsError, EvaluationError
from stream_scorer.times import parse_time

POINT_IN_TIME = ("as_of", "before_conversion")


@dataclass(frozen=True, slots=True)
class AwardRecord:
    """One live award in a score row: the unit that explains a score."""

    rule: str
    points: float
    score: str | None = None
    category: str | None = None
    event_id: str | None = None
    awarded_at: str | None = None
    expires_at: str | None = None


@dataclass(frozen=True, slots=True)
class ScoreRow:
    """One contact's scores at ``as_of`` as the backtest wrote them."""

    contact_id: str
    as_of: str
    as_of_ms: int
    scores: Mapping[str, float]
    awards: tuple[AwardRecord, ...] = ()
    display: Mapping[str, float] | None = None
    tiers: Mapping[str, tuple[str, ...]] | None = None
    gates_passed: bool | None = None
    gates: Mapping[str, bool] | None = None
    gates_passed_by_score: Mapping[str, bool] | None = None
    grade: str | None = None
    #: Line in scores.jsonl, for error messages (0 when built in code).
    line: int = 0


def _load_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Numbered non-blank lines, streamed, with I/O problems as errors naming the file."""
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    yield number, line
    except OSError as exc:
        raise EvaluationError(f"{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise EvaluationError(f"{path}: not UTF-8 text ({exc.reason})") from None


def time_ms(value: Any, place: str) -> int:
    try:
        return parse_time(value, place)
    except ConversionsError as exc:
        raise EvaluationError(str(exc)) from None


def _is_number(value: Any) -> TypeGuard[float]:
    return type(value) in (int, float) and math.isfinite(value)  # type(): no bools


def _number(value: Any, place: str) -> float:
    if not _is_number(value):
        raise EvaluationError(f"{place}: {value!r} is not a number")
    return value


def _numbers(value: Any, place: str, field: str) -> dict[str, float]:
    d = _object(value, place, field)
    for key, item in d.items():
        if not _is_number(item):
            raise EvaluationError(f"{place}: {field}.{key}: {item!r} is not a number")
    return d


def _opt_str(d: Mapping[str, Any], key: str, place: str) -> str | None:
    value = d.get(key)
    if value is not None and not isinstance(value, str):
        raise EvaluationError(f"{place}: {key}: {value!r} is not a string")
    return value


def _object(value: Any, place: str, field: str = "") -> dict[str, Any]:
    if not isinstance(value, dict):
        where = f"{place}: {field}" if field else place
        raise EvaluationError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _award(value: Any, place: str, index: int) -> AwardRecord:
    if not isinstance(value, dict):
        raise EvaluationError(f"{place}: awards[{index}]: expected an object")
    rule = value.get("rule")
    if not isinstance(rule, str) or not rule:
        raise EvaluationError(f"{place}: awards[{index}]: rule is missing")
    points = value.get("points")
    if not _is_number(points):
        raise EvaluationError(f"{place}: awards[{index}]: points: {points!r} is not a number")
    where = f"{place}: awards[{index}]"
    return AwardRecord(
        rule=rule,
        points=points,
        score=_opt_str(value, "score", where),
        category=_opt_str(value, "category", where),
        event_id=_opt_str(value, "event_id", where),
        awarded_at=_opt_str(value, "awarded_at", where),
        expires_at=_opt_str(value, "expires_at", where),
    )


def _row(d: dict[str, Any], place: str, number: int, times: dict[Any, int]) -> ScoreRow:
    contact = d.get("contact_id")
    if not isinstance(contact, str) or not contact:
        raise EvaluationError(f"{place}: contact_id is missing")
    as_of = d.get("as_of")
    as_of_ms = times.get(as_of) if isinstance(as_of, str) else None
    if as_of_ms is None:  # rows of one backtest mostly share their as_of: parse it once
        as_of_ms = times[as_of] = time_ms(as_of, f"{place}: as_of")
    awards = d.get("awards", [])
    if not isinstance(awards, list):
        raise EvaluationError(f"{place}: awards: expected a list")
    gates_passed = d.get("gates_passed")
    if gates_passed is not None and not isinstance(gates_passed, bool):
        raise EvaluationError(f"{place}: gates_passed: {gates_passed!r} is not true or false")
    tier_lists: dict[str, tuple[str, ...]] = {}
    for name, names in _object(d.get("tiers", {}), place, "tiers").items():
        if not isinstance(names, list) or not all(isinstance(t, str) for t in names):
            raise EvaluationError(f"{place}: tiers.{name}: expected a list of tier names")
        tier_lists[name] = tuple(names)
    gates = _object(d.get("gates", {}), place, "gates")
    by_score = _object(d.get("gates_passed_by_score", {}), place, "gates_passed_by_score")
    return ScoreRow(
        contact_id=contact,
        as_of=str(as_of),
        as_of_ms=as_of_ms,
        scores=_numbers(d.get("scores"), place, "scores"),
        awards=tuple(_award(a, place, i) for i, a in enumerate(awards)),
        display=_numbers(d.get("display", {}), place, "display"),
        tiers=tier_lists,
        gates_passed=gates_passed,
        gates={k: bool(v) for k, v in gates.items()},
        gates_passed_by_score={k: bool(v) for k, v in by_score.items()},
        grade=_opt_str(d, "grade", place),
        line=number,
    )


def read_scores(path: Path) -> list[ScoreRow]:
    """The rows of a backtest's ``scores.jsonl``; any bad line is an error naming it."""
    rows: list[ScoreRow] = []
    first_line: dict[str, int] = {}
    times: dict[Any, int] = {}
    for number, line in _load_lines(path):
        place = f"{path}:{number}"
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise EvaluationError(f"{place}: not JSON ({exc})") from None
        row = _row(_object(value, place), place, number, times)
        if row.contact_id in first_line:
            raise EvaluationError(
                f"{place}: contact {row.contact_id!r} already has a row "
                f"(line {first_line[row.contact_id]})"
            )
        first_line[row.contact_id] = number
        rows.append(row)
    return rows


def check_meta(meta: Any, place: str) -> dict[str, Any]:
    d = _object(meta, place)
    if not isinstance(d.get("model"), str):
        raise EvaluationError(f"{place}: model (the model's name) is missing")
    time_ms(d.get("as_of"), f"{place}: as_of")
    pit = d.get("point_in_time", "as_of")
    if pit not in POINT_IN_TIME:
        raise EvaluationError(f"{place}: point_in_time must be one of {', '.join(POINT_IN_TIME)}")
    scores = _object(d.get("scores"), f"{place}: scores")
    if not scores:
        raise EvaluationError(f"{place}: scores: the model has no scores")
    for name, spec in scores.items():
        where = f"{place}: scores.{name}"
        s = _object(spec, where)
        low = _number(s.get("min"), f"{where}.min")
        if s.get("max") is None:  # an open-ended score: the report spans the observed values
            continue
        high = _number(s.get("max"), f"{where}.max")
        if low > high:
            raise EvaluationError(f"{where}: min {low} is above max {high}")
        thresholds = s.get("thresholds", [])
        if not isinstance(thresholds, list):
            raise EvaluationError(f"{where}.thresholds: expected a list")
        for i, t in enumerate(thresholds):
            tier = _object(t, f"{where}.thresholds[{i}]")
            if not isinstance(tier.get("name"), str):
                raise EvaluationError(f"{where}.thresholds[{i}]: name is missing")
            _number(tier.get("at"), f"{where}.thresholds[{i}].at")
    rules = _object(d.get("rules", {}), f"{place}: rules")
    for rid, rule in rules.items():
        r = _object(rule, f"{place}: rules.{rid}")
        if not isinstance(r.get("score"), str):
            raise EvaluationError(f"{place}: rules.{rid}: score is missing")
    return d


def read_meta(path: Path) -> dict[str, Any]:
    """A backtest's ``backtest.json``, checked for the keys evaluation needs."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EvaluationError(f"{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise EvaluationError(f"{path}: not UTF-8 text ({exc.reason})") from None
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EvaluationError(f"{path}:{exc.lineno}: not JSON ({exc.msg})") from None
    return check_meta(meta, str(path))
