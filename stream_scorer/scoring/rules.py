"""Event rules: whether a rule awards for one event, and how many points.

A rule for the event's type whose ``where`` matches is checked in this order
and either awards or is refused with a reason (see :mod:`.engine` for the
semantics): ``once``, ``expired``, ``late``, ``burst``, ``frequency``, ``cap``.
The checks read and update the rule's own record in the contact's state: its
award history (for caps and the burst guard), its running totals (caps
without a window) and the times of matching events waiting to make up a
``frequency``.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass

from stream_scorer.scoring.model import CompiledRule
from stream_scorer.scoring.state import Award, ContactState


@dataclass(slots=True)
class Refusal:
    """A rule that matched an event and did not award, with the reason (and detail)."""

    rule: str
    reason: str
    event_id: str
    detail: str = ""


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
    if expires_at is not None:
        if state.expiry is None or expires_at < state.expiry:
            state.expiry = expires_at
        if state.last_expiry is None or expires_at > state.last_expiry:
            state.last_expiry = expires_at
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
