"""The pure reference engine: the specification of scoring.

``apply(state, event, model)`` returns the contact's next state and what
happened; ``advance(state, t, model, contact_id)`` moves a contact's clock
to ``t`` so that expired awards drop out. No I/O, and no clock but event
time. The live path, backtests and the API all score with this module.

The semantics, in the order they apply to one event at time ``t``:

1. An event id the contact has seen changes nothing.
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

import gc
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stream_scorer.events import CONTACT_UPDATED, Event
from stream_scorer.scoring.crossings import alert_id
from stream_scorer.scoring.model import CompiledRule, CompiledScore, ScoringModel
from stream_scorer.times import EPOCH


@dataclass(slots=True, init=False)
class Award:
    """Points one rule gave one contact; the unit of explanation.

    ``__init__`` is written out: compiled, the one ``dataclass`` generates runs
    as interpreted Python, and an award is made for most events.
    """

    rule: str
    score: str
    category: str | None
    points: int
    event_id: str
    at: int
    expires_at: int | None

    def __init__(
        self,
        rule: str,
        score: str,
        category: str | None,
        points: int,
        event_id: str,
        at: int,
        expires_at: int | None = None,
    ) -> None:
        self.rule = rule
        self.score = score
        self.category = category
        self.points = points
        self.event_id = event_id
        self.at = at
        self.expires_at = expires_at

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "score": self.score,
            "category": self.category,
            "points": self.points,
            "event_id": self.event_id,
            "at": self.at,
            "expires_at": self.expires_at,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Award:
        return cls(
            d["rule"],
            d["score"],
            d.get("category"),
            int(d["points"]),
            d["event_id"],
            int(d["at"]),
            None if d.get("expires_at") is None else int(d["expires_at"]),
        )


@dataclass(slots=True, init=False)
class _Category:
    """One category of one score: its live awards' points and how many there are.

    Native ints on a compiled object: updated without dict writes or boxing.
    """

    raw: int
    live: int
    low: int | None
    high: int | None

    def __init__(self, low: int | None, high: int | None, raw: int = 0, live: int = 0) -> None:
        self.raw = raw
        self.live = live
        self.low = low
        self.high = high

    def held(self) -> int:
        """The points as the score counts them: within the category's ``min``/``max``."""
        raw = self.raw
        high = self.high
        if high is not None and raw > high:
            raw = high
        low = self.low
        if low is not None and raw < low:
            raw = low
        return raw


@dataclass(slots=True, init=False)
class _Tally:
    """One score of one contact: its categories and the sum of what they count.

    ``counted`` is kept up to date by the change of one category, so a score's
    value is not recomputed over all its categories for each award.
    """

    counted: int
    categories: dict[str, _Category]

    def __init__(self, counted: int = 0, categories: dict[str, _Category] | None = None) -> None:
        self.counted = counted
        self.categories = {} if categories is None else categories

    def copy(self) -> _Tally:
        return _Tally(
            self.counted,
            {k: _Category(c.low, c.high, c.raw, c.live) for k, c in self.categories.items()},
        )


