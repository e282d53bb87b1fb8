"""The pydantic schema of a scoring model file.

Field checks live on the models; checks that relate keys to each other
(references to scores and categories, unique ids) live in
:func:`cross_check`, which runs on the raw data even when fields are
invalid, so a user sees every problem in one pass.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from stream_scorer.events import EVENT_TYPE_PATTERN, MAX_SAFE_NUMBER
from stream_scorer.scoring.model.conditions import ConditionError, compile_condition

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w)")

#: Every number of a model is within ±(2**53 - 1), as every number of an event
#: is: the engine compares condition numbers as floats (a larger integer has no
#: float) and alerts carry scores to JSON readers that lose larger integers.
SafeInt = Annotated[int, Field(ge=-MAX_SAFE_NUMBER, le=MAX_SAFE_NUMBER)]
#: A finite float within the same range (no NaN, no infinity).
SafeFloat = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_SAFE_NUMBER, le=MAX_SAFE_NUMBER)]
#: How deeply a condition may nest (mappings and lists: ``{any: [{not: {a: 1}}]}`` is 4).
MAX_CONDITION_DEPTH = 32


def is_safe_number(value: Any) -> bool:
    """Whether ``value`` is a number (not a bool) that is finite and within ±(2**53 - 1)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return -MAX_SAFE_NUMBER <= value <= MAX_SAFE_NUMBER  # NaN fails this too


def brief(value: Any, limit: int = 80) -> str:
    """``repr(value)`` for a message: short, and never failing (a huge int has no text)."""
    if isinstance(value, int) and not isinstance(value, bool) and not is_safe_number(value):
        sign = "a negative" if value < 0 else "an"
        return f"{sign} integer of about {int(abs(value).bit_length() * 0.30103) + 1} digits"
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        return f"a {type(value).__name__} too large to show"
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: The longest duration a model may name: an award that outlives a century is
#: a typo, and its expiry must stay a time that can be written.
MAX_DURATION_MS = 36_500 * 86_400_000


def parse_duration(value: Any) -> int:
    """``90d``, ``12h``, ``1d12h``, ``30s`` or a number of seconds -> milliseconds."""
    ms = _duration_ms(value)
    if ms > MAX_DURATION_MS:
        raise ValueError(f"{value!r} is longer than 36500d (a century)")
    return ms


