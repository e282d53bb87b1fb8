"""Conversion analytics: how well a backtest's scores predicted who converted.

The monthly check teams run on a scoring model: do converters score higher
than non-converters (averages, distributions, ROC and AUC), which score bands
convert, how the tier thresholds perform and which threshold would perform
best, which contacts the model got most wrong (with the awards that explain
their scores) and which rules go with conversion (lift).

Everything here is a pure computation over a backtest's ``scores.jsonl`` and
``backtest.json`` and a conversions mapping (see
:func:`stream_scorer.review.conversions.read_conversions`); :func:`evaluate` returns
the ``report.json`` document that :mod:`stream_scorer.review.report` renders.

Decisions, each explained in the report too:

- Point in time: a score only counts as a prediction if it was computed
  before the outcome. A contact that converted at or before its row's
  ``as_of`` is left out (its score may include what it did after
  converting) and counted as ``excluded_converted_before_as_of``.
- Conversions without a score row are contacts with no events: they count
  as converters with the score's minimum and no awards, since that was
  their score, and leaving them out would flatter recall.
- Bands are ten equal-width ranges over [min, max], not quantiles: they line
  up with thresholds and stay comparable from month to month.
- Thresholds flag a contact when its score is ``>= at`` and it passes the
  gates, as the engine's tiers do; the suggested threshold is the observed
  score with the best F1 (ties: the higher), Youden J is reported beside it.
  ROC and AUC rank by score alone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any, TypedDict, TypeGuard

from stream_scorer.errors import ConversionsError, EvaluationError
from stream_scorer.times import from_epoch_ms, parse_time

__all__ = [
    "AwardRecord",
    "EvaluationError",
    "RocPoint",
    "ScoreRow",
    "auc",
    "evaluate",
    "read_meta",
    "read_scores",
    "roc",
]

#: The ``report.json`` layout; bump when a key changes meaning.
REPORT_VERSION = 1
#: Conversion-rate bands: equal-width over the score's [min, max], so they line
#: up with thresholds and compare month to month (quantile bands move).
BANDS = 10
#: Histogram bins per group, over the same range.
HISTOGRAM_BINS = 20
#: Contacts listed in each outlier table.
OUTLIERS = 10
#: Below this many contacts with a rule, its lift is flagged as noisy.
SMALL_SAMPLE = 20
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

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "score": self.score,
            "category": self.category,
            "points": self.points,
            "event_id": self.event_id,
            "awarded_at": self.awarded_at,
            "expires_at": self.expires_at,
        }


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


class RocPoint(TypedDict):
    """Contacts scoring ``>= threshold`` flagged; ``threshold`` None is the (0, 0) start."""

    threshold: float | None
    fpr: float
    tpr: float


class Bin(TypedDict):
    label: str
    low: float
    high: float
    converters: int
    non_converters: int


class Band(TypedDict):
    label: str
    low: float
    high: float
    contacts: int
    converters: int
    conversion_rate: float | None


class Cut(TypedDict):
    """How a threshold performs: contacts scoring ``>= at`` with gates passed are flagged."""

    at: float
    contacts_above: int
    converters_above: int
    share_of_contacts: float | None
    precision: float | None
    recall: float | None
    f1: float | None
    fpr: float | None
    lift: float | None


class TierCut(Cut):
    name: str
    rearm_below: float | None


class YoudenCut(Cut):
    j: float | None


class RuleLift(TypedDict):
    rule: str
    category: str | None
    points: float | None
    contacts_with: int
    converters_with: int
    conversion_rate_with: float | None
    contacts_without: int
    converters_without: int
    conversion_rate_without: float | None
    lift: float | None
    small_sample: bool
    #: Points and lift point opposite ways (positive points, lift below 1, or the
    #: reverse): a weight to check.
    sign_disagrees: bool


class Outlier(TypedDict):
    contact_id: str
    score: float
    display: float | None
    tiers: list[str]
    gates_passed: bool | None
    as_of: str | None
    converted_at: str | None
    no_history: bool
    awards: list[dict[str, Any]]


# --- reading -----------------------------------------------------------------


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


def _time(value: Any, place: str) -> int:
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
        as_of_ms = times[as_of] = _time(as_of, f"{place}: as_of")
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


def _check_meta(meta: Any, place: str) -> dict[str, Any]:
    d = _object(meta, place)
    if not isinstance(d.get("model"), str):
        raise EvaluationError(f"{place}: model (the model's name) is missing")
    _time(d.get("as_of"), f"{place}: as_of")
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
    return _check_meta(meta, str(path))


# --- ranking metrics -----------------------------------------------------------


def _both(scores_pos: Sequence[float], scores_neg: Sequence[float], what: str) -> None:
    if not scores_pos or not scores_neg:
        raise EvaluationError(f"{what} needs at least one converter and one non-converter")


def auc(scores_pos: Sequence[float], scores_neg: Sequence[float]) -> float:
    """Area under the ROC curve: the chance a random converter outscores a random non-converter.

    Mann-Whitney U with ties counted half, in O(n log n): one sort, then each
    group of equal scores credits its positives with every negative below it
    and half of the negatives tied with it.
    """
    _both(scores_pos, scores_neg, "AUC")
    labelled = sorted([(s, 0) for s in scores_neg] + [(s, 1) for s in scores_pos])
    wins = 0.0
    negatives_below = 0
    i = 0
    while i < len(labelled):
        j = i
        pos = neg = 0
        while j < len(labelled) and labelled[j][0] == labelled[i][0]:
            if labelled[j][1]:
                pos += 1
            else:
                neg += 1
            j += 1
        wins += pos * (negatives_below + neg / 2)
        negatives_below += neg
        i = j
    return wins / (len(scores_pos) * len(scores_neg))


def roc(scores_pos: Sequence[float], scores_neg: Sequence[float]) -> list[RocPoint]:
    """ROC points from (0, 0) to (1, 1), one per distinct score, highest threshold first.

    The point for threshold ``t`` flags every contact scoring ``>= t``; the
    trapezoids under these points add up to :func:`auc`.
    """
    _both(scores_pos, scores_neg, "ROC")
    labelled = sorted(
        [(s, 0) for s in scores_neg] + [(s, 1) for s in scores_pos], key=lambda p: -p[0]
    )
    points: list[RocPoint] = [{"threshold": None, "fpr": 0.0, "tpr": 0.0}]
    tp = fp = 0
    i = 0
    while i < len(labelled):
        value = labelled[i][0]
        while i < len(labelled) and labelled[i][0] == value:
            if labelled[i][1]:
                tp += 1
            else:
                fp += 1
            i += 1
        points.append(
            {"threshold": value, "fpr": fp / len(scores_neg), "tpr": tp / len(scores_pos)}
        )
    return points


# --- evaluation ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Contact:
    contact_id: str
    value: float
    converted_at: int | None
    gates_passed: bool | None
    awards: tuple[AwardRecord, ...]
    as_of: str | None
    display: float | None = None
    tiers: tuple[str, ...] = ()
    no_history: bool = False

    @property
    def converted(self) -> bool:
        return self.converted_at is not None

    @property
    def flaggable(self) -> bool:
        """Passes the gates, so a tier could put it in front of sales."""
        return self.gates_passed is True


def _ratio(a: float, b: float) -> float | None:
    return None if b == 0 else round(a / b, 6)


def _mean(values: Sequence[float]) -> float | None:
    return None if not values else round(sum(values) / len(values), 4)


def _median(values: Sequence[float]) -> float | None:
    return None if not values else median(values)


def _iso(ms: int) -> str:
    ts = from_epoch_ms(ms)
    frac = f".{ms % 1000:03d}" if ms % 1000 else ""
    return ts.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True, slots=True)
class _Bins:
    """Equal-width bins over a score's [low, high], the last one including ``high``.

    With integer scores the arithmetic is exact (no float edge landing a
    score in the wrong bin), there are never more bins than integers, and
    labels name the integers a bin holds ("60-69" with an en dash).
    """

    low: float
    high: float
    n: int
    integral: bool

    @classmethod
    def over(cls, low: float, high: float, wanted: int, integral: bool) -> _Bins:
        span = high - low
        n = 1 if span == 0 else wanted if not integral else min(wanted, int(span) + 1)
        return cls(low, high, n, integral)

    def index(self, value: float) -> int:
        span = self.high - self.low
        if span == 0:
            return 0
        if self.integral:
            i = (int(value) - int(self.low)) * self.n // int(span)
        else:
            i = math.floor((value - self.low) * self.n / span)
        return min(max(i, 0), self.n - 1)

    def edges(self) -> list[tuple[float, float, str]]:
        span = self.high - self.low
        if span == 0:
            return [(float(self.low), float(self.high), _fmt(self.low))]
        out = []
        for i in range(self.n):
            lo = self.low + i * span / self.n
            hi = self.high if i == self.n - 1 else self.low + (i + 1) * span / self.n
            if self.integral:
                low, width = int(self.low), int(span)
                first = low + -(-i * width // self.n)
                last = (
                    int(self.high) if i == self.n - 1 else low + -(-(i + 1) * width // self.n) - 1
                )
                label = _fmt(first) if first == last else f"{first}\N{EN DASH}{last}"
            else:
                label = f"[{lo:g}, {hi:g}{']' if i == self.n - 1 else ')'}"
            out.append((round(float(lo), 6), round(float(hi), 6), label))
        return out


def _cut(contacts: Sequence[_Contact], at: float, converters: int, negatives: int) -> Cut:
    above = [c for c in contacts if c.flaggable and c.value >= at]
    tp = sum(1 for c in above if c.converted)
    return _cut_from(at, len(above), tp, len(contacts), converters, negatives)


def _cut_from(at: float, flagged: int, tp: int, total: int, converters: int, negatives: int) -> Cut:
    fp = flagged - tp
    fn = converters - tp
    precision = _ratio(tp, flagged)
    rate = _ratio(converters, total)
    return {
        "at": at,
        "contacts_above": flagged,
        "converters_above": tp,
        "share_of_contacts": _ratio(flagged, total),
        "precision": precision,
        "recall": _ratio(tp, converters),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn) if converters else None,
        "fpr": _ratio(fp, negatives),
        "lift": None if precision is None or not rate else round(precision / rate, 6),
    }


def _sweep(contacts: Sequence[_Contact], converters: int, negatives: int) -> list[Cut]:
    """Every distinct score as a threshold, highest first, in one pass over a sort."""
    eligible = sorted((c for c in contacts if c.flaggable), key=lambda c: -c.value)
    cuts: list[Cut] = []
    flagged = tp = 0
    i = 0
    while i < len(eligible):
        value = eligible[i].value
        while i < len(eligible) and eligible[i].value == value:
            flagged += 1
            tp += eligible[i].converted
            i += 1
        cuts.append(_cut_from(value, flagged, tp, len(contacts), converters, negatives))
    return cuts


def _best_f1(cuts: Iterable[Cut]) -> Cut | None:
    """Highest F1; on a tie the higher threshold, which sends sales fewer contacts."""
    best: Cut | None = None
    for cut in cuts:  # highest threshold first, so ">" keeps the higher on ties
        if cut["f1"] is not None and (best is None or cut["f1"] > (best["f1"] or 0.0)):
            best = cut
    return best if best is not None and best["f1"] else None


def _best_youden(cuts: Iterable[Cut]) -> YoudenCut | None:
    """Highest Youden J = recall - false-positive rate; ties go to the higher threshold."""
    best: YoudenCut | None = None
    for cut in cuts:
        if cut["recall"] is None or cut["fpr"] is None:
            continue
        j = round(cut["recall"] - cut["fpr"], 6)
        if best is None or j > (best["j"] or 0.0):
            best = {**cut, "j": j}
    return best if best is not None and (best["j"] or 0.0) > 0 else None


def _outlier(c: _Contact) -> Outlier:
    return {
        "contact_id": c.contact_id,
        "score": c.value,
        "display": c.display,
        "tiers": list(c.tiers),
        "gates_passed": c.gates_passed,
        "as_of": c.as_of,
        "converted_at": None if c.converted_at is None else _iso(c.converted_at),
        "no_history": c.no_history,
        "awards": _awards_json(c.awards),
    }


def _awards_json(awards: Iterable[AwardRecord]) -> list[dict[str, Any]]:
    """Chronological, as ``engine.explain`` lists them."""
    ordered = sorted(awards, key=lambda a: (a.awarded_at or "", a.rule))
    return [
        {
            "rule": a.rule,
            "category": a.category,
            "points": a.points,
            "awarded_at": a.awarded_at,
            "expires_at": a.expires_at,
            "event_id": a.event_id,
        }
        for a in ordered
    ]


def _pick_score(meta: Mapping[str, Any], score: str | None) -> tuple[str, dict[str, Any]]:
    scores: dict[str, Any] = meta["scores"]
    if score is None:
        score = next(iter(scores))
    if score not in scores:
        raise EvaluationError(
            f"the model has no score {score!r} (it has {', '.join(sorted(scores))})"
        )
    spec: dict[str, Any] = scores[score]
    return score, spec


def _rule_lift(
    contacts: Sequence[_Contact], rules: Mapping[str, Mapping[str, Any]], converters: int
) -> list[RuleLift]:
    total = len(contacts)
    overall = _ratio(converters, total)
    with_n = dict.fromkeys(rules, 0)
    with_conv = dict.fromkeys(rules, 0)
    for c in contacts:
        for rid in {a.rule for a in c.awards}:
            if rid in with_n:
                with_n[rid] += 1
                with_conv[rid] += c.converted
    out: list[RuleLift] = []
    for rid, spec in rules.items():
        rate_with = _ratio(with_conv[rid], with_n[rid])
        points = spec.get("points")
        points = points if isinstance(points, int | float) else None
        lift = None if rate_with is None or not overall else round(rate_with / overall, 6)
        out.append(
            {
                "rule": rid,
                "category": spec.get("category"),
                "points": points,
                "contacts_with": with_n[rid],
                "converters_with": with_conv[rid],
                "conversion_rate_with": rate_with,
                "contacts_without": total - with_n[rid],
                "converters_without": converters - with_conv[rid],
                "conversion_rate_without": _ratio(converters - with_conv[rid], total - with_n[rid]),
                "lift": lift,
                "small_sample": with_n[rid] < SMALL_SAMPLE,
                "sign_disagrees": points is not None
                and lift is not None
                and ((points > 0 and lift < 1) or (points < 0 and lift > 1)),
            }
        )
    out.sort(key=lambda r: (r["lift"] is None, -(r["lift"] or 0.0), -r["contacts_with"], r["rule"]))
    return out


def evaluate(
    rows: Sequence[ScoreRow],
    conversions: Mapping[str, int],
    meta: Mapping[str, Any],
    score: str | None = None,
) -> dict[str, Any]:
    """The ``report.json`` document for one score (default: the model's first).

    ``conversions`` maps contact id to conversion time in epoch ms. Contacts
    absent from it did not convert. Contacts that converted at or before
    their row's ``as_of`` are excluded (point in time). Converters with no
    row had no events at all: they are included as converters with the
    score's minimum and no awards (a contact with no history has the minimum
    score, and leaving them out would overstate recall), unless they too
    converted at or before the ``as_of`` their row would have had.
    """
    meta = _check_meta(dict(meta), "backtest.json")
    name, spec = _pick_score(meta, score)
    low, high = spec["min"], spec["max"]
    pit = meta.get("point_in_time", "as_of")
    as_of_ms = _time(meta["as_of"], "backtest.json: as_of")
    rules = {rid: r for rid, r in meta.get("rules", {}).items() if r["score"] == name}

    contacts: list[_Contact] = []
    excluded = excluded_rowless = 0
    seen: set[str] = set()
    for row in rows:
        seen.add(row.contact_id)
        if name not in row.scores:
            raise EvaluationError(
                f"scores.jsonl:{row.line}: contact {row.contact_id!r} has no {name!r} score"
            )
        converted_at = conversions.get(row.contact_id)
        if converted_at is not None and converted_at <= row.as_of_ms:
            excluded += 1
            continue
        contacts.append(
            _Contact(
                contact_id=row.contact_id,
                value=row.scores[name],
                converted_at=converted_at,
                gates_passed=(row.gates_passed_by_score or {}).get(name, row.gates_passed),
                awards=tuple(
                    a
                    for a in row.awards
                    if (a.score or meta.get("rules", {}).get(a.rule, {}).get("score")) == name
                ),
                as_of=row.as_of,
                display=(row.display or {}).get(name),
                tiers=(row.tiers or {}).get(name, ()),
            )
        )
    rowless = sorted(c for c in conversions if c not in seen)
    first = meta.get("first_event_at")
    history_starts = _time(first, "backtest.json: first_event_at") if first else None
    before_history = 0
    for contact in rowless:
        converted_at = conversions[contact]
        # The as_of its row would have had: the backtest's, or just before converting.
        implicit = converted_at - 1 if pit == "before_conversion" else as_of_ms
        if converted_at <= implicit:
            excluded_rowless += 1
            continue
        if history_starts is not None and converted_at <= history_starts:
            before_history += 1  # a customer before the history: nothing can explain it
            continue
        contacts.append(
            _Contact(
                contact_id=contact,
                value=low,
                converted_at=converted_at,
                gates_passed=None,  # no attributes, so the gates are unknown
                awards=(),
                as_of=None,
                no_history=True,
            )
        )

    if high is None:  # an open-ended score: span what was observed
        high = max([low + 1, *(c.value for c in contacts)])
    pos = [c.value for c in contacts if c.converted]
    neg = [c.value for c in contacts if not c.converted]
    n_pos, n_neg = len(pos), len(neg)
    integral = all(float(v).is_integer() for v in (low, high, *pos, *neg))

    hist_bins = _Bins.over(low, high, HISTOGRAM_BINS, integral)
    histogram: list[Bin] = [
        {"label": lab, "low": lo, "high": hi, "converters": 0, "non_converters": 0}
        for lo, hi, lab in hist_bins.edges()
    ]
    band_bins = _Bins.over(low, high, BANDS, integral)
    band_edges = band_bins.edges()
    band_counts = [[0, 0] for _ in band_edges]
    for c in contacts:
        bin_ = histogram[hist_bins.index(c.value)]
        if c.converted:
            bin_["converters"] += 1
        else:
            bin_["non_converters"] += 1
        counts = band_counts[band_bins.index(c.value)]
        counts[0] += 1
        counts[1] += c.converted
    bands: list[Band] = [
        {
            "label": lab,
            "low": lo,
            "high": hi,
            "contacts": n,
            "converters": k,
            "conversion_rate": _ratio(k, n),
        }
        for (lo, hi, lab), (n, k) in zip(band_edges, band_counts, strict=True)
    ]

    tiers: list[TierCut] = []
    for t in spec.get("thresholds", []):
        cut = _cut(contacts, t["at"], n_pos, n_neg)
        tiers.append({**cut, "name": t["name"], "rearm_below": t.get("rearm_below")})
    cuts = _sweep(contacts, n_pos, n_neg)

    # Ties: contacts with history first (their awards can be read), then by id.
    lowest = sorted(
        (c for c in contacts if c.converted), key=lambda c: (c.value, c.no_history, c.contact_id)
    )
    highest = sorted(
        (c for c in contacts if not c.converted), key=lambda c: (-c.value, c.contact_id)
    )
    gated_out = [c for c in contacts if c.gates_passed is False]

    notes: list[str] = []
    if excluded or excluded_rowless:
        notes.append(
            f"{excluded + excluded_rowless} contact(s) converted at or before their as_of and "
            "are left out: a score computed after a conversion may include what the contact "
            "did after converting, so it cannot count as a prediction."
        )
    included_rowless = len(rowless) - excluded_rowless - before_history
    if before_history:
        notes.append(
            f"{before_history} contact(s) converted before the history starts and have no "
            "events before converting: they are left out."
        )
    if included_rowless:
        notes.append(
            f"{included_rowless} converter(s) have no score row (no events at all): they are "
            f"counted as converters with the minimum score ({_fmt(low)}) and no awards."
        )
    if not n_pos and (excluded or excluded_rowless):
        notes.append(
            "No converter is left: every one converted at or before the scores' as_of. "
            "Backtest with --conversions (score each just before converting) or an "
            "earlier --as-of."
        )
    if not n_pos or not n_neg:
        notes.append("AUC and ROC need at least one converter and one non-converter.")
    if gated_out:
        notes.append(
            f"{len(gated_out)} contact(s) fail a gate and never reach a tier; "
            f"{sum(c.converted for c in gated_out)} of them converted."
        )
    if len(meta["scores"]) > 1 and score is None:
        notes.append(f"The model has several scores; this report evaluates {name!r}.")

    return {
        "report_version": REPORT_VERSION,
        "model": {"name": meta["model"], "version": meta.get("model_version")},
        "score": {
            "name": name,
            "min": low,
            "max": high,
            "thresholds": list(spec.get("thresholds", [])),
        },
        "as_of": meta["as_of"],
        "point_in_time": pit,
        "backtest": {k: meta.get(k) for k in ("events", "applied", "rejected", "contacts")},
        "counts": {
            "rows": len(rows),
            "contacts": len(contacts),
            "converters": n_pos,
            "non_converters": n_neg,
            "conversion_rate": _ratio(n_pos, len(contacts)),
            "excluded_converted_before_as_of": excluded + excluded_rowless,
            "conversions_without_scores": len(rowless),
            "conversions_without_scores_included": included_rowless,
            "excluded_converted_before_history": before_history,
            "gated_out": len(gated_out),
            "gated_out_converters": sum(c.converted for c in gated_out),
        },
        "averages": {
            "converters": _mean(pos),
            "non_converters": _mean(neg),
            "median_converters": _median(pos),
            "median_non_converters": _median(neg),
        },
        "distribution": {"bins": histogram},
        "roc": {
            "auc": round(auc(pos, neg), 6) if pos and neg else None,
            "points": roc(pos, neg) if pos and neg else [],
        },
        "bands": bands,
        "thresholds": tiers,
        "suggested_threshold": _best_f1(cuts),
        "youden_threshold": _best_youden(cuts),
        "outliers": {
            "lowest_converters": [_outlier(c) for c in lowest[:OUTLIERS]],
            "highest_non_converters": [_outlier(c) for c in highest[:OUTLIERS]],
        },
        "rules": _rule_lift(contacts, rules, n_pos),
        "notes": notes,
    }