@dataclass(slots=True, init=False)
class ContactState:
    """One contact's scoring state: plain data that round-trips through JSON.

    ``tallies``, ``values``, ``gates_ok`` and ``expiry`` are derived (from the
    awards and attributes) and rebuilt by :meth:`from_json`; everything else
    is the record of what happened.
    """

    clock: int | None
    swept: int | None
    attributes: dict[str, Any]
    attribute_times: dict[str, int]
    awards: list[Award]
    fit: dict[str, Award]
    history: dict[str, list[list[int]]]
    totals: dict[str, list[int]]
    once: set[str]
    pending: dict[str, list[int]]
    tiers: dict[str, list[str]]
    seen: dict[str, int]
    tallies: dict[str, _Tally]
    values: dict[str, int]
    gates_ok: dict[str, bool]
    expiry: int | None

    def __init__(
        self,
        clock: int | None = None,
        swept: int | None = None,
        attributes: dict[str, Any] | None = None,
        attribute_times: dict[str, int] | None = None,
        awards: list[Award] | None = None,
        fit: dict[str, Award] | None = None,
        history: dict[str, list[list[int]]] | None = None,
        totals: dict[str, list[int]] | None = None,
        once: set[str] | None = None,
        pending: dict[str, list[int]] | None = None,
        tiers: dict[str, list[str]] | None = None,
        seen: dict[str, int] | None = None,
        tallies: dict[str, _Tally] | None = None,
        values: dict[str, int] | None = None,
        gates_ok: dict[str, bool] | None = None,
        expiry: int | None = None,
    ) -> None:
        # Written out: compiled, the generated one ran as interpreted Python.
        self.clock = clock
        self.swept = swept
        self.attributes = {} if attributes is None else attributes
        self.attribute_times = {} if attribute_times is None else attribute_times
        self.awards = [] if awards is None else awards
        self.fit = {} if fit is None else fit
        self.history = {} if history is None else history
        self.totals = {} if totals is None else totals
        self.once = set() if once is None else once
        self.pending = {} if pending is None else pending
        self.tiers = {} if tiers is None else tiers
        self.seen = {} if seen is None else seen
        self.tallies = {} if tallies is None else tallies
        self.values = {} if values is None else values
        self.gates_ok = {} if gates_ok is None else gates_ok
        self.expiry = expiry

    def to_json(self) -> dict[str, Any]:
        return {
            "clock": self.clock,
            "swept": self.swept,
            "attributes": self.attributes,
            "attribute_times": self.attribute_times,
            "awards": [a.to_json() for a in self.awards],
            "fit": [a.to_json() for a in self.fit.values()],
            "history": self.history,
            "totals": self.totals,
            "once": sorted(self.once),
            "pending": self.pending,
            "tiers": self.tiers,
            "seen": self.seen,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any], model: ScoringModel) -> ContactState:
        state = cls(
            clock=d.get("clock"),
            swept=d.get("swept"),
            attributes=dict(d.get("attributes", {})),
            attribute_times={k: int(v) for k, v in d.get("attribute_times", {}).items()},
            awards=[Award.from_json(a) for a in d.get("awards", [])],
            fit={a["rule"]: Award.from_json(a) for a in d.get("fit", [])},
            history={k: [list(x) for x in v] for k, v in d.get("history", {}).items()},
            totals={k: list(v) for k, v in d.get("totals", {}).items()},
            once=set(d.get("once", [])),
            pending={k: list(v) for k, v in d.get("pending", {}).items()},
            tiers={k: list(v) for k, v in d.get("tiers", {}).items()},
            seen=dict(d.get("seen", {})),
        )
        _rebuild(state, model)
        return state

    def copy(self) -> ContactState:
        return ContactState(
            clock=self.clock,
            swept=self.swept,
            attributes=dict(self.attributes),
            attribute_times=dict(self.attribute_times),
            awards=list(self.awards),
            fit=dict(self.fit),
            history={k: [list(x) for x in v] for k, v in self.history.items()},
            totals={k: list(v) for k, v in self.totals.items()},
            once=set(self.once),
            pending={k: list(v) for k, v in self.pending.items()},
            tiers={k: list(v) for k, v in self.tiers.items()},
            seen=dict(self.seen),
            tallies={k: v.copy() for k, v in self.tallies.items()},
            values=dict(self.values),
            gates_ok=dict(self.gates_ok),
            expiry=self.expiry,
        )

    @property
    def sums(self) -> dict[str, dict[str, int]]:
        """Each score's raw points per category (``""``: uncategorised), of live awards."""
        return {
            name: {key: c.raw for key, c in tally.categories.items()}
            for name, tally in self.tallies.items()
        }

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        """Each score's number of live awards per category."""
        return {
            name: {key: c.live for key, c in tally.categories.items()}
            for name, tally in self.tallies.items()
        }

    def live_awards(self) -> list[Award]:
        return [*self.fit.values(), *self.awards]

    def next_expiry(self) -> int | None:
        """When the next award expires (ms), if any does."""
        return self.expiry


def _scan_expiry(awards: list[Award]) -> int | None:
    times = [a.expires_at for a in awards if a.expires_at is not None]
    return min(times) if times else None


@dataclass(slots=True)
class Refusal:
    rule: str
    reason: str
    event_id: str
    detail: str = ""


