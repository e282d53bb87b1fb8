"""The scoring model: a YAML file validated by pydantic and compiled to rules.

The file is parsed with YAML 1.2 booleans (only ``true``/``false``), so the
key ``on`` stays a string. Every problem is reported with its place in the
file, ``rules[3].points (line 27): ...``, and all problems are reported at
once so a user fixes the file in one pass.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stream_scorer.errors import ModelError

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Threshold(_Strict):
    """A tier: crossing ``at`` upward is news; it re-arms below ``rearm_below``."""

    name: str = Field(pattern=_NAME)
    at: int
    rearm_below: int | None = None

    @property
    def rearm(self) -> int:
        return self.at if self.rearm_below is None else self.rearm_below

    @model_validator(mode="after")
    def _rearm_not_above(self) -> Threshold:
        if self.rearm_below is not None and self.rearm_below > self.at:
            raise ValueError(f"rearm_below ({self.rearm_below}) is above at ({self.at})")
        return self


class ScoreSpec(_Strict):
    """One named score: its range and its tiers."""

    min: int = 0
    max: int | None = None
    thresholds: list[Threshold] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> ScoreSpec:
        if self.max is not None and self.max < self.min:
            raise ValueError(f"max ({self.max}) is below min ({self.min})")
        names = [t.name for t in self.thresholds]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate threshold names: {', '.join(dupes)}")
        return self


class EventMatch(_Strict):
    """Which events a rule matches."""

    type: str = Field(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")


class Rule(_Strict):
    """Award ``points`` (may be negative) to ``score`` for every matching event."""

    id: str = Field(pattern=_NAME)
    score: str
    on: EventMatch
    points: int


class ScoringModelSpec(_Strict):
    """The whole file."""

    version: int = Field(ge=1)
    name: str = Field(pattern=_NAME)
    scores: dict[str, ScoreSpec] = Field(min_length=1)
    rules: list[Rule] = Field(default_factory=list)


Problem = tuple[tuple[Any, ...], str]


def cross_check(data: Mapping[str, Any]) -> list[Problem]:
    """Checks that span keys (references, uniqueness), run on the raw file data.

    They run even when some fields are invalid, so one pass reports every
    problem; each has the place of the offending key.
    """
    problems: list[Problem] = []
    scores = data.get("scores")
    known = set(scores) if isinstance(scores, Mapping) else set()
    rules = data.get("rules")
    seen: set[str] = set()
    for i, rule in enumerate(rules if isinstance(rules, list) else []):
        if not isinstance(rule, Mapping):
            continue
        rid = rule.get("id")
        if isinstance(rid, str):
            if rid in seen:
                problems.append((("rules", i, "id"), f"duplicate rule id {rid!r}"))
            seen.add(rid)
        score = rule.get("score")
        if isinstance(score, str) and known and score not in known:
            names = ", ".join(sorted(known))
            problems.append((("rules", i, "score"), f"unknown score {score!r} (known: {names})"))
    return problems


@dataclass(frozen=True, slots=True)
class Award:
    """Points a rule offers for one event, before the contact's state is consulted."""

    rule: str
    score: str
    points: int


@dataclass(frozen=True)
class ScoringModel:
    """A validated model compiled for lookup by event type."""

    spec: ScoringModelSpec
    by_type: Mapping[str, tuple[Award, ...]]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def version(self) -> int:
        return self.spec.version

    def awards_for(self, event_type: str) -> tuple[Award, ...]:
        return self.by_type.get(event_type, ())


def compile_model(spec: ScoringModelSpec) -> ScoringModel:
    by_type: dict[str, list[Award]] = {}
    for rule in spec.rules:
        by_type.setdefault(rule.on.type, []).append(Award(rule.id, rule.score, rule.points))
    return ScoringModel(spec=spec, by_type={k: tuple(v) for k, v in by_type.items()})


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader whose booleans are only true/false, as in YAML 1.2."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _lines(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out[(*path, key.value)] = key.start_mark.line + 1
            _lines(value, (*path, key.value), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, (*path, i), out)


def _place(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top)"


def parse_model(text: str, source: str = "<model>") -> ScoringModel:
    """Validate model text; raise :class:`ModelError` listing every problem."""
    try:
        node = yaml.compose(text, Loader=_Yaml12Loader)
        data = yaml.load(text, Loader=_Yaml12Loader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "?"
        raise ModelError(source, [f"({where}): not valid YAML: {exc}"]) from None
    if not isinstance(data, dict):
        raise ModelError(source, ["(top): the model must be a mapping of keys"])
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _lines(node, (), lines)

    def line_of(loc: tuple[Any, ...]) -> int:
        return next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines), 0)

    problems: list[str] = []
    spec: ScoringModelSpec | None = None
    try:
        spec = ScoringModelSpec.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not str(p).startswith("function-"))
            msg = err["msg"].removeprefix("Value error, ")
            got = err.get("input")
            shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
            problems.append(f"{_place(loc)} (line {line_of(loc)}): {msg}{shown}")
    for loc, msg in cross_check(data):
        problems.append(f"{_place(loc)} (line {line_of(loc)}): {msg}")
    if problems or spec is None:
        raise ModelError(source, problems)
    return compile_model(spec)


def load_model(path: str | Path) -> ScoringModel:
    """Read and validate a model file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelError(str(p), [f"(file): cannot read: {exc.strerror}"]) from None
    return parse_model(text, str(p))