def _duration_ms(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        if not value > 0 or value > MAX_DURATION_MS:  # NaN and inf too
            raise ValueError(f"{brief(value)} is not a positive duration of at most a century")
        ms = int(value * 1000)
        if ms < 1:  # 0.0001 (seconds): no time at all, as the engine counts
            raise ValueError(f"{brief(value)} is not a duration of at least 1ms")
        return ms
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        pos, total = 0, 0
        for m in _DURATION.finditer(text):
            if m.start() != pos:
                break
            digits = m.group(1).lstrip("0")
            if len(digits) > 16:  # more ms than a century in any unit; int() would refuse 4300
                raise ValueError(f"{brief(value)} is longer than 36500d (a century)")
            total += int(digits or "0") * _UNITS[m.group(2)]
            pos = m.end()
        if text and pos == len(text) and total > 0:
            return total
    raise ValueError(f"{brief(value)} is not a duration (use e.g. 30s, 15m, 12h, 90d, 2w, 1d12h)")


Duration = Annotated[int, BeforeValidator(parse_duration)]


def _condition(value: Any) -> dict[str, Any]:
    problem = _condition_problem(value)
    if problem is not None:
        raise ValueError(problem)
    try:
        compile_condition(value, "")
    except ConditionError as exc:
        raise ValueError(str(exc).lstrip(".: ")) from None
    except Exception as exc:  # e.g. a regex repetition too large for re: OverflowError
        raise ValueError(f"cannot be compiled: {type(exc).__name__}: {exc}"[:300]) from None
    return dict(value)


def _condition_problem(value: Any) -> str | None:
    """Why a condition cannot be compiled safely, before compiling it: too deep, bad numbers.

    Iterative, so that a deep value cannot exhaust the stack here; the compiler
    and the matchers it builds recurse once per level.
    """
    todo: list[tuple[Any, str, int]] = [(value, "", 1)]
    while todo:  # depth first, in the document's order
        item, here, depth = todo.pop()
        if isinstance(item, Mapping | list):
            if depth > MAX_CONDITION_DEPTH:
                return f"{here or '(condition)'}: nested deeper than {MAX_CONDITION_DEPTH} levels"
            if isinstance(item, list):
                subs = [(sub, f"{here}[{i}]") for i, sub in enumerate(item)]
            else:
                subs = [
                    (sub, f"{here}.{name}" if here else name)
                    for key, sub in item.items()
                    for name in [key if isinstance(key, str) else brief(key)]
                ]
            todo.extend((sub, place, depth + 1) for sub, place in reversed(subs))
        elif (
            isinstance(item, int | float)
            and not isinstance(item, bool)
            and not is_safe_number(item)
        ):
            return (
                f"{here or '(condition)'}: {brief(item)} is not a finite number within ±(2**53 - 1)"
            )
    return None


Condition = Annotated[dict[str, Any], BeforeValidator(_condition)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Category(Strict):
    """A category's points count toward its score only up to ``max`` (and down to ``min``)."""

    max: SafeInt | None = None
    min: SafeInt | None = None

    @model_validator(mode="after")
    def _range(self) -> Category:
        if self.max is not None and self.min is not None and self.max < self.min:
            raise ValueError(f"max ({self.max}) is below min ({self.min})")
        return self


class Threshold(Strict):
    """A tier: reaching ``at`` crosses up; falling below ``rearm_below`` crosses down."""

    name: str = Field(pattern=NAME)
    at: SafeInt
    rearm_below: SafeInt | None = None

    @property
    def rearm(self) -> int:
        return self.at if self.rearm_below is None else self.rearm_below

    @model_validator(mode="after")
    def _rearm_not_above(self) -> Threshold:
        if self.rearm_below is not None and self.rearm_below > self.at:
            raise ValueError(f"rearm_below ({self.rearm_below}) is above at ({self.at})")
        return self


class ScoreSpec(Strict):
    """One named score: its range, categories and tiers."""

    description: str | None = None
    min: SafeInt = 0
    max: SafeInt | None = None
    categories: dict[str, Category] = Field(default_factory=dict)
    thresholds: list[Threshold] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> ScoreSpec:
        if self.max is not None and self.max < self.min:
            raise ValueError(f"max ({self.max}) is below min ({self.min})")
        names = [t.name for t in self.thresholds]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate threshold names: {', '.join(dupes)}")
        for name in self.categories:
            if not re.match(NAME, name):
                raise ValueError(f"category name {name!r} must match {NAME}")
        return self


class EventMatch(Strict):
    """Which events a rule matches: a type and conditions on the event's properties."""

    type: str = Field(pattern=EVENT_TYPE_PATTERN)
    where: Condition | None = None


class Cap(Strict):
    """At most ``points`` points, or ``occurrences`` awards, per rolling window ``per``."""

    points: int | None = Field(default=None, ge=1, le=MAX_SAFE_NUMBER)
    occurrences: int | None = Field(default=None, ge=1, le=MAX_SAFE_NUMBER)
    per: Duration | None = None

    @model_validator(mode="after")
    def _one_limit(self) -> Cap:
        if (self.points is None) == (self.occurrences is None):
            raise ValueError("give exactly one of points or occurrences")
        return self


class Frequency(Strict):
    """Award only when ``count`` matching events fall within ``within``."""

    count: int = Field(ge=2, le=MAX_SAFE_NUMBER)
    within: Duration


class Rule(Strict):
    """An event rule (``on``) or an attribute rule (``when``) that awards ``points``."""

    id: str = Field(pattern=NAME)
    description: str | None = None
    score: str
    category: str | None = None
    on: EventMatch | None = None
    when: Condition | None = None
    points: SafeInt
    once: bool = False
    expires: Duration | None = None
    cap: Cap | None = None
    burst: Duration | None = None
    frequency: Frequency | None = None

    @property
    def is_attribute_rule(self) -> bool:
        return self.when is not None

    @model_validator(mode="after")
    def _shape(self) -> Rule:
        if (self.on is None) == (self.when is None):
            raise ValueError(
                "give exactly one of 'on' (an event rule) or 'when' (an attribute rule)"
            )
        if self.points == 0:
            raise ValueError("points must not be 0")
        if self.on is not None and self.on.type == "contact_updated":
            raise ValueError(
                "contact_updated events carry attributes: score them with an "
                "attribute rule ('when'), not an event rule"
            )
        if self.when is not None:
            extra = [
                k
                for k in ("once", "expires", "cap", "burst", "frequency")
                if getattr(self, k) not in (None, False)
            ]
            if extra:
                raise ValueError(
                    f"an attribute rule follows current attributes and cannot have "
                    f"{', '.join(extra)}"
                )
        if self.cap is not None and self.points < 0:
            raise ValueError("a cap limits positive points; this rule subtracts")
        if self.once and self.cap is not None:
            raise ValueError("a one-time rule needs no cap")
        return self


class Gate(Strict):
    """A must-have: while it fails, no upward crossing of the listed scores (default all)."""

    id: str = Field(pattern=NAME)
    description: str | None = None
    when: Condition
    scores: list[str] | None = None


class DigitClass(Strict):
    below: SafeFloat | None = None
    digit: int = Field(ge=0, le=9)


class ClassDigit(Strict):
    """The thousands digit shows a class read from an attribute: 2089 = class 2, score 89."""

    attribute: str = Field(min_length=1)
    classes: list[DigitClass] = Field(min_length=1)
    missing: int = Field(default=0, ge=0, le=9)
    scores: list[str] | None = None

    @model_validator(mode="after")
    def _order(self) -> ClassDigit:
        bounds = [c.below for c in self.classes if c.below is not None]
        if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
            raise ValueError("classes must be in increasing order of 'below'")
        if any(c.below is None for c in self.classes[:-1]):
            raise ValueError("only the last class may omit 'below' (it takes the rest)")
        return self


class Band(Strict):
    at: SafeInt | None = None
    label: str = Field(min_length=1, max_length=8)


class GradeAxis(Strict):
    score: str
    bands: list[Band] = Field(min_length=1)

    @model_validator(mode="after")
    def _order(self) -> GradeAxis:
        ats = [b.at for b in self.bands if b.at is not None]
        if ats != sorted(ats, reverse=True) or len(set(ats)) != len(ats):
            raise ValueError("bands must be in decreasing order of 'at'")
        if self.bands[-1].at is not None:
            raise ValueError("the last band must omit 'at' (it takes the rest)")
        if any(b.at is None for b in self.bands[:-1]):
            raise ValueError("only the last band may omit 'at'")
        return self


class Grade(Strict):
    """A fit letter by an engagement number: A1 best, D3 worst."""

    fit: GradeAxis
    engagement: GradeAxis


class ModelSpec(Strict):
    """The whole file."""

    version: int = Field(ge=1, le=MAX_SAFE_NUMBER)
    name: str = Field(pattern=NAME)
    description: str | None = None
    scores: dict[str, ScoreSpec] = Field(min_length=1)
    rules: list[Rule] = Field(default_factory=list)
    gates: list[Gate] = Field(default_factory=list)
    class_digit: ClassDigit | None = None
    grade: Grade | None = None


Problem = tuple[tuple[Any, ...], str]


def _items(value: Any) -> list[tuple[int, Mapping[str, Any]]]:
    if not isinstance(value, list):
        return []
    return [(i, v) for i, v in enumerate(value) if isinstance(v, Mapping)]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: Any) -> int | None:
    """A safe integer the checks below may compare and print; None for anything else.

    Other values are the field checks' to report: the cross checks run on raw
    data, whatever its types.
    """
    return value if isinstance(value, int) and is_safe_number(value) else None


def _duplicate_ids(data: Mapping[str, Any], section: str, what: str) -> list[Problem]:
    """Every repeat of an ``id`` in a list section, placed at the repeat."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, item in _items(data.get(section)):
        ident = item.get("id")
        if isinstance(ident, str):
            if ident in seen:
                problems.append(((section, i, "id"), f"duplicate {what} id {ident!r}"))
            seen.add(ident)
    return problems


def cross_check(data: Mapping[str, Any]) -> list[Problem]:
    """Checks that relate keys to each other, on the raw file data, with places.

    Total over any data: keys that are not strings and values of any type are
    skipped here (the field checks report them).
    """
    problems: list[Problem] = []
    scores = data.get("scores")
    scores = scores if isinstance(scores, Mapping) else {}
    known = {name for name in scores if isinstance(name, str)}
    names = ", ".join(sorted(known))

    for name, spec in scores.items():
        if not isinstance(name, str) or not isinstance(spec, Mapping):
            continue
        low, high = _int(spec.get("min", 0)), _int(spec.get("max"))
        for i, tier in _items(spec.get("thresholds")):
            at = _int(tier.get("at"))
            if at is None:
                continue
            loc = ("scores", name, "thresholds", i, "at")
            if high is not None and at > high:
                problems.append(
                    (loc, f"{at} is above the score's max {high}: it could never be reached")
                )
            if low is not None and at <= low:
                problems.append(
                    (loc, f"{at} is not above the score's min {low}: every contact would cross it")
                )

    def score_ref(loc: tuple[Any, ...], value: Any) -> None:
        if isinstance(value, str) and known and value not in known:
            problems.append((loc, f"unknown score {value!r} (known: {names})"))

    problems += _duplicate_ids(data, "rules", "rule")
    for i, rule in _items(data.get("rules")):
        score = rule.get("score")
        score_ref(("rules", i, "score"), score)
        category = rule.get("category")
        spec = scores.get(score) if isinstance(score, str) else None
        if isinstance(category, str) and isinstance(spec, Mapping):
            cats = spec.get("categories") or {}
            if isinstance(cats, Mapping) and category not in cats:
                listed = ", ".join(sorted(c for c in cats if isinstance(c, str))) or "none defined"
                problems.append(
                    (
                        (("rules", i, "category")),
                        f"unknown category {category!r} of score {score!r} (known: {listed})",
                    )
                )
    problems += _duplicate_ids(data, "gates", "gate")
    for i, gate in _items(data.get("gates")):
        for j, score in enumerate(_list(gate.get("scores"))):
            score_ref(("gates", i, "scores", j), score)
    digit = data.get("class_digit")
    if isinstance(digit, Mapping):
        listed_scores = _list(digit.get("scores"))
        targets = listed_scores or [n for n in scores if isinstance(n, str)]
        for j, score in enumerate(listed_scores):
            score_ref(("class_digit", "scores", j), score)
        for score in targets:
            spec = scores.get(score) if isinstance(score, str) else None
            if not isinstance(spec, Mapping):
                continue
            low, high = spec.get("min", 0), spec.get("max")
            if not isinstance(high, int) or high > 999 or not isinstance(low, int) or low < 0:
                problems.append(
                    (
                        ("scores", score),
                        "a score shown with a class digit needs min >= 0 and max <= 999",
                    )
                )
    grade = data.get("grade")
    if isinstance(grade, Mapping):
        for axis in ("fit", "engagement"):
            part = grade.get(axis)
            if isinstance(part, Mapping):
                score_ref(("grade", axis, "score"), part.get("score"))
    return problems
