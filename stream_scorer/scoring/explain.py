"""Explanations: why a contact has the score it has, and an award as a JSON object.

What the API's contact page and the backtest's score rows show: each score's
value, its display form, active tiers, gates, what each category counts and
the live awards behind it. :func:`award_record` is the one JSON form of an
award for them; each caller brings its own time format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stream_scorer.scoring.model import ScoringModel
from stream_scorer.scoring.state import Award, ContactState, _rebuild
from stream_scorer.scoring.tally import held


@dataclass(frozen=True)
class ScoreExplanation:
    """Why a contact has the score it has."""

    score: str
    value: int
    display: int
    tiers: list[str]
    gates: dict[str, bool]
    categories: dict[str, dict[str, int | None]]
    awards: list[Award]


def explain(state: ContactState, model: ScoringModel) -> dict[str, ScoreExplanation]:
    """Every score with its tiers, gates, category totals and the live awards behind it."""
    if not state.values:
        _rebuild(state, model)
    out: dict[str, ScoreExplanation] = {}
    for name, score in model.scores.items():
        tally = state.tallies.get(name)
        sums = {} if tally is None else {k: c.raw for k, c in tally.categories.items()}
        cats: dict[str, dict[str, int | None]] = {}
        for category, raw in sorted(sums.items()):
            low, high = score.categories.get(category, (None, None)) if category else (None, None)
            cats[category or "(none)"] = {"raw": raw, "counted": held(raw, low, high), "max": high}
        out[name] = ScoreExplanation(
            score=name,
            value=state.values[name],
            display=model.display(name, state.values[name], state.attributes),
            tiers=[t.name for t in score.thresholds if t.name in state.tiers.get(name, [])],
            gates={gid: gate(state.attributes) for gid, gate in score.gates},
            categories=cats,
            awards=sorted(
                (a for a in state.live_awards() if a.score == name), key=lambda a: (a.at, a.rule)
            ),
        )
    return out


def award_record(award: Award, when: Callable[[int], str]) -> dict[str, Any]:
    """One award as a JSON object; ``when`` formats its times (epoch ms) as the caller needs."""
    return {
        "score": award.score,
        "rule": award.rule,
        "category": award.category,
        "points": award.points,
        "event_id": award.event_id,
        "awarded_at": when(award.at),
        "expires_at": None if award.expires_at is None else when(award.expires_at),
    }
