"""The pure reference engine: the specification of scoring.

``apply(state, event, model)`` returns the contact's next state and what
happened; ``advance(state, t, model, contact_id)`` moves a contact's clock
to ``t`` so that expired awards drop out. No I/O, and no clock but event
time. The live path, backtests and the API all score with this module.

The semantics, in the order they apply to one event at time ``t``:

1. An event id the contact has seen changes nothing (ids are remembered as
   64-bit keys, see :func:`~.state.event_key`).
2. The contact's clock becomes ``max(clock, t)``. Awards whose expiry is at
   or before the clock (or the time the contact was last advanced to, if
   later) drop out first, one expiry instant at a time; each instant can
   cross tiers down (cause ``expired@<ms>``).
3. ``contact_updated`` sets attributes (``null`` removes one); an attribute
   older than the value it would replace is ignored, so late updates do
   not win. Attribute rules are re-evaluated: an award is in force exactly
   while its condition holds. They are never accumulated.
4. Any other event: each rule for its type whose ``where`` matches, in file
   order, is checked and either awards or is refused with a reason:
   ``once`` (already awarded), ``expired`` (the award would already have
   expired), ``late`` (older than the rule's window behind the clock: its
   caps cannot be checked), ``burst`` (the same rule within ``burst`` of a
   counted event), ``frequency`` (fewer than ``count`` matching events in
   ``within``), ``cap`` (the rolling window is full; a points cap can also
   award part of the points).
5. A score is the sum of its live awards, each category's sum held within
   the category's ``min``/``max``, the total within the score's range.
6. Tiers, per score: an inactive tier becomes active when the score is at
   least ``at`` and every gate of the score passes (crossing up); an
   active tier stays active while the score is at least ``rearm_below``
   and the gates pass, else it crosses down.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stream_scorer.events import CONTACT_UPDATED, Event
from stream_scorer.scoring.attributes import _refit, _update_attributes
from stream_scorer.scoring.crossings import Crossing
from stream_scorer.scoring.model import ScoringModel
from stream_scorer.scoring.rules import Refusal, _award_rule
from stream_scorer.scoring.state import (
    Award,
    ContactState,
    _rebuild,
    _refresh_gates,
    _scan_expiry,
    event_key,
)
from stream_scorer.scoring.tally import _add
from stream_scorer.scoring.tiers import _check_tiers
from stream_scorer.times import EPOCH


@dataclass(slots=True, eq=False)
class Effects:
    """What applying one event (or advancing the clock) did. Treat as read-only."""

    duplicate: bool = False
    awards: Sequence[Award] = ()
    refused: Sequence[Refusal] = ()
    expired: Sequence[Award] = ()
    withdrawn: Sequence[Award] = ()
    crossings: Sequence[Crossing] = ()

    def _key(self) -> tuple[Any, ...]:
        return (
            self.duplicate,
            tuple(self.awards),
            tuple(self.refused),
            tuple(self.expired),
            tuple(self.withdrawn),
            tuple(self.crossings),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Effects) and self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]


DUPLICATE = Effects(duplicate=True)


class _Record:
    """Where :func:`_apply` lists what it did, for callers that want more than crossings."""

    __slots__ = ("awards", "expired", "refused", "withdrawn")

    def __init__(self) -> None:
        self.awards: list[Award] = []
        self.refused: list[Refusal] = []
        self.expired: list[Award] = []
        self.withdrawn: list[Award] = []


def apply_in_place(state: ContactState, event: Event, model: ScoringModel) -> Effects:
    """:func:`apply` without the copy; the caller owns ``state``."""
    record = _Record()
    crossings: list[Crossing] = []
    if not _apply(state, event, model, crossings, record):
        return DUPLICATE
    return Effects(
        False,
        record.awards or _NONE,
        record.refused or _NONE,
        record.expired or _NONE,
        record.withdrawn or _NONE,
        crossings or _NONE,
    )


def _apply(
    state: ContactState,
    event: Event,
    model: ScoringModel,
    crossings: list[Crossing],
    record: _Record | None,
) -> bool:
    """Apply ``event``, appending its crossings; False for a duplicate.

    The hot path of replays and the live store, which only need crossings:
    awards, refusals and expiries are listed only into ``record``.
    """
    # Event is a pydantic model: each attribute read goes through its __getattr__
    # hook (a seventh of a replay's time); its fields are plain items of __dict__.
    fields = event.__dict__
    eid: str = fields["event_id"]
    seen = state.seen
    known = len(seen)
    # times.epoch_ms, inlined in this hot path, without timedelta // timedelta (a tenth of the time)
    occurred: datetime = fields["occurred_at"]
    since = occurred - EPOCH  # typed, so that the arithmetic below is on native ints
    t: int = since.days * 86_400_000 + since.seconds * 1000 + since.microseconds // 1000
    key = event_key(eid)
    seen.setdefault(key, t)
    if len(seen) == known:  # one lookup for "seen before?" and "remember it"
        return False
    ids = state.seen_ids
    if ids is not None:  # kept while the store writes formats an older release reads
        ids[key] = eid
    clock = state.clock
    now = t if clock is None or t > clock else clock
    state.clock = now
    swept = state.swept
    horizon = now if swept is None or swept < now else swept
    expiry = state.expiry
    if expiry is not None and expiry <= horizon:
        expired = record.expired if record is not None else []
        _expire(state, model, fields["contact_id"], horizon, expired, crossings)
    values = state.values
    if not values:
        _rebuild(state, model)
        values = state.values
    kind: str = fields["type"]
    if kind == CONTACT_UPDATED:
        before_update = values.copy()
        if _update_attributes(state, fields["properties"], t):
            if record is not None:
                _refit(state, model, eid, t, record.awards, record.withdrawn)
            else:
                _refit(state, model, eid, t, None, None)
            _refresh_gates(state, model)
            _check_tiers(
                state,
                model,
                fields["contact_id"],
                list(model.scores),
                before_update,
                eid,
                t,
                crossings,
            )
        return True
    rules = model.by_type.get(kind)
    if not rules:
        return True
    props: dict[str, Any] = fields["properties"]
    # Each score an award went to, with its value before the first: all _check_tiers reads.
    previous: dict[str, int] | None = None
    for rule in rules:
        match = rule.match
        if match is not None and not match(props):
            continue
        outcome = _award_rule(
            state, rule, eid, t, now, horizon, record.refused if record is not None else None
        )
        if outcome is None:
            continue
        name = rule.score
        if previous is None:
            previous = {name: values[name]}
        elif name not in previous:
            previous[name] = values[name]
        _add(state.tallies, values, rule.compiled_score, outcome.category, outcome.points, +1)
        if record is not None:
            record.awards.append(outcome)
    if previous is not None:
        changed = [n for n, before in previous.items() if values[n] != before]
        if changed:
            _check_tiers(state, model, fields["contact_id"], changed, previous, eid, t, crossings)
    return True


#: Effects that did not happen.
_NONE: tuple[()] = ()


def apply(state: ContactState, event: Event, model: ScoringModel) -> tuple[ContactState, Effects]:
    """Apply one event to one contact's state; the given state is left unchanged."""
    if event_key(event.event_id) in state.seen:
        return state, DUPLICATE
    new = state.copy()
    return new, apply_in_place(new, event, model)


