"""Unit tests for stream_scorer.scoring.engine, with every expected number worked out by hand.

Each test builds a small model, feeds events with times relative to ``T0`` and
checks values, awards, refusals and crossings against numbers computed in the
comments, never by asking the engine.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stream_scorer.events import Event
from stream_scorer.scoring import (
    Award,
    ContactState,
    Crossing,
    Effects,
    Refusal,
    advance,
    alert_id,
    apply,
    apply_in_place,
    award_record,
    event_key,
    explain,
    replay,
)
from stream_scorer.scoring.model import ScoringModel, parse_model

from ..support.scenario import event_at, feed

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T0_MS = 1_767_225_600_000  # 20454 days * 86_400_000 ms
SEC = 1_000
MIN = 60 * SEC
HOUR = 60 * MIN
DAY = 24 * HOUR


def model_of(body: str) -> ScoringModel:
    return parse_model("version: 1\nname: engine-test\n" + body, "engine-test.yaml")


def ev(eid: str, type_: str, at: int = 0, contact: str = "c1", **props: Any) -> Event:
    """An event ``at`` milliseconds after T0."""
    return event_at(T0, eid, type_, at, contact, **props)


def upd(eid: str, at: int = 0, contact: str = "c1", **attrs: Any) -> Event:
    return ev(eid, "contact_updated", at, contact, **attrs)


def moves(effects: Effects) -> list[tuple[str, str, int, int]]:
    return [(c.tier, c.direction, c.value, c.previous) for c in effects.crossings]


def refusals(effects: Effects) -> list[tuple[str, str]]:
    return [(r.rule, r.reason) for r in effects.refused]


# --- the value: live awards, category clamps, range clamp --------------------------------------

CLAMPS = model_of("""
scores:
  s:
    max: 100
    categories:
      b: {max: 50}
      f: {min: 0, max: 30}
rules:
  - {id: b20, score: s, category: b, on: {type: b20}, points: 20}
  - {id: f25, score: s, category: f, on: {type: f25}, points: 25}
  - {id: fneg, score: s, category: f, on: {type: fneg}, points: -40}
  - {id: plain, score: s, on: {type: plain}, points: 7}
""")


def test_value_is_sum_of_live_awards_with_category_then_range_clamps() -> None:
    m = CLAMPS
    state, _ = feed(m, [ev("1", "b20"), ev("2", "b20"), ev("3", "b20")])
    assert state.sums == {"s": {"b": 60}}
    assert state.values == {"s": 50}  # b: min(60, 50)
    state, _ = feed(m, [ev("4", "f25"), ev("5", "plain")], state)
    assert state.values == {"s": 82}  # 50 + 25 + 7
    state, _ = feed(m, [ev("6", "fneg")], state)
    assert state.sums == {"s": {"b": 60, "f": -15, "": 7}}
    assert state.values == {"s": 57}  # 50 + max(-15, 0) + 7
    state, _ = feed(m, [ev(f"p{i}", "plain") for i in range(6)], state)
    assert state.values == {"s": 99}  # 50 + 0 + 49
    state, _ = feed(m, [ev("p6", "plain")], state)
    assert state.sums["s"][""] == 56
    assert state.values == {"s": 100}  # 50 + 0 + 56 = 106, held at max 100


NEGATIVE = model_of("""
scores:
  s: {min: 0, max: 100, thresholds: [{name: t, at: 10}]}
rules:
  - {id: five, score: s, on: {type: five}, points: 5}
  - {id: ten, score: s, on: {type: ten}, points: 10}
  - {id: unsub, score: s, on: {type: unsubscribe}, points: -20, expires: 30d}
""")


def test_negative_points_are_remembered_below_the_range() -> None:
    state, effects = feed(
        NEGATIVE,
        [
            ev("1", "five"),
            ev("2", "unsubscribe", HOUR),
            ev("3", "ten", 2 * HOUR),
            ev("4", "ten", 3 * HOUR),
        ],
    )
    # 5; 5-20=-15 -> 0; -5 -> 0; 5
    assert state.values["s"] == 5
    assert [a.points for e in effects for a in e.awards] == [5, -20, 10, 10]
    assert not any(e.crossings for e in effects)
    # the unsubscribe drops out at 1h + 30d: 5 + 10 + 10 = 25, crossing t (at 10) up
    later, eff = advance(state, T0_MS + HOUR + 30 * DAY, NEGATIVE, "c1")
    assert later.values["s"] == 25
    assert [a.rule for a in eff.expired] == ["unsub"]
    assert moves(eff) == [("t", "up", 25, 5)]
    assert eff.crossings[0].cause == f"expired@{T0_MS + HOUR + 30 * DAY}"


# --- once -------------------------------------------------------------------------------

ONCE = model_of("""
scores:
  s: {}
rules:
  - {id: trial, score: s, on: {type: trial_signup}, points: 25, once: true, expires: 1d}
  - {id: visit, score: s, on: {type: visit}, points: 1}
""")


def test_once_awards_at_most_once_ever() -> None:
    state, (e1, e2) = feed(ONCE, [ev("t1", "trial_signup"), ev("t2", "trial_signup", HOUR)])
    assert [(a.rule, a.points, a.event_id) for a in e1.awards] == [("trial", 25, "t1")]
    assert not e2.awards
    assert list(e2.refused) == [Refusal("trial", "once", "t2")]
    assert state.values["s"] == 25
    assert state.once == {"trial"}
    # after the award expires, the rule still does not award again
    state, (e3, e4) = feed(
        ONCE, [ev("v", "visit", 2 * DAY), ev("t3", "trial_signup", 3 * DAY)], state
    )
    assert [a.rule for a in e3.expired] == ["trial"]
    assert refusals(e4) == [("trial", "once")]
    assert state.values["s"] == 1


# --- expiry ------------------------------------------------------------------------------

EXPIRY = model_of("""
scores:
  s:
    thresholds: [{name: hot, at: 10}]