@dataclass(frozen=True, slots=True, init=False)
class Crossing:
    """A tier crossed up or down; ``cause`` is an event id or ``expired@<ms>``."""

    contact_id: str
    score: str
    tier: str
    direction: str
    value: int
    previous: int
    threshold: int
    cause: str
    at: int
    display: int
    reasons: tuple[Award, ...]

    def __init__(
        self,
        contact_id: str,
        score: str,
        tier: str,
        direction: str,
        value: int,
        previous: int,
        threshold: int,
        cause: str,
        at: int,
        display: int,
        reasons: tuple[Award, ...] = (),
    ) -> None:
        # Written out: compiled, the generated one ran as interpreted Python.
        put = object.__setattr__  # frozen: the class's own __setattr__ refuses
        put(self, "contact_id", contact_id)
        put(self, "score", score)
        put(self, "tier", tier)
        put(self, "direction", direction)
        put(self, "value", value)
        put(self, "previous", previous)
        put(self, "threshold", threshold)
        put(self, "cause", cause)
        put(self, "at", at)
        put(self, "display", display)
        put(self, "reasons", reasons)

    @property
    def alert_id(self) -> str:
        return alert_id(self.contact_id, self.score, self.tier, self.direction, self.cause)

    @property
    def event_id(self) -> str | None:
        return None if self.cause.startswith("expired@") else self.cause


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


def _rebuild(state: ContactState, model: ScoringModel) -> None:
    state.tallies = {}
    state.values = {}
    scores = model.scores
    for award in state.live_awards():
        score = scores.get(award.score)
        if score is not None:
            _add(state, score, award, +1)
    tallies = state.tallies
    state.values = {
        name: score.clamp(tallies[name].counted if name in tallies else 0)
        for name, score in scores.items()
    }
    _refresh_gates(state, model)
    state.expiry = _scan_expiry(state.awards)


def _refresh_gates(state: ContactState, model: ScoringModel) -> None:
    state.gates_ok = {
        name: all(gate(state.attributes) for _, gate in score.gates)
        for name, score in model.scores.items()
        if score.gates
    }


def _add(state: ContactState, score: CompiledScore, award: Award, sign: int) -> None:
    """Count ``award`` in (``sign`` +1) or out (-1) of its score, and update the value.

    Only the award's category changes, so the value moves by the change of what
    that category counts; the same as :meth:`CompiledScore.value` over all of them.
    """
    name = score.name
    tallies = state.tallies
    tally = tallies.get(name)
    if tally is None:
        tally = tallies[name] = _Tally()
    cats = tally.categories
    key = award.category or ""
    cat = cats.get(key)
    if cat is None:
        if key:
            low, high = score.categories[key]
            cat = cats[key] = _Category(low, high)
        else:
            cat = cats[key] = _Category(None, None)
        before = 0
    else:
        before = cat.held()
    live = cat.live + sign
    cat.live = live
    if live:  # a category counts (its min included) while it has live awards
        cat.raw += sign * award.points
        after = cat.held()
    else:  # none left: as a rebuild from the awards would have it
        after = 0
        del cats[key]
        if not cats:
            del tallies[name]
    total = tally.counted + after - before
    tally.counted = total
    if total < score.min:
        total = score.min
    elif score.max is not None and total > score.max:
        total = score.max
    state.values[name] = total


def _check_tiers(
    state: ContactState,
    model: ScoringModel,
    contact_id: str,
    names: list[str],
    previous: dict[str, int],
    cause: str,
    at: int,
    out: list[Crossing],
) -> None:
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
                    _top_awards(state, name),
                )
            )
        if not active:
            del state.tiers[name]


def _top_awards(state: ContactState, score: str, n: int = 3) -> tuple[Award, ...]:
    """The largest live awards; ties by time, then rule, then live order.

    The first ``n`` of a stable sort by ``(-abs(points), at, rule)``, kept in one
    pass instead of sorting every live award at each crossing.
    """
    top: list[Award] = []
    for award in (*state.fit.values(), *state.awards):
        if award.score != score:
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