def advance(
    state: ContactState, t: int, model: ScoringModel, contact_id: str
) -> tuple[ContactState, Effects]:
    """Expire awards due by ``t`` (ms), crossing tiers down: how an idle contact cools off.

    The contact's event clock does not move (an event older than ``t`` may still
    arrive and is judged by its own time), but an award that would already have
    expired by ``t`` is no longer made.
    """
    new = state.copy()
    return new, advance_in_place(new, t, model, contact_id)


def advance_in_place(state: ContactState, t: int, model: ScoringModel, contact_id: str) -> Effects:
    if state.swept is None or t > state.swept:
        state.swept = t
    if not state.values:
        _rebuild(state, model)
    expired: list[Award] = []
    crossings: list[Crossing] = []
    horizon = state.swept if state.clock is None or state.clock < state.swept else state.clock
    _expire(state, model, contact_id, horizon, expired, crossings)
    return Effects(expired=expired, crossings=crossings)


def _expire(
    state: ContactState,
    model: ScoringModel,
    contact_id: str,
    until: int,
    expired: list[Award],
    out: list[Crossing],
) -> None:
    """Drop awards expiring at or before ``until``, one instant at a time.

    Each instant's awards leave the tallies together, then the tiers are
    checked at that instant. The work is one pass over the awards and a sort
    of those expiring, not a pass per instant: a contact idle for months, or
    a sweep that fell behind, can have thousands of instants to catch up.
    """
    instant = state.next_expiry()
    if instant is None or instant > until:
        return
    awards = state.awards
    due = [a for a in awards if a.expires_at is not None and a.expires_at <= until]
    due.sort(key=_expiry_of)  # stable: an instant's awards in their live order
    values = state.values
    tallies = state.tallies
    scores = model.scores
    i = 0
    while i < len(due):
        instant = _expiry_of(due[i])
        previous = dict(values)
        touched: set[str] = set()
        while i < len(due) and _expiry_of(due[i]) == instant:
            award = due[i]
            _add(tallies, values, scores[award.score], award.category, award.points, -1)
            expired.append(award)
            touched.add(award.score)
            i += 1
        # state.awards still holds the instant's awards and earlier ones; the
        # crossings' reasons skip them (expired_by), and they leave below.
        _check_tiers(
            state,
            model,
            contact_id,
            sorted(touched),
            previous,
            f"expired@{instant}",
            instant,
            out,
            expired_by=instant,
        )
    keep = [a for a in awards if a.expires_at is None or a.expires_at > until]
    state.awards = keep
    state.expiry, state.last_expiry = _scan_expiry(keep)


def _expiry_of(award: Award) -> int:
    """An expiring award's expiry (only awards that expire are passed)."""
    expires = award.expires_at
    assert expires is not None
    return expires