rules:
  - {id: r, score: s, on: {type: x}, points: 10, expires: 1d}
  - {id: other, score: s, on: {type: y}, points: 1}
""")


def test_award_expires_at_event_time_plus_expires() -> None:
    state, (e1,) = feed(EXPIRY, [ev("a", "x", 5 * SEC)])
    (award,) = e1.awards
    assert award == Award("r", "s", None, 10, "a", T0_MS + 5 * SEC, T0_MS + 5 * SEC + DAY)
    assert moves(e1) == [("hot", "up", 10, 0)]
    # one millisecond before the expiry the award is live: 10 + 1
    state, (e2,) = feed(EXPIRY, [ev("b", "y", 5 * SEC + DAY - 1)], state)
    assert not e2.expired
    assert state.values["s"] == 11
    # an event at exactly the expiry sees it gone first: 0 + 1
    state, (e3,) = feed(EXPIRY, [ev("c", "y", 5 * SEC + DAY)], state)
    assert list(e3.expired) == [award]
    assert state.values["s"] == 2  # the two 'other' awards
    assert moves(e3) == [("hot", "down", 1, 11)]
    assert e3.crossings[0].cause == f"expired@{T0_MS + 5 * SEC + DAY}"
    assert state.awards[0].rule == "other"


def test_advance_crosses_down_with_an_expiry_cause_and_stable_alert_id() -> None:
    state, _ = feed(EXPIRY, [ev("a", "x")])
    expiry = T0_MS + DAY
    at_once, eff1 = advance(state, expiry, EXPIRY, "c1")
    much_later, eff2 = advance(state, expiry + 40 * DAY, EXPIRY, "c1")
    for eff in (eff1, eff2):
        (down,) = eff.crossings
        assert (down.contact_id, down.score, down.tier, down.direction) == (
            "c1",
            "s",
            "hot",
            "down",
        )
        assert (down.value, down.previous, down.threshold) == (0, 10, 10)
        assert down.cause == f"expired@{expiry}"
        assert down.at == expiry
        assert down.event_id is None
    # however late the worker checks, the same crossing: the same alert and id
    assert eff1.crossings == eff2.crossings
    assert alert_id(eff1.crossings[0], EXPIRY) == alert_id(eff2.crossings[0], EXPIRY)
    assert at_once.swept == expiry  # advance() expires; the event clock stays
    assert much_later.swept == expiry + 40 * DAY
    assert at_once.values["s"] == much_later.values["s"] == 0
    # advance leaves its input alone
    assert state.values["s"] == 10
    assert state.clock == T0_MS


def test_advance_before_expiry_and_backwards_change_nothing() -> None:
    state, _ = feed(EXPIRY, [ev("a", "x", DAY)])
    early, eff = advance(state, T0_MS + DAY + HOUR, EXPIRY, "c1")
    assert eff == Effects()
    assert early.values["s"] == 10
    back, eff = advance(state, T0_MS, EXPIRY, "c1")
    assert eff == Effects()
    assert back.clock == T0_MS + DAY  # the clock never goes back


INSTANTS = model_of("""
scores:
  s:
    thresholds:
      - {name: warm, at: 10}
      - {name: hot, at: 20}
rules:
  - {id: r, score: s, on: {type: x}, points: 10, expires: 1d}
""")


def test_expiry_instants_cross_one_at_a_time() -> None:
    state, (e1, e2) = feed(INSTANTS, [ev("a", "x"), ev("b", "x", 12 * HOUR)])
    assert moves(e1) == [("warm", "up", 10, 0)]
    assert moves(e2) == [("hot", "up", 20, 10)]
    _, eff = advance(state, T0_MS + 10 * DAY, INSTANTS, "c1")
    assert [a.event_id for a in eff.expired] == ["a", "b"]
    assert [(c.tier, c.direction, c.value, c.previous, c.cause) for c in eff.crossings] == [
        ("hot", "down", 10, 20, f"expired@{T0_MS + DAY}"),
        ("warm", "down", 0, 10, f"expired@{T0_MS + 36 * HOUR}"),
    ]


def test_expired_on_arrival_is_refused() -> None:
    state, _ = feed(EXPIRY, [ev("now", "y", 10 * DAY)])
    # 8d + 1d = 9d <= clock 10d: would already have expired
    state, (old,) = feed(EXPIRY, [ev("old", "x", 8 * DAY)], state)
    assert not old.awards
    assert list(old.refused) == [
        Refusal("r", "expired", "old", "the award would already have expired")
    ]
    # exactly at the edge: 9d + 1d = 10d <= 10d
    state, (edge,) = feed(EXPIRY, [ev("edge", "x", 9 * DAY)], state)
    assert refusals(edge) == [("r", "expired")]
    # 9d + 1ms: expires at 10d + 1ms, after the clock: awarded, and the clock stays at 10d
    state, (ok,) = feed(EXPIRY, [ev("ok", "x", 9 * DAY + 1)], state)
    assert [(a.points, a.expires_at) for a in ok.awards] == [(10, T0_MS + 10 * DAY + 1)]
    assert state.clock == T0_MS + 10 * DAY
    assert state.values["s"] == 11


# --- late ----------------------------------------------------------------------------------

LATE = model_of("""
scores:
  s: {}
rules:
  - {id: capped, score: s, on: {type: x}, points: 1, cap: {occurrences: 5, per: 7d}, burst: 1m}
  - {id: free, score: s, on: {type: x}, points: 2}
