"""Attributes and attribute (fit) rules: what ``contact_updated`` events do.

An update sets attributes (``null`` removes one); an update older than the
value it would replace is ignored, so late updates do not win. Attribute
rules are then re-evaluated: an award is in force exactly while its
condition holds, never accumulated (the contact's ``fit`` awards, one per
rule). Gates and tiers are checked after this, by the engine.
"""

from __future__ import annotations

from typing import Any

from stream_scorer.scoring.model import ScoringModel
from stream_scorer.scoring.state import Award, ContactState
from stream_scorer.scoring.tally import _add


def _update_attributes(state: ContactState, properties: dict[str, Any], t: int) -> bool:
    """Set the attributes an update at ``t`` carries; whether any changed."""
    changed = False
    for key, value in properties.items():
        if t < state.attribute_times.get(key, t):
            continue  # a late update: the newer value stands
        state.attribute_times[key] = t
        if value is None:
            if key in state.attributes:
                del state.attributes[key]
                changed = True
        elif state.attributes.get(key, _ABSENT) != value:
            state.attributes[key] = value
            changed = True
    return changed


_ABSENT = object()


def _refit(
    state: ContactState,
    model: ScoringModel,
    eid: str,
    t: int,
    awarded: list[Award] | None,
    withdrawn: list[Award] | None,
) -> None:
    """Award each attribute rule that now holds and withdraw each that no longer does.

    What changed is listed in ``awarded`` and ``withdrawn`` for callers that
    want it (replays do not).
    """
    scores = model.scores
    fit = state.fit
    tallies = state.tallies
    values = state.values
    for rule in model.attribute_rules:
        assert rule.when is not None
        holds = rule.when(state.attributes)
        current = fit.get(rule.id)
        if holds and current is None:
            award = Award(rule.id, rule.score, rule.category, rule.points, eid, t)
            fit[rule.id] = award
            _add(tallies, values, scores[rule.score], award.category, award.points, +1)
            if awarded is not None:
                awarded.append(award)
        elif not holds and current is not None:
            del fit[rule.id]
            _add(tallies, values, scores[rule.score], current.category, current.points, -1)
            if withdrawn is not None:
                withdrawn.append(current)