def _expire(
    state: ContactState,
    model: ScoringModel,
    contact_id: str,
    until: int,
    expired: list[Award],
    out: list[Crossing],
) -> None:
    """Drop awards expiring at or before ``until``, one instant at a time."""
    while True:
        instant = state.next_expiry()
        if instant is None or instant > until:
            return
        previous = dict(state.values)
        keep: list[Award] = []
        touched: set[str] = set()
        for award in state.awards:
            if award.expires_at is not None and award.expires_at <= instant:
                _add(state, model.scores[award.score], award, -1)
                expired.append(award)
                touched.add(award.score)
            else:
                keep.append(award)
        state.awards = keep
        state.expiry = _scan_expiry(keep)
        _check_tiers(
            state, model, contact_id, sorted(touched), previous, f"expired@{instant}", instant, out
        )


_NO_HISTORY: list[list[int]] = []


def _after(history: list[list[int]], t: int, lo: int = 0) -> int:
    """The index of ``history``'s first ``[at, points]`` entry with ``at > t``.

    ``bisect_right`` with ``key=`` written out: compiled, it runs on native
    ints with no key function calls.
    """
    hi = len(history)
    while lo < hi:
        mid = (lo + hi) >> 1
        if history[mid][0] > t:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _window_load(history: list[list[int]], t: int, per: int, points: bool) -> int:
    """The fullest rolling window ``(e - per, e]`` that would contain an award at ``t``.

    ``history`` is sorted by time, so in the usual in-order case this is one slice.
    """
    lo = _after(history, t - per)
    hi = _after(history, t, lo)
    if points:
        load = 0
        for i in range(lo, hi):  # a loop, not sum() of a slice: compiled, no objects made
            load += history[i][1]
    else:
        load = hi - lo
    if hi == len(history) or history[hi][0] >= t + per:
        return load  # nothing after t within a window: the window ending at t is the fullest
    near = history[lo : _after(history, t + per - 1, hi)]
    ends = [t, *(at for at, _ in near if at > t)]
    return max(sum((p if points else 1) for at, p in near if e - per < at <= e) for e in ends)


def _frequency_window(
    matches: list[int], t: int, within: int, count: int
) -> tuple[int, int] | None:
    """The earliest window ``[s, s + within)`` holding ``t`` and ``count`` matches, if any.

    ``matches`` is sorted by time.
    """
    first = bisect_right(matches, t - within)
    last = bisect_right(matches, t, lo=first)
    for i in range(first, last):
        start = matches[i]
        if bisect_left(matches, start + within, lo=i) - i >= count:
            return start, start + within
    return None


def _refuse(
    refused: list[Refusal] | None, rid: str, reason: str, eid: str, detail: str = ""
) -> None:
    if refused is not None:
        refused.append(Refusal(rid, reason, eid, detail))


def _award_rule(
    state: ContactState,
    rule: CompiledRule,
    eid: str,
    t: int,
    now: int,
    horizon: int,
    refused: list[Refusal] | None,
) -> Award | None:
    """The award ``rule`` makes for an event at ``t``, or None (listed in ``refused``).

    Refusals are only built for a caller that lists them: replays do not.
    """
    rid = rule.id
    if rule.once and rid in state.once:
        _refuse(refused, rid, "once", eid)
        return None
    if rule.expires is not None and t + rule.expires <= horizon:
        _refuse(refused, rid, "expired", eid, "the award would already have expired")
        return None
    window = rule.window
    if window is not None and t <= now - window:
        _refuse(refused, rid, "late", eid, "older than the rule's window behind the clock")
        return None
    history = state.history.get(rid, _NO_HISTORY)
    burst = rule.burst
    within = rule.freq_within
    if burst is not None:
        i = _after(history, t - burst)
        if i < len(history) and history[i][0] < t + burst:
            _refuse(refused, rid, "burst", eid)
            return None
        for at in state.pending.get(rid, ()):
            if -burst < t - at < burst:
                _refuse(refused, rid, "burst", eid)
                return None
    if within is not None and rule.freq_count is not None:
        pending = state.pending.setdefault(rid, [])
        if not pending or pending[-1] <= t:
            pending.append(t)
        else:
            insort(pending, t)
        if len(pending) > 16:
            del pending[: bisect_right(pending, now - 2 * within)]
        inside = _frequency_window(pending, t, within, rule.freq_count)
        if inside is None:
            if refused is not None:
                near = sum(1 for at in pending if abs(at - t) < within)
                _refuse(refused, rid, "frequency", eid, f"{near} of {rule.freq_count}")
            return None
        rest = (
            pending[: bisect_left(pending, inside[0])] + pending[bisect_left(pending, inside[1]) :]
        )
        if rest:
            state.pending[rid] = rest
        else:
            del state.pending[rid]
    points = rule.points
    if rule.cap_points is not None or rule.cap_occurrences is not None:
        use_points = rule.cap_points is not None
        limit = rule.cap_points if use_points else rule.cap_occurrences
        assert limit is not None
        if rule.cap_per is None:
            total = state.totals.get(rid, [0, 0])
            load = total[0] if use_points else total[1]
        else:
            load = _window_load(history, t, rule.cap_per, use_points)
        room = limit - load
        if room <= 0:
            _refuse(refused, rid, "cap", eid)
            return None
        if use_points and room < points:
            points = room
    expires_at = None if rule.expires is None else t + rule.expires
    award = Award(rid, rule.score, rule.category, points, eid, t, expires_at)
    state.awards.append(award)
    if expires_at is not None and (state.expiry is None or expires_at < state.expiry):
        state.expiry = expires_at
    if rule.once:
        state.once.add(rid)
    if rule.keeps_history:
        log = history if history is not _NO_HISTORY else state.history.setdefault(rid, [])
        if not log or log[-1][0] <= t:
            log.append([t, points])
        else:
            log.insert(_after(log, t), [t, points])
        if window is not None and len(log) > 16:
            # Entries no window can reach any more (late events are refused: see ``late``).
            del log[: _after(log, now - 2 * window)]
    if rule.cap_per is None and (rule.cap_points is not None or rule.cap_occurrences is not None):
        total = state.totals.setdefault(rid, [0, 0])
        total[0] += points
        total[1] += 1
    return award