""")


def test_late_refusal_is_by_the_rules_window() -> None:
    state, _ = feed(LATE, [ev("now", "x", 10 * DAY)])
    assert state.values["s"] == 3
    # 3d <= 10d - 7d: too old for the 7d window; 'free' has no window and awards
    state, (late,) = feed(LATE, [ev("late", "x", 3 * DAY)], state)
    assert refusals(late) == [("capped", "late")]
    assert "window" in late.refused[0].detail
    assert [a.rule for a in late.awards] == ["free"]
    # one millisecond younger is inside the window
    state, (inside,) = feed(LATE, [ev("inside", "x", 3 * DAY + 1)], state)
    assert [a.rule for a in inside.awards] == ["capped", "free"]
    assert state.values["s"] == 3 + 2 + 3


# --- burst -----------------------------------------------------------------------------------

BURST = model_of("""
scores:
  s: {}
rules:
  - {id: click, score: s, on: {type: click}, points: 3, burst: 10s}
""")


def test_burst_counts_once_within_the_span_of_a_counted_event() -> None:
    state, effects = feed(
        BURST,
        [
            ev("a", "click", 0),  # counted
            ev("b", "click", 5 * SEC),  # 5s after a: burst
            ev("c", "click", 10 * SEC),  # 10s after a: counted (refused b does not count)
            ev("d", "click", 20 * SEC - 1),  # 9.999s after c: burst
            ev("e", "click", 12 * SEC),  # out of order, 2s after c: burst
            ev("f", "click", 20 * SEC),  # 10s after c: counted
        ],
    )
    assert [bool(e.awards) for e in effects] == [True, False, True, False, False, True]
    assert [refusals(e) for e in effects] == [
        [],
        [("click", "burst")],
        [],
        [("click", "burst")],
        [("click", "burst")],
        [],
    ]
    assert state.values["s"] == 9


# --- frequency -------------------------------------------------------------------------------

FREQ = model_of("""
scores:
  s: {}
rules:
  - {id: sessions, score: s, on: {type: session}, points: 8, frequency: {count: 3, within: 7d}}
""")


def test_frequency_awards_on_the_third_and_spends_the_matches() -> None:
    days = [0, 1, 2, 3, 4, 5]
    state, effects = feed(FREQ, [ev(f"d{d}", "session", d * DAY) for d in days])
    assert [[(a.event_id, a.points) for a in e.awards] for e in effects] == [
        [],
        [],
        [("d2", 8)],
        [],
        [],
        [("d5", 8)],
    ]
    assert [[(r.reason, r.detail) for r in e.refused] for e in effects] == [
        [("frequency", "1 of 3")],
        [("frequency", "2 of 3")],
        [],
        [("frequency", "1 of 3")],
        [("frequency", "2 of 3")],
        [],
    ]
    assert state.values["s"] == 16
    assert "sessions" not in state.pending


def test_frequency_counts_only_matches_within_the_window() -> None:
    events = [
        ev("a", "session", 20 * DAY),
        ev("b", "session", 26 * DAY),
        ev("c", "session", 27 * DAY + 12 * HOUR),  # a is 7.5d back: outside (20.5d, 27.5d]
        ev("d", "session", 27 * DAY + 13 * HOUR),  # b, c, d inside
    ]
    state, effects = feed(FREQ, events)
    assert [r.detail for r in effects[2].refused] == ["2 of 3"]
    assert [a.event_id for a in effects[3].awards] == ["d"]
    assert state.values["s"] == 8


# --- caps ---------------------------------------------------------------------------------

CAPS = model_of("""
scores:
  s: {}
rules:
  - {id: pts, score: s, on: {type: pts}, points: 4, cap: {points: 10, per: 30d}}
  - {id: occ, score: s, on: {type: occ}, points: 1, cap: {occurrences: 3, per: 7d}}
  - {id: life, score: s, on: {type: life}, points: 12, cap: {points: 30}}
