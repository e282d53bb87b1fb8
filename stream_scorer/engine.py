"""The pure reference engine: the specification of scoring.

``apply(state, event, model)`` returns the contact's next state and what
happened (awards and threshold crossings). No I/O and no clock but the
event's own time, so backtests, the Redis script and the tests can all be
checked against it. ``score.lua`` implements the same semantics in Redis.

Semantics (kept identical in ``score.lua``):
- an event id seen before for the contact changes nothing;
- an event's awards apply in rule order, each clamped to the score's range;
- after the event, each tier of each touched score is checked in order: an
  inactive tier whose ``at`` is reached crosses up, an active tier whose
  score fell below its re-arm level crosses down.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from stream_scorer.alerts import alert_id
from stream_scorer.events import Event
from stream_scorer.model import ScoreSpec, ScoringModel


@dataclass
class ContactState:
    """One contact's scoring state; plain data that round-trips through JSON."""

    scores: dict[str, int] = field(default_factory=dict)
    active_tiers: dict[str, list[str]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        return {
            "scores": dict(self.scores),
            "active_tiers": {k: list(v) for k, v in self.active_tiers.items()},
            "seen": sorted(self.seen),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContactState:
        return cls(
            scores=dict(data.get("scores", {})),
            active_tiers={k: list(v) for k, v in data.get("active_tiers", {}).items()},
            seen=set(data.get("seen", [])),
        )

    def copy(self) -> ContactState:
        return ContactState(
            scores=dict(self.scores),
            active_tiers={k: list(v) for k, v in self.active_tiers.items()},
            seen=set(self.seen),
        )


@dataclass(frozen=True, slots=True)
class AwardMade:
    rule: str
    score: str
    points: int
    applied: int
    event_id: str


@dataclass(frozen=True, slots=True)
class Crossing:
    contact_id: str
    score: str
    tier: str
    direction: str
    value: int
    previous: int
    threshold: int
    event_id: str

    @property
    def alert_id(self) -> str:
        return alert_id(self.contact_id, self.score, self.tier, self.direction, self.event_id)


@dataclass(frozen=True, slots=True)
class Effects:
    duplicate: bool = False
    awards: tuple[AwardMade, ...] = ()
    crossings: tuple[Crossing, ...] = ()


def _clamp(value: int, spec: ScoreSpec) -> int:
    if value < spec.min:
        return spec.min
    if spec.max is not None and value > spec.max:
        return spec.max
    return value


def initial_score(spec: ScoreSpec) -> int:
    return _clamp(0, spec)


def apply(state: ContactState, event: Event, model: ScoringModel) -> tuple[ContactState, Effects]:
    """Apply one event to one contact's state."""
    if event.event_id in state.seen:
        return state, Effects(duplicate=True)
    new = state.copy()
    new.seen.add(event.event_id)
    scores = model.spec.scores
    before: dict[str, int] = {}
    made: list[AwardMade] = []
    for award in model.awards_for(event.type):
        spec = scores[award.score]
        current = new.scores.get(award.score, initial_score(spec))
        before.setdefault(award.score, current)
        after = _clamp(current + award.points, spec)
        new.scores[award.score] = after
        made.append(
            AwardMade(award.rule, award.score, award.points, after - current, event.event_id)
        )
    crossings: list[Crossing] = []
    for name, previous in before.items():
        value = new.scores[name]
        active = new.active_tiers.setdefault(name, [])
        for tier in scores[name].thresholds:
            if tier.name not in active and value >= tier.at:
                active.append(tier.name)
                direction = "up"
            elif tier.name in active and value < tier.rearm:
                active.remove(tier.name)
                direction = "down"
            else:
                continue
            crossings.append(
                Crossing(
                    event.contact_id,
                    name,
                    tier.name,
                    direction,
                    value,
                    previous,
                    tier.at,
                    event.event_id,
                )
            )
    return new, Effects(awards=tuple(made), crossings=tuple(crossings))


def replay(
    events: Iterable[Event], model: ScoringModel
) -> tuple[dict[str, ContactState], list[Crossing]]:
    """Apply events in the order given; return every contact's state and all crossings."""
    states: dict[str, ContactState] = {}
    crossings: list[Crossing] = []
    for event in events:
        state = states.get(event.contact_id) or ContactState()
        states[event.contact_id], effects = apply(state, event, model)
        crossings.extend(effects.crossings)
    return states, crossings
