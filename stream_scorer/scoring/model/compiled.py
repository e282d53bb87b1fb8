"""A validated model compiled for the engine: rules indexed by event type, matchers built."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stream_scorer.events import CONTACT_UPDATED
from stream_scorer.scoring.model.conditions import Matcher, as_number, compile_condition
from stream_scorer.scoring.model.spec import ModelSpec, Rule, Threshold


@dataclass(frozen=True, slots=True)
class CompiledRule:
    id: str
    index: int
    score: str
    category: str | None
    points: int
    event_type: str | None
    match: Matcher | None
    when: Matcher | None
    once: bool
    expires: int | None
    cap_points: int | None
    cap_occurrences: int | None
    cap_per: int | None
    burst: int | None
    freq_count: int | None
    freq_within: int | None

    #: How far back this rule must see its own history (ms); None if it keeps none.
    window: int | None
    #: Whether awards are logged for caps and the burst guard.
    keeps_history: bool
    #: The score it awards to (``score`` names it): no lookup by name per award.
    compiled_score: CompiledScore


@dataclass(frozen=True, slots=True)
class CompiledScore:
    name: str
    min: int
    max: int | None
    categories: dict[str, tuple[int | None, int | None]]
    thresholds: tuple[Threshold, ...]
    gates: tuple[tuple[str, Matcher], ...]
    class_digit: bool
    #: The lowest ``at`` of the thresholds: below it, with no tier active, nothing can cross.
    lowest_at: int | None
    #: ``(name, at, rearm)`` of each threshold: plain values for the engine's tier checks.
    tiers: tuple[tuple[str, int, int], ...]

    def clamp(self, value: int) -> int:
        """``value`` within the score's ``min``/``max`` (a category's are in ``scoring.tally``)."""
        if value < self.min:
            return self.min
        if self.max is not None and value > self.max:
            return self.max
        return value


@dataclass(frozen=True)
class ScoringModel:
    spec: ModelSpec
    # dicts, not Mappings: compiled, a Mapping lookup is a generic method call
    scores: dict[str, CompiledScore]
    rules: tuple[CompiledRule, ...]
    by_type: dict[str, tuple[CompiledRule, ...]]
    attribute_rules: tuple[CompiledRule, ...]
    gates: tuple[tuple[str, Matcher], ...]
    by_id: Mapping[str, CompiledRule]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def version(self) -> int:
        return self.spec.version

    @property
    def event_types(self) -> frozenset[str]:
        """Types the model knows: those its rules name, plus ``contact_updated``."""
        return frozenset(self.by_type) | {CONTACT_UPDATED}

    def class_digit(self, attributes: Mapping[str, Any]) -> int:
        spec = self.spec.class_digit
        if spec is None:
            return 0
        value = as_number(attributes.get(spec.attribute))
        if value is None:
            return spec.missing
        for cls in spec.classes:
            if cls.below is None or value < cls.below:
                return cls.digit
        return spec.missing

    def display(self, score: str, value: int, attributes: Mapping[str, Any]) -> int:
        """The score as users read it: with the class digit in the thousands where configured."""
        if not self.scores[score].class_digit:
            return value
        return self.class_digit(attributes) * 1000 + value

    def grade(self, values: Mapping[str, int]) -> str | None:
        spec = self.spec.grade
        if spec is None:
            return None

        def band(axis_score: str, bands: Any) -> str:
            value = values.get(axis_score, self.scores[axis_score].clamp(0))
            for b in bands:
                if b.at is None or value >= b.at:
                    return str(b.label)
            return str(bands[-1].label)

        return band(spec.fit.score, spec.fit.bands) + band(
            spec.engagement.score, spec.engagement.bands
        )


def _window(rule: Rule) -> int | None:
    spans = [
        s
        for s in (
            rule.cap.per if rule.cap else None,
            rule.burst,
            rule.frequency.within if rule.frequency else None,
        )
        if s is not None
    ]
    return max(spans) if spans else None


def _name(text: str) -> str:
    """Interned: names are dict keys throughout the engine, and ``is`` ends a lookup early."""
    return sys.intern(text)


def _maybe(text: str | None) -> str | None:
    return None if text is None else sys.intern(text)


def compile_model(spec: ModelSpec) -> ScoringModel:
    gates = [(g.id, compile_condition(g.when), g.scores) for g in spec.gates]
    digit_scores = set()
    if spec.class_digit is not None:
        digit_scores = set(spec.class_digit.scores or spec.scores)
    scores = {
        _name(name): CompiledScore(
            name=_name(name),
            min=s.min,
            max=s.max,
            categories={_name(c): (cat.min, cat.max) for c, cat in s.categories.items()},
            thresholds=tuple(s.thresholds),
            gates=tuple((gid, m) for gid, m, only in gates if only is None or name in only),
            class_digit=name in digit_scores,
            lowest_at=min((t.at for t in s.thresholds), default=None),
            tiers=tuple((_name(t.name), t.at, t.rearm) for t in s.thresholds),
        )
        for name, s in spec.scores.items()
    }
    rules = []
    for i, r in enumerate(spec.rules):
        rules.append(
            CompiledRule(
                id=_name(r.id),
                index=i,
                score=_name(r.score),
                category=_maybe(r.category),
                points=r.points,
                event_type=_name(r.on.type) if r.on is not None else None,
                match=compile_condition(r.on.where) if r.on is not None and r.on.where else None,
                when=compile_condition(r.when) if r.when is not None else None,
                once=r.once,
                expires=r.expires,
                cap_points=r.cap.points if r.cap else None,
                cap_occurrences=r.cap.occurrences if r.cap else None,
                cap_per=r.cap.per if r.cap else None,
                burst=r.burst,
                freq_count=r.frequency.count if r.frequency else None,
                freq_within=r.frequency.within if r.frequency else None,
                window=_window(r),
                keeps_history=r.cap is not None or r.burst is not None,
                compiled_score=scores[_name(r.score)],
            )
        )
    by_type: dict[str, list[CompiledRule]] = {}
    for rule in rules:
        if rule.event_type is not None:
            by_type.setdefault(rule.event_type, []).append(rule)
    return ScoringModel(
        spec=spec,
        scores=scores,
        rules=tuple(rules),
        by_type={k: tuple(v) for k, v in by_type.items()},
        attribute_rules=tuple(r for r in rules if r.when is not None),
        gates=tuple((gid, m) for gid, m, _ in gates),
        by_id={r.id: r for r in rules},
    )