""")


def test_points_cap_cuts_the_award_to_what_is_left() -> None:
    state, effects = feed(CAPS, [ev(f"p{d}", "pts", d * DAY) for d in (0, 1, 2, 3)])
    assert [[a.points for a in e.awards] for e in effects] == [[4], [4], [2], []]
    assert refusals(effects[3]) == [("pts", "cap")]
    assert state.values["s"] == 10
    # at 30d the window (0d, 30d] holds 4 + 2 = 6: room for 4
    state, (e,) = feed(CAPS, [ev("p30", "pts", 30 * DAY)], state)
    assert [a.points for a in e.awards] == [4]
    assert state.values["s"] == 14


def test_occurrences_cap_per_rolling_window() -> None:
    events = [ev(f"o{d}", "occ", int(d * DAY)) for d in (0, 1, 2, 3, 7, 7.5, 8)]
    state, effects = feed(CAPS, events)
    # 0,1,2 award; 3: (-4,3] holds 3; 7: (0,7] holds 1,2; 7.5: (0.5,7.5] holds 1,2,7; 8: (1,8]
    # holds 2,7
    assert [bool(e.awards) for e in effects] == [True, True, True, False, True, False, True]
    assert refusals(effects[3]) == [("occ", "cap")]
    assert refusals(effects[5]) == [("occ", "cap")]
    assert state.values["s"] == 5


def test_lifetime_cap() -> None:
    events = [ev(f"l{i}", "life", i * DAY) for i in range(3)] + [ev("l9", "life", 1000 * DAY)]
    state, effects = feed(CAPS, events)
    assert [[a.points for a in e.awards] for e in effects] == [[12], [12], [6], []]
    assert refusals(effects[3]) == [("life", "cap")]
    assert state.totals["life"] == [30, 3]
    assert state.values["s"] == 30


def test_occurrences_cap_holds_in_every_window_out_of_order() -> None:
    state, _ = feed(CAPS, [ev("a", "occ", 0), ev("b", "occ", DAY), ev("c", "occ", 8 * DAY)])
    assert state.values["s"] == 3  # c: (1d, 8d] holds nothing else
    # late 4d: (-3d, 4d] holds a, b = 2; (1d, 8d] holds c = 1: room 1
    state, (e4,) = feed(CAPS, [ev("d4", "occ", 4 * DAY)], state)
    assert [a.event_id for a in e4.awards] == ["d4"]
    # late 5d: (-2d, 5d] holds a, b, d4 = 3: full
    state, (e5,) = feed(CAPS, [ev("d5", "occ", 5 * DAY)], state)
    assert refusals(e5) == [("occ", "cap")]
    # late 7.5d: (0.5d, 7.5d] holds b, d4 = 2 and (1d, 8d] holds d4, c = 2: room 1
    state, (e7,) = feed(CAPS, [ev("d7", "occ", 7 * DAY + 12 * HOUR)], state)
    assert [a.event_id for a in e7.awards] == ["d7"]
    assert state.values["s"] == 5


def test_points_cap_holds_in_every_window_out_of_order() -> None:
    state, _ = feed(CAPS, [ev("a", "pts", 10 * DAY), ev("b", "pts", 20 * DAY)])
    # late 5d: the window (-10d, 20d] holds 4 + 4 = 8 and would hold it: cut to 2
    state, (late,) = feed(CAPS, [ev("late", "pts", 5 * DAY)], state)
    assert [a.points for a in late.awards] == [2]
    # 21d: (-9d, 21d] holds 2 + 4 + 4 = 10: full
    state, (full,) = feed(CAPS, [ev("full", "pts", 21 * DAY)], state)
    assert refusals(full) == [("pts", "cap")]
    assert state.values["s"] == 10


# --- attribute rules ----------------------------------------------------------------------

FIT = model_of("""
scores:
  s:
    max: 100
    categories: {fit: {max: 20}}
rules:
  - {id: vp, score: s, category: fit, when: {job_title: {contains: VP}}, points: 15}
  - {id: phone, score: s, category: fit, when: {phone: {exists: true}}, points: 10}
  - {id: click, score: s, on: {type: click}, points: 1}
""")


def test_attribute_rules_appear_and_withdraw_and_never_accumulate() -> None:
    state, (e1, e2, e3, e4) = feed(
        FIT,
        [
            upd("u1", 0, job_title="VP Sales"),
            upd("u2", HOUR, job_title="VP Marketing"),
            upd("u3", 2 * HOUR, job_title="VP Marketing"),
            upd("u4", 3 * HOUR, job_title="Engineer"),
        ],
    )
    assert [(a.rule, a.points, a.event_id, a.expires_at) for a in e1.awards] == [
        ("vp", 15, "u1", None)
    ]
    assert e2 == Effects()  # still holds: no new award
    assert e3 == Effects()  # nothing changed
    assert [(a.rule, a.event_id) for a in e4.withdrawn] == [("vp", "u1")]
    assert state.values["s"] == 0
    assert state.fit == {}
    assert state.attributes == {"job_title": "Engineer"}


def test_attribute_values_between_updates() -> None:
    state, _ = feed(FIT, [upd("u1", 0, job_title="vp sales")])
    assert state.values["s"] == 15
    assert set(state.fit) == {"vp"}
    assert state.awards == []
    state, (e,) = feed(FIT, [upd("u2", HOUR, phone="555")], state)
    assert [a.rule for a in e.awards] == ["phone"]
    assert state.sums == {"s": {"fit": 25}}
    assert state.values["s"] == 20  # fit held at 20
    state, _ = feed(FIT, [ev("k", "click", 2 * HOUR)], state)
    assert state.values["s"] == 21


def test_null_removes_an_attribute() -> None:
    state, _ = feed(FIT, [upd("u1", 0, phone="555", job_title="Engineer")])
    assert state.values["s"] == 10
    state, (e,) = feed(FIT, [upd("u2", HOUR, phone=None)], state)
    assert "phone" not in state.attributes
    assert state.attributes == {"job_title": "Engineer"}
    assert [a.rule for a in e.withdrawn] == ["phone"]
    assert state.values["s"] == 0
    # removing what is not there changes nothing
    state, (again,) = feed(FIT, [upd("u3", 2 * HOUR, phone=None)], state)
    assert again == Effects()


def test_late_attribute_update_is_ignored_per_attribute() -> None:
    state, _ = feed(FIT, [upd("new", 10 * HOUR, job_title="VP Sales")])
    # an older update: its job_title loses, its phone (never set) is taken
    state, (e,) = feed(FIT, [upd("old", 5 * HOUR, job_title="Engineer", phone="555")], state)
    assert state.attributes == {"job_title": "VP Sales", "phone": "555"}
    assert [a.rule for a in e.awards] == ["phone"]
    assert not e.withdrawn
    # an even older null for phone is ignored too
    state, (e2,) = feed(FIT, [upd("older", 4 * HOUR, phone=None)], state)
    assert e2 == Effects()
    assert state.attributes["phone"] == "555"
    assert state.values["s"] == 20  # 15 + 10 held at fit max 20


# --- gates -----------------------------------------------------------------------------------

GATES = model_of("""
scores:
  s:
    thresholds: [{name: mql, at: 50}]
  other:
    thresholds: [{name: hot, at: 5}]
rules:
  - {id: big, score: s, on: {type: big}, points: 60}
  - {id: small, score: other, on: {type: small}, points: 5}