def _update_attributes(state: ContactState, properties: dict[str, Any], t: int) -> bool:
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
    # events.epoch_ms, inlined and without timedelta // timedelta (a tenth of the time)
    occurred: datetime = fields["occurred_at"]
    since = occurred - EPOCH  # typed, so that the arithmetic below is on native ints
    t: int = since.days * 86_400_000 + since.seconds * 1000 + since.microseconds // 1000
    seen.setdefault(eid, t)
    if len(seen) == known:  # one lookup for "seen before?" and "remember it"
        return False
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
            scores = model.scores
            fit = state.fit
            for rule in model.attribute_rules:
                assert rule.when is not None
                holds = rule.when(state.attributes)
                current = fit.get(rule.id)
                if holds and current is None:
                    award = Award(rule.id, rule.score, rule.category, rule.points, eid, t)
                    fit[rule.id] = award
                    _add(state, scores[rule.score], award, +1)
                    if record is not None:
                        record.awards.append(award)
                elif not holds and current is not None:
                    del fit[rule.id]
                    _add(state, scores[rule.score], current, -1)
                    if record is not None:
                        record.withdrawn.append(current)
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
        _add(state, rule.compiled_score, outcome, +1)
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
    if event.event_id in state.seen:
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


def replay(
    events: Iterable[Event], model: ScoringModel, until: int | None = None
) -> tuple[dict[str, ContactState], list[Crossing]]:
    """Apply events in the order given (then advance every contact to ``until``).

    The cyclic garbage collector is paused meanwhile: scoring builds no
    reference cycles, but a replay keeps millions of objects alive and
    collections that walk them all took a fifth of its time.
    """
    states: dict[str, ContactState] = {}
    crossings: list[Crossing] = []
    collecting = gc.isenabled()
    gc.disable()
    try:
        for event in events:
            state = states.get(event.contact_id)
            if state is None:
                state = states[event.contact_id] = ContactState()
                _rebuild(state, model)
            _apply(state, event, model, crossings, None)
        if until is not None:
            for cid, state in states.items():
                crossings.extend(advance_in_place(state, until, model, cid).crossings)
    finally:
        if collecting:
            gc.enable()
    return states, crossings


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

    def to_json(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "value": self.value,
            "display": self.display,
            "tiers": self.tiers,
            "gates": self.gates,
            "categories": self.categories,
            "awards": [a.to_json() for a in self.awards],
        }


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
            counted = raw if high is None or raw <= high else high
            counted = counted if low is None or counted >= low else low
            cats[category or "(none)"] = {"raw": raw, "counted": counted, "max": high}
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
