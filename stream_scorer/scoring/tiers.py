"""Tiers: which of a score's tiers are active, and the crossings when that changes.

Per score, an inactive tier becomes active when the score is at least its
``at`` and every gate of the score passes (a crossing up); an active tier
stays active while the score is at least its ``rearm_below`` and the gates
pass, else it crosses down. Each crossing carries the contact's largest live
awards as its reasons.
"""

from __future__ import annotations

from stream_scorer.scoring.crossings import Crossing
from stream_scorer.scoring.model import ScoringModel
from stream_scorer.scoring.state import Award, ContactState


def _check_tiers(
    state: ContactState,
    model: ScoringModel,
    contact_id: str,
    names: list[str],
    previous: dict[str, int],
    cause: str,
    at: int,
    out: list[Crossing],
    expired_by: int | None = None,
) -> None:
    """Check the tiers of the scores ``names`` after a change, appending crossings to ``out``.

    ``previous`` holds each score's value before the change (a score missing
    from it did not move); ``cause`` and ``at`` are the change's. With
    ``expired_by``, ``state.awards`` still holds awards expiring at or before
    it, which are not live any more (an expiry in progress): a crossing's
    reasons leave them out.
    """
    for name in names:
        score = model.scores[name]
        lowest = score.lowest_at
        if lowest is None:
            continue
        value = state.values[name]
        gates_ok = state.gates_ok.get(name, True)
        active = state.tiers.get(name)
        if active is None:
            if not gates_ok or value < lowest:
                continue  # nothing active, nothing can become active
            active = state.tiers[name] = []
        for tier, level, rearm in score.tiers:
            if tier in active:
                if gates_ok and value >= rearm:
                    continue
                active.remove(tier)
                direction = "down"
            elif gates_ok and value >= level:
                active.append(tier)
                direction = "up"
            else:
                continue
            out.append(
                Crossing(
                    contact_id,
                    name,
                    tier,
                    direction,
                    value,
                    previous.get(name, value),
                    level,
                    cause,
                    at,
                    model.display(name, value, state.attributes),
                    _top_awards(state, name, expired_by),
                )
            )
        if not active:
            del state.tiers[name]


def _top_awards(
    state: ContactState, score: str, expired_by: int | None = None, n: int = 3
) -> tuple[Award, ...]:
    """The largest live awards; ties by time, then rule, then live order.

    The first ``n`` of a stable sort by ``(-abs(points), at, rule)``, kept in one
    pass instead of sorting every live award at each crossing. Awards
    expiring at or before ``expired_by`` are not live.
    """
    top: list[Award] = []
    for award in (*state.fit.values(), *state.awards):
        if award.score != score:
            continue
        expires = award.expires_at
        if expired_by is not None and expires is not None and expires <= expired_by:
            continue
        i = len(top)
        while i and _ranks_before(award, top[i - 1]):
            i -= 1
        if i < n:
            top.insert(i, award)
            if len(top) > n:
                top.pop()
    return tuple(top)


def _ranks_before(a: Award, b: Award) -> bool:
    size, other = abs(a.points), abs(b.points)
    if size != other:
        return size > other
    if a.at != b.at:
        return a.at < b.at
    return a.rule < b.rule