gates:
  - {id: adult, when: {age: {gte: 18}}, scores: [s]}
""")


def test_gate_blocks_up_crossing_then_passes_then_fails() -> None:
    state, (e1, e2) = feed(GATES, [ev("a", "big"), ev("b", "small", SEC)])
    assert state.values == {"s": 60, "other": 5}
    assert not e1.crossings  # age missing: the gate fails
    assert moves(e2) == [("hot", "up", 5, 0)]  # 'other' has no gate
    state, (e3,) = feed(GATES, [upd("u1", 2 * SEC, age=30)], state)
    assert moves(e3) == [("mql", "up", 60, 60)]
    assert e3.crossings[0].cause == "u1"
    state, (e4,) = feed(GATES, [upd("u2", 3 * SEC, age=16)], state)
    assert moves(e4) == [("mql", "down", 60, 60)]
    assert state.tiers == {"other": ["hot"]}
    state, (e5,) = feed(GATES, [upd("u3", 4 * SEC, age="20")], state)
    assert moves(e5) == [("mql", "up", 60, 60)]
    assert state.tiers == {"other": ["hot"], "s": ["mql"]}


def test_gate_failing_blocks_later_events_too() -> None:
    state, _ = feed(GATES, [upd("u1", 0, age=12)])
    state, (e,) = feed(GATES, [ev("a", "big", SEC)], state)
    assert not e.crossings
    assert "s" not in state.tiers


# --- thresholds -------------------------------------------------------------------------------

STEPS = model_of("""
scores:
  s:
    thresholds:
      - {name: mql, at: 50, rearm_below: 40}
      - {name: sql, at: 80, rearm_below: 70}
rules:
  - {id: p50, score: s, on: {type: p50}, points: 50}
  - {id: p85, score: s, on: {type: p85}, points: 85}
  - {id: m1, score: s, on: {type: m1}, points: -1}
  - {id: m10, score: s, on: {type: m10}, points: -10}
  - {id: m20, score: s, on: {type: m20}, points: -20}
  - {id: m50, score: s, on: {type: m50}, points: -50}
  - {id: p1, score: s, on: {type: p1}, points: 1}
""")


def test_rearm_margin() -> None:
    state, (e,) = feed(STEPS, [ev("a", "p50")])
    assert moves(e) == [("mql", "up", 50, 0)]
    state, (e,) = feed(STEPS, [ev("b", "m10", SEC)], state)  # 40: not below 40
    assert not e.crossings
    assert state.tiers == {"s": ["mql"]}
    state, (e,) = feed(STEPS, [ev("c", "m1", 2 * SEC)], state)  # 39
    assert moves(e) == [("mql", "down", 39, 40)]
    assert e.crossings[0].threshold == 50
    assert state.tiers == {}
    state, (e,) = feed(STEPS, [ev("d", "m1", 3 * SEC)], state)  # 38: no second down
    assert not e.crossings
    state, effects = feed(STEPS, [ev(f"u{i}", "p1", (4 + i) * SEC) for i in range(12)], state)
    assert [bool(x.crossings) for x in effects] == [False] * 11 + [True]  # up at 50 again
    assert moves(effects[-1]) == [("mql", "up", 50, 49)]


def test_several_tiers_in_one_event_in_listed_order() -> None:
    state, (up,) = feed(STEPS, [ev("big", "p85")])
    assert moves(up) == [("mql", "up", 85, 0), ("sql", "up", 85, 0)]
    assert [c.threshold for c in up.crossings] == [50, 80]
    assert all(c.cause == "big" and c.event_id == "big" for c in up.crossings)
    assert state.tiers == {"s": ["mql", "sql"]}
    state, (down,) = feed(STEPS, [ev("drop", "m50", SEC)], state)  # 35
    assert moves(down) == [("mql", "down", 35, 85), ("sql", "down", 35, 85)]
    assert state.tiers == {}


def test_only_the_tier_below_its_rearm_goes_down() -> None:
    state, _ = feed(STEPS, [ev("big", "p85")])
    state, (e,) = feed(STEPS, [ev("drop", "m20", SEC)], state)  # 65: < 70, >= 40
    assert moves(e) == [("sql", "down", 65, 85)]
    assert state.tiers == {"s": ["mql"]}


# --- display: class digit and grade ---------------------------------------------------------

DIGIT = model_of("""
scores:
  lead:
    max: 999
    thresholds: [{name: ready, at: 80}]
rules:
  - {id: r, score: lead, on: {type: x}, points: 89}
class_digit:
  attribute: company_size
  classes: [{below: 50, digit: 1}, {below: 1000, digit: 2}, {digit: 3}]
  missing: 5
""")


def test_class_digit_display() -> None:
    state, (_, e) = feed(DIGIT, [upd("u", 0, company_size=500), ev("a", "x", SEC)])
    assert state.values["lead"] == 89
    (up,) = e.crossings
    assert (up.value, up.display) == (89, 2089)
    assert explain(state, DIGIT)["lead"].display == 2089


def test_class_digit_missing() -> None:
    state, (e,) = feed(DIGIT, [ev("a", "x")])
    assert e.crossings[0].display == 5089
    state, _ = feed(DIGIT, [upd("u", SEC, company_size="lots")], state)
    assert explain(state, DIGIT)["lead"].display == 5089
    state, _ = feed(DIGIT, [upd("v", 2 * SEC, company_size=12)], state)
    assert explain(state, DIGIT)["lead"].display == 1089


GRADE = model_of("""
scores:
  fit: {max: 100}
  engagement: {max: 100}
rules:
  - {id: exec, score: fit, when: {title: {contains: chief}}, points: 80}
  - {id: webinar, score: engagement, on: {type: webinar}, points: 20}
grade:
  fit: {score: fit, bands: [{at: 75, label: A}, {at: 50, label: B}, {at: 25, label: C}, {label: D}]}
  engagement:
    score: engagement
    bands: [{at: 60, label: "1"}, {at: 30, label: "2"}, {label: "3"}]
""")


def test_grade_from_state_values() -> None:
    state = ContactState()
    assert GRADE.grade(state.values) == "D3"
    state, _ = feed(GRADE, [upd("u", 0, title="Chief Revenue Officer")], state)
    assert state.values == {"fit": 80, "engagement": 0}
    assert GRADE.grade(state.values) == "A3"
    state, _ = feed(GRADE, [ev("w1", "webinar", SEC), ev("w2", "webinar", 2 * SEC)], state)
    assert state.values == {"fit": 80, "engagement": 40}
    assert GRADE.grade(state.values) == "A2"
    state, _ = feed(GRADE, [ev("w3", "webinar", 3 * SEC)], state)
    assert GRADE.grade(state.values) == "A1"


# --- duplicates and purity ----------------------------------------------------------------------


def test_duplicate_event_changes_nothing() -> None:
    state, (first,) = feed(STEPS, [ev("dup", "p85")])
    assert first.duplicate is False
    before = json.dumps(state.to_json(), sort_keys=True)
    again, eff = apply(state, ev("dup", "p85"), STEPS)
    assert eff == Effects(duplicate=True)
    assert not (eff.awards)
    assert not (eff.crossings)
    assert not (eff.refused)
    assert not (eff.expired)
    assert not (eff.withdrawn)
    assert json.dumps(again.to_json(), sort_keys=True) == before
    assert again.values["s"] == 85
    # a duplicate is by id, not content: another type with the same id is ignored too
    _, other = apply(state, ev("dup", "m50", HOUR), STEPS)
    assert other.duplicate is True
    assert apply_in_place(state, ev("dup", "m50"), STEPS).duplicate is True
    assert state.values["s"] == 85


def test_apply_does_not_mutate_input_state() -> None:
    start, _ = feed(CAPS, [ev("a", "pts"), ev("b", "occ", SEC)])
    before = json.dumps(start.to_json(), sort_keys=True)
    values = dict(start.values)
    new, eff = apply(start, ev("c", "pts", 2 * SEC), CAPS)
    assert [a.points for a in eff.awards] == [4]
    assert json.dumps(start.to_json(), sort_keys=True) == before
    assert start.values == values
    assert new is not start
    assert new.values["s"] == 9


def test_unmatched_events_are_seen_but_award_nothing() -> None:
    state, (e1, e2) = feed(
        STEPS, [ev("n1", "newsletter_signup", 5 * SEC), ev("n2", "p50", 0, url="/x")]
    )
    assert e1 == Effects()
    assert state.seen == {event_key("n1"): T0_MS + 5 * SEC, event_key("n2"): T0_MS}
    assert state.clock == T0_MS + 5 * SEC
    assert state.values["s"] == 50
    assert moves(e2) == [("mql", "up", 50, 0)]


def test_where_condition_selects_rules_in_file_order() -> None:
    m = model_of("""
scores:
  s: {}
rules:
  - {id: visit, score: s, on: {type: page_visit}, points: 1}
  - {id: pricing, score: s, on: {type: page_visit, where: {url: {glob: "*/pricing*"}}}, points: 10}
""")
    state, (blog, pricing) = feed(
        m, [ev("a", "page_visit", url="/blog"), ev("b", "page_visit", SEC, url="/Pricing")]
    )
    assert [a.rule for a in blog.awards] == ["visit"]
    assert not blog.refused
    assert [a.rule for a in pricing.awards] == ["visit", "pricing"]
    assert state.values["s"] == 12


# --- state serialisation ----------------------------------------------------------------------

RICH = model_of("""
scores:
  s:
    max: 100
    categories: {b: {max: 50}, f: {}}
    thresholds: [{name: mql, at: 20}]
rules:
  - {id: open, score: s, category: b, on: {type: open}, points: 3, expires: 30d,
     cap: {points: 10, per: 7d}, burst: 10s}
  - {id: life, score: s, category: b, on: {type: life}, points: 4, cap: {occurrences: 2}}
  - {id: sessions, score: s, on: {type: session}, points: 8, frequency: {count: 3, within: 7d}}
  - {id: trial, score: s, on: {type: trial}, points: 5, once: true}
  - {id: vp, score: s, category: f, when: {title: {contains: vp}}, points: 15}
""")


def rich_state() -> ContactState:
    state, _ = feed(
        RICH,
        [
            ev("o1", "open", 0),
            ev("o2", "open", MIN),
            ev("l1", "life", 2 * MIN),
            ev("s1", "session", 3 * MIN),
            ev("t1", "trial", 4 * MIN),
            upd("u1", 5 * MIN, title="VP Sales", phone="555"),
        ],
    )
    return state


def test_contact_state_json_round_trip() -> None:
    state = rich_state()
    # 3 + 3 + 4 (b) + 5 + 15 (f) = 30
    assert state.values == {"s": 30}
    assert state.tiers == {"s": ["mql"]}
    data = json.loads(json.dumps(state.to_json()))
    assert data["clock"] == T0_MS + 5 * MIN
    assert data["attributes"] == {"title": "VP Sales", "phone": "555"}
    assert data["once"] == ["trial"]
    assert data["pending"] == {"sessions": [T0_MS + 3 * MIN]}
    assert data["history"]["open"] == [[T0_MS, 3], [T0_MS + MIN, 3]]
    assert data["totals"] == {"life": [4, 1]}
    assert [a["rule"] for a in data["fit"]] == ["vp"]
    assert [a["rule"] for a in data["awards"]] == ["open", "open", "life", "trial"]
    assert data["awards"][0]["expires_at"] == T0_MS + 30 * DAY
    assert "sums" not in data
    assert "values" not in data
    restored = ContactState.from_json(data, RICH)
    assert restored == state
    assert restored.values == {"s": 30}
    assert restored.to_json() == state.to_json()


def test_restored_state_scores_like_the_original() -> None:
    state = rich_state()
    restored = ContactState.from_json(json.loads(json.dumps(state.to_json())), RICH)
    follow = [
        ev("o3", "open", MIN + 5 * SEC),
        ev("s2", "session", DAY),
        ev("s3", "session", 2 * DAY),
    ]
    a, ea = feed(RICH, follow, state)
    b, eb = feed(RICH, follow, restored)
    assert ea == eb
    assert a == b
    # o3: 5s after o2: burst; s2 and s3 (inside 7d of s1) complete the sessions: +8
    assert refusals(ea[0]) == [("open", "burst")]
    assert [x.points for x in eb[2].awards] == [8]
    assert b.values == {"s": 38}


def test_contact_state_from_empty_json() -> None:
    state = ContactState.from_json({}, RICH)
    assert state.values == {"s": 0}
    assert state.awards == []
    assert state.clock is None


def test_copy_is_independent() -> None:
    state = rich_state()
    dup = state.copy()
    dup.attributes["title"] = "x"
    dup.history["open"][0][1] = 99
    dup.pending["sessions"].append(1)
    dup.tiers["s"].append("z")
    dup.once.add("y")
    dup.values["s"] = -1
    assert state.attributes["title"] == "VP Sales"
    assert state.history["open"][0][1] == 3
    assert state.pending["sessions"] == [T0_MS + 3 * MIN]
    assert state.tiers == {"s": ["mql"]}
    assert state.once == {"trial"}
    assert state.values == {"s": 30}


# --- explanations and reasons -----------------------------------------------------------------

EXPLAIN = model_of("""
scores:
  s:
    max: 100
    categories: {b: {max: 10}, f: {min: 0}}
    thresholds:
      - {name: mql, at: 20}
      - {name: sql, at: 90}
  t: {}
rules:
  - {id: big, score: s, category: b, on: {type: big}, points: 8, expires: 1d}
  - {id: neg, score: s, category: f, on: {type: neg}, points: -3}
  - {id: vp, score: s, category: f, when: {title: {contains: vp}}, points: 15}
  - {id: plain, score: s, on: {type: plain}, points: 2}
gates:
  - {id: adult, when: {age: {gte: 18}}}
""")


def test_explain() -> None:
    state, _ = feed(
        EXPLAIN,
        [
            upd("u1", 0, title="VP", age=40),
            ev("b1", "big", SEC),
            ev("b2", "big", 2 * SEC),
            ev("n1", "neg", 3 * SEC),
            ev("p1", "plain", 4 * SEC),
        ],
    )
    # b: 16 held at 10; f: 15 - 3 = 12; none: 2 -> 24
    out = explain(state, EXPLAIN)
    assert set(out) == {"s", "t"}
    s = out["s"]
    assert (s.score, s.value, s.display) == ("s", 24, 24)
    assert s.tiers == ["mql"]
    assert s.gates == {"adult": True}
    assert s.categories == {
        "(none)": {"raw": 2, "counted": 2, "max": None},
        "b": {"raw": 16, "counted": 10, "max": 10},
        "f": {"raw": 12, "counted": 12, "max": None},
    }
    assert [(a.rule, a.points, a.event_id) for a in s.awards] == [
        ("vp", 15, "u1"),
        ("big", 8, "b1"),
        ("big", 8, "b2"),
        ("neg", -3, "n1"),
        ("plain", 2, "p1"),
    ]
    data = award_record(s.awards[1], lambda ms: f"t{ms}")
    assert data == {
        "rule": "big",
        "score": "s",
        "category": "b",
        "points": 8,
        "event_id": "b1",
        "awarded_at": f"t{T0_MS + SEC}",
        "expires_at": f"t{T0_MS + SEC + DAY}",
    }
    assert list(data) == [
        "score",
        "rule",
        "category",
        "points",
        "event_id",
        "awarded_at",
        "expires_at",
    ]
    assert json.loads(json.dumps(data)) == data
    assert award_record(s.awards[0], str)["expires_at"] is None  # an attribute award
    t = out["t"]
    assert (t.value, t.tiers, t.gates, t.categories, t.awards) == (0, [], {"adult": True}, {}, [])


def test_explain_shows_failing_gate_and_category_min() -> None:
    state, _ = feed(EXPLAIN, [ev("n1", "neg"), ev("n2", "neg", SEC), upd("u", 2 * SEC, age=9)])
    s = explain(state, EXPLAIN)["s"]
    assert s.value == 0
    assert s.gates == {"adult": False}
    assert s.categories == {"f": {"raw": -6, "counted": 0, "max": None}}


def test_crossing_reasons_are_the_largest_live_awards() -> None:
    _, effects = feed(
        EXPLAIN,
        [
            upd("u1", 0, age=40),
            ev("p1", "plain", SEC),
            ev("n1", "neg", 2 * SEC),
            ev("b1", "big", 3 * SEC),
            ev("b2", "big", 4 * SEC),
            upd("u2", 5 * SEC, title="vp"),
        ],
    )
    # before: none 2, b 16 held at 10, f -3 held at min 0 -> 12
    # after:  none 2, b 10, f -3 + 15 = 12 -> 24: mql up
    (up,) = effects[-1].crossings
    assert (up.tier, up.value, up.previous) == ("mql", 24, 12)
    # by size, then time: vp 15, b1 8, b2 8 (neg -3 and plain 2 are left out)
    assert [(a.rule, a.event_id) for a in up.reasons] == [
        ("vp", "u2"),
        ("big", "b1"),
        ("big", "b2"),
    ]


# --- replay ------------------------------------------------------------------------------------


def test_replay_across_contacts_with_until() -> None:
    events = [
        ev("a1", "x", 0, contact="alice"),  # alice 10: hot up
        ev("b1", "y", 0, contact="bob"),  # bob 1
        ev("a2", "y", HOUR, contact="alice"),  # alice 11
        ev("b1", "x", HOUR, contact="bob"),  # duplicate for bob
        ev("a1", "x", 2 * HOUR, contact="bob"),  # alice's id, but new to bob: bob 11, hot up
    ]
    states, crossings = replay(events, EXPIRY)
    assert set(states) == {"alice", "bob"}
    assert states["alice"].values == {"s": 11}
    assert states["bob"].values == {"s": 11}
    assert [(c.contact_id, c.tier, c.direction, c.cause) for c in crossings] == [
        ("alice", "hot", "up", "a1"),
        ("bob", "hot", "up", "a1"),
    ]
    # until: alice's award drops at 1d, bob's at 2h + 1d
    states, crossings = replay(events, EXPIRY, until=T0_MS + 2 * DAY)
    assert states["alice"].values == {"s": 1}
    assert states["bob"].values == {"s": 1}
    assert states["alice"].swept == T0_MS + 2 * DAY  # the event clock stays
    assert [(c.contact_id, c.direction, c.cause) for c in crossings[2:]] == [
        ("alice", "down", f"expired@{T0_MS + DAY}"),
        ("bob", "down", f"expired@{T0_MS + 2 * HOUR + DAY}"),
    ]
    # until before the expiries: nothing more
    _, early = replay(events, EXPIRY, until=T0_MS + 12 * HOUR)
    assert len(early) == 2


def test_replay_twice_adds_no_crossings() -> None:
    events = [ev("x1", "p85", 0, contact="carol"), ev("x2", "p50", 0, contact="dave")]
    states_once, once = replay(events, STEPS)
    states_twice, twice = replay(events + events, STEPS)
    assert twice == once
    assert len(once) == 3  # carol mql + sql, dave mql
    assert states_twice == states_once


def test_replay_of_nothing() -> None:
    assert replay([], STEPS) == ({}, [])
    assert replay([], STEPS, until=T0_MS) == ({}, [])


def test_crossing_alert_id_and_event_id() -> None:
    up = Crossing("c9", "fit", "hot", "up", 12, 4, 10, "ev-5", T0_MS, 12)
    assert re.fullmatch(r"[0-9a-f]{40}", alert_id(up, EXPIRY))
    assert alert_id(up, EXPIRY) == alert_id(
        Crossing("c9", "fit", "hot", "up", 12, 4, 10, "ev-5", T0_MS, 12), EXPIRY
    )
    assert up.event_id == "ev-5"
    down = Crossing("c9", "fit", "hot", "down", 4, 12, 10, f"expired@{T0_MS}", T0_MS, 4)
    assert down.event_id is None
    assert alert_id(down, EXPIRY) != alert_id(up, EXPIRY)
    # the same cause with another value (events applied in another order): another alert
    other = Crossing("c9", "fit", "hot", "up", 13, 4, 10, "ev-5", T0_MS, 13)
    assert alert_id(other, EXPIRY) != alert_id(up, EXPIRY)
    assert alert_id(up, STEPS) == alert_id(up, EXPIRY), "the same name and version: same alert"
    text = "name: engine-test\nscores: {fit: {thresholds: [{name: hot, at: 10}]}}\n"
    version_2 = parse_model("version: 2\n" + text)
    assert alert_id(up, version_2) != alert_id(up, EXPIRY), "another model version, another alert"


def test_round_trip_equal_after_award_withdrawn_and_expired() -> None:
    # Derived sums must not keep zero entries that a rebuild from the awards would not have.
    model = parse_model(
        "version: 1\nname: m\nscores:\n  s:\n    max: 100\n    categories: {a: {}, b: {}}\n"
        "rules:\n"
        "  - {id: vip, score: s, category: a, when: {vip: true}, points: 10}\n"
        "  - {id: open, score: s, category: b, on: {type: email_open}, points: 3, expires: 1h}\n"
    )
    start = datetime(2026, 1, 1, tzinfo=UTC)
    state = ContactState()
    for i, (kind, props, minutes) in enumerate(
        [
            ("contact_updated", {"vip": True}, 0),
            ("email_open", {}, 1),
            ("contact_updated", {"vip": None}, 2),
            ("email_open", {}, 200),
        ]
    ):
        event = Event(
            event_id=f"e{i}",
            contact_id="c",
            type=kind,
            occurred_at=start + timedelta(minutes=minutes),
            properties=props,
        )
        state, _ = apply(state, event, model)
    again = ContactState.from_json(json.loads(json.dumps(state.to_json())), model)
    assert again == state
    assert state.sums == {"s": {"b": 3}}


def test_event_rule_on_contact_updated_is_a_model_error() -> None:
    from stream_scorer.errors import ModelError

    with pytest.raises(ModelError) as info:
        parse_model(
            "version: 1\nname: m\nscores: {s: {}}\n"
            "rules:\n  - {id: r, score: s, on: {type: contact_updated}, points: 5}\n"
        )
    assert info.value.problems[0].startswith("rules[0] (line 5): contact_updated events carry")
