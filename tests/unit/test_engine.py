"""Unit tests for stream_scorer.engine, with expectations worked out by hand.

Semantics (engine module docstring): a seen event id changes nothing; awards
apply in rule order, each clamped to the score's range; after the event, each
tier of each touched score is checked in order: inactive and value >= at ->
up; active and value < rearm level -> down.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from stream_scorer.alerts import SEPARATOR, alert_id
from stream_scorer.engine import (
    AwardMade,
    ContactState,
    Crossing,
    Effects,
    apply,
    initial_score,
    replay,
)
from stream_scorer.events import Event
from stream_scorer.model import ScoringModel, parse_model

MODEL_YAML = """\
version: 1
name: engine-test
scores:
  engagement:
    min: 0
    max: 100
    thresholds:
      - {name: mql, at: 50, rearm_below: 40}
      - {name: sql, at: 80, rearm_below: 70}
  fit: {min: -5, max: 5}
  floor: {min: 10}
  plain:
    thresholds:
      - {name: hot, at: 10}
rules:
  - {id: open, score: engagement, on: {type: email_open}, points: 1}
  - {id: visit, score: engagement, on: {type: page_visit}, points: 5}
  - {id: fade, score: engagement, on: {type: fade}, points: -5}
  - {id: drop-one, score: engagement, on: {type: drop_one}, points: -1}
  - {id: demo, score: engagement, on: {type: demo_request}, points: 45}
  - {id: contract, score: engagement, on: {type: contract}, points: 85}
  - {id: unsub, score: engagement, on: {type: unsubscribe}, points: -20}
  - {id: fit-up, score: fit, on: {type: fit_signal}, points: 3}
  - {id: fit-down, score: fit, on: {type: fit_loss}, points: -9}
  - {id: combo-a, score: engagement, on: {type: combo}, points: 30}
  - {id: combo-b, score: engagement, on: {type: combo}, points: -10}
  - {id: combo-fit, score: fit, on: {type: combo}, points: 4}
  - {id: reorder-neg, score: engagement, on: {type: reorder}, points: -10}
  - {id: reorder-pos, score: engagement, on: {type: reorder}, points: 30}
  - {id: floor-up, score: floor, on: {type: floor_up}, points: 5}
  - {id: plain-up, score: plain, on: {type: plain_up}, points: 10}
  - {id: plain-down, score: plain, on: {type: plain_down}, points: -1}
"""

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
_counter = iter(range(1_000_000))


@pytest.fixture(scope="module")
def model() -> ScoringModel:
    return parse_model(MODEL_YAML, "engine-test.yaml")


def ev(type_: str, event_id: str | None = None, contact_id: str = "c1") -> Event:
    n = next(_counter)
    return Event(
        event_id=event_id or f"ev-{n}",
        contact_id=contact_id,
        type=type_,
        occurred_at=T0 + timedelta(seconds=n),
    )


def run(
    model: ScoringModel, types: list[str], state: ContactState | None = None
) -> tuple[ContactState, list[Effects]]:
    current = state or ContactState()
    effects = []
    for t in types:
        current, eff = apply(current, ev(t), model)
        effects.append(eff)
    return current, effects


def test_points_add_up(model: ScoringModel) -> None:
    # 1 + 5 + 1 + 5 - 5 = 7, then + 5 + 5 = 17
    state, effects = run(model, ["email_open", "page_visit", "email_open", "page_visit", "fade"])
    assert state.scores == {"engagement": 7}
    state, _ = run(model, ["page_visit", "page_visit"], state)
    assert state.scores == {"engagement": 17}
    assert all(not e.crossings for e in effects)
    assert all(not e.duplicate for e in effects)
    assert len(state.seen) == 7


def test_award_details(model: ScoringModel) -> None:
    event = ev("page_visit", event_id="pv-1")
    _, effects = apply(ContactState(scores={"engagement": 3}), event, model)
    assert effects.awards == (AwardMade("visit", "engagement", 5, 5, "pv-1"),)


def test_clamp_to_min(model: ScoringModel) -> None:
    state, eff = apply(ContactState(scores={"engagement": 5}), ev("unsubscribe"), model)
    assert state.scores["engagement"] == 0
    assert eff.awards[0].points == -20
    assert eff.awards[0].applied == -5
    assert eff.crossings == ()


def test_clamp_to_min_from_fresh_state(model: ScoringModel) -> None:
    state, eff = apply(ContactState(), ev("unsubscribe"), model)
    assert state.scores["engagement"] == 0
    assert eff.awards[0].applied == 0


def test_clamp_to_max(model: ScoringModel) -> None:
    state, eff = apply(ContactState(scores={"fit": 4}), ev("fit_signal"), model)
    assert state.scores["fit"] == 5
    assert eff.awards[0].applied == 1
    state, eff = apply(state, ev("fit_signal"), model)
    assert state.scores["fit"] == 5
    assert eff.awards[0].applied == 0


def test_negative_min(model: ScoringModel) -> None:
    state, eff = apply(ContactState(), ev("fit_loss"), model)
    assert state.scores["fit"] == -5  # 0 - 9 clamped to -5
    assert eff.awards[0].applied == -5


def test_engagement_clamped_to_100(model: ScoringModel) -> None:
    state, _ = run(model, ["contract", "contract"])
    assert state.scores["engagement"] == 100  # 85, then 170 -> 100


def test_initial_score_is_clamped_into_range(model: ScoringModel) -> None:
    spec = model.spec.scores["floor"]
    assert initial_score(spec) == 10
    assert initial_score(model.spec.scores["fit"]) == 0
    state, eff = apply(ContactState(), ev("floor_up"), model)
    assert state.scores["floor"] == 15
    assert eff.awards[0].applied == 5


def test_awards_apply_in_rule_order_each_clamped(model: ScoringModel) -> None:
    # reorder: -10 then +30 from 0: -10 -> clamped 0, then 30 (not 20).
    state, eff = apply(ContactState(), ev("reorder"), model)
    assert state.scores["engagement"] == 30
    assert [(a.rule, a.applied) for a in eff.awards] == [("reorder-neg", 0), ("reorder-pos", 30)]


def test_one_event_touching_two_scores(model: ScoringModel) -> None:
    # combo: engagement +30 then -10 (= 20), fit +4.
    state, eff = apply(ContactState(), ev("combo"), model)
    assert state.scores == {"engagement": 20, "fit": 4}
    assert [a.rule for a in eff.awards] == ["combo-a", "combo-b", "combo-fit"]


def test_tiers_checked_only_after_the_whole_event(model: ScoringModel) -> None:
    # From 25, combo goes 55 then 45 within the event; 45 < 50, so no crossing.
    state, eff = apply(ContactState(scores={"engagement": 25}), ev("combo"), model)
    assert state.scores["engagement"] == 45
    assert eff.crossings == ()


def test_up_crossing_fires_once(model: ScoringModel) -> None:
    state, (e1, e2) = run(model, ["demo_request", "page_visit"])  # 45, 50
    assert e1.crossings == ()
    assert len(e2.crossings) == 1
    up = e2.crossings[0]
    assert (up.contact_id, up.score, up.tier, up.direction) == ("c1", "engagement", "mql", "up")
    assert (up.value, up.previous, up.threshold) == (50, 45, 50)
    assert state.active_tiers["engagement"] == ["mql"]
    # Staying above: 55, 60, 61 - no new crossing.
    state, effects = run(model, ["page_visit", "page_visit", "email_open"], state)
    assert state.scores["engagement"] == 61
    assert [e.crossings for e in effects] == [(), (), ()]
    assert state.active_tiers["engagement"] == ["mql"]


def test_rearm_margin(model: ScoringModel) -> None:
    state, effects = run(model, ["demo_request", "page_visit"])  # 45, 50: up
    assert [c.direction for c in effects[1].crossings] == ["up"]
    # 45: still at/above rearm_below 40 -> no down crossing.
    state, (eff,) = run(model, ["fade"], state)
    assert state.scores["engagement"] == 45
    assert eff.crossings == ()
    # 40: equal to rearm_below is not below it -> still no down crossing.
    state, (eff,) = run(model, ["fade"], state)
    assert state.scores["engagement"] == 40
    assert eff.crossings == ()
    assert state.active_tiers["engagement"] == ["mql"]
    # 39: below 40 -> one down crossing.
    state, (eff,) = run(model, ["drop_one"], state)
    assert state.scores["engagement"] == 39
    assert len(eff.crossings) == 1
    down = eff.crossings[0]
    assert (down.tier, down.direction, down.value, down.previous, down.threshold) == (
        "mql",
        "down",
        39,
        40,
        50,
    )
    assert state.active_tiers["engagement"] == []
    # Below 40 again: no second down crossing.
    state, (eff,) = run(model, ["drop_one"], state)
    assert state.scores["engagement"] == 38
    assert eff.crossings == ()
    # 43, 48, 49: below 50, no up yet.
    state, effects = run(model, ["page_visit", "page_visit", "email_open"], state)
    assert state.scores["engagement"] == 49
    assert all(e.crossings == () for e in effects)
    # 50: crosses up again.
    state, (eff,) = run(model, ["email_open"], state)
    assert [(c.tier, c.direction, c.value, c.previous) for c in eff.crossings] == [
        ("mql", "up", 50, 49)
    ]


def test_rearm_defaults_to_at(model: ScoringModel) -> None:
    state, (up,) = run(model, ["plain_up"])  # 10: up
    assert [(c.tier, c.direction) for c in up.crossings] == [("hot", "up")]
    state, (down,) = run(model, ["plain_down"], state)  # 9 < 10: down
    assert [(c.tier, c.direction, c.value, c.threshold) for c in down.crossings] == [
        ("hot", "down", 9, 10)
    ]


def test_several_tiers_in_one_event(model: ScoringModel) -> None:
    state, eff = apply(ContactState(), ev("contract", event_id="big-1"), model)
    assert state.scores["engagement"] == 85
    assert [(c.tier, c.direction, c.value, c.previous, c.threshold) for c in eff.crossings] == [
        ("mql", "up", 85, 0, 50),
        ("sql", "up", 85, 0, 80),
    ]
    assert all(c.event_id == "big-1" for c in eff.crossings)
    assert sorted(state.active_tiers["engagement"]) == ["mql", "sql"]


def test_only_the_tier_below_its_rearm_goes_down(model: ScoringModel) -> None:
    start = ContactState(scores={"engagement": 85}, active_tiers={"engagement": ["mql", "sql"]})
    state, eff = apply(start, ev("unsubscribe"), model)
    assert state.scores["engagement"] == 65  # < 70 (sql rearm) but >= 40 (mql rearm)
    assert [(c.tier, c.direction, c.value, c.previous, c.threshold) for c in eff.crossings] == [
        ("sql", "down", 65, 85, 80)
    ]
    assert state.active_tiers["engagement"] == ["mql"]


def test_both_tiers_go_down_in_one_event(model: ScoringModel) -> None:
    start = ContactState(scores={"engagement": 55}, active_tiers={"engagement": ["mql", "sql"]})
    state, eff = apply(start, ev("unsubscribe"), model)
    assert state.scores["engagement"] == 35
    assert [(c.tier, c.direction) for c in eff.crossings] == [("mql", "down"), ("sql", "down")]
    assert state.active_tiers["engagement"] == []


def test_duplicate_event_changes_nothing(model: ScoringModel) -> None:
    event = ev("demo_request", event_id="dup-1")
    state, first = apply(ContactState(), event, model)
    assert first.duplicate is False
    snapshot = state.copy()
    again, eff = apply(state, event, model)
    assert eff == Effects(duplicate=True)
    assert eff.awards == ()
    assert eff.crossings == ()
    assert again == snapshot
    assert again.scores["engagement"] == 45


def test_duplicate_is_by_event_id_not_content(model: ScoringModel) -> None:
    state, _ = apply(ContactState(), ev("page_visit", event_id="same"), model)
    state2, eff = apply(state, ev("contract", event_id="same"), model)
    assert eff.duplicate is True
    assert state2.scores["engagement"] == 5


def test_unmatched_event_type_recorded_as_seen(model: ScoringModel) -> None:
    start = ContactState(scores={"engagement": 12})
    state, eff = apply(start, ev("newsletter_signup", event_id="n-1"), model)
    assert eff == Effects()
    assert eff.duplicate is False
    assert state.scores == {"engagement": 12}
    assert state.active_tiers == {}
    assert state.seen == {"n-1"}
    _, again = apply(state, ev("newsletter_signup", event_id="n-1"), model)
    assert again.duplicate is True


def test_apply_does_not_mutate_input_state(model: ScoringModel) -> None:
    start = ContactState(scores={"engagement": 45}, active_tiers={"engagement": []}, seen={"old"})
    before = json.dumps(start.to_json(), sort_keys=True)
    new, _ = apply(start, ev("page_visit"), model)
    assert json.dumps(start.to_json(), sort_keys=True) == before
    assert new.scores["engagement"] == 50
    assert new is not start


def test_contact_state_json_round_trip() -> None:
    state = ContactState(
        scores={"engagement": 61, "fit": -3},
        active_tiers={"engagement": ["mql"], "fit": []},
        seen={"e3", "e1", "e2"},
    )
    data = json.loads(json.dumps(state.to_json()))
    assert data["seen"] == ["e1", "e2", "e3"]
    restored = ContactState.from_json(data)
    assert restored == state
    assert restored.seen == {"e1", "e2", "e3"}


def test_contact_state_from_empty_json() -> None:
    assert ContactState.from_json({}) == ContactState()


def test_contact_state_copy_is_deep() -> None:
    state = ContactState(scores={"a": 1}, active_tiers={"a": ["t"]}, seen={"e"})
    dup = state.copy()
    dup.scores["a"] = 2
    dup.active_tiers["a"].append("u")
    dup.seen.add("f")
    assert state == ContactState(scores={"a": 1}, active_tiers={"a": ["t"]}, seen={"e"})


def _crossing(direction: str = "up", event_id: str = "e1", value: int = 50) -> Crossing:
    return Crossing("c1", "engagement", "mql", direction, value, 45, 50, event_id)


def test_crossing_alert_id_is_deterministic() -> None:
    expected = hashlib.sha1(b"c1\x1fengagement\x1fmql\x1fup\x1fe1").hexdigest()
    assert _crossing().alert_id == expected
    assert _crossing().alert_id == _crossing().alert_id
    # value is not part of the identity of a crossing
    assert _crossing(value=77).alert_id == expected


def test_crossing_alert_id_differs_by_direction_and_event() -> None:
    base = _crossing().alert_id
    assert _crossing(direction="down").alert_id != base
    assert _crossing(event_id="e2").alert_id != base


def test_replay_across_two_contacts(model: ScoringModel) -> None:
    events = [
        ev("demo_request", "a-1", "alice"),  # alice 45
        ev("page_visit", "b-1", "bob"),  # bob 5
        ev("page_visit", "a-2", "alice"),  # alice 50: up mql
        ev("page_visit", "b-1", "bob"),  # duplicate for bob
        ev("page_visit", "a-1", "bob"),  # same id as alice's, but bob's first: bob 10
        ev("unsubscribe", "a-3", "alice"),  # alice 30: down mql
    ]
    states, crossings = replay(events, model)
    assert set(states) == {"alice", "bob"}
    assert states["alice"].scores == {"engagement": 30}
    assert states["alice"].seen == {"a-1", "a-2", "a-3"}
    assert states["alice"].active_tiers["engagement"] == []
    assert states["bob"].scores == {"engagement": 10}
    assert states["bob"].seen == {"b-1", "a-1"}
    assert crossings == [
        Crossing("alice", "engagement", "mql", "up", 50, 45, 50, "a-2"),
        Crossing("alice", "engagement", "mql", "down", 30, 50, 50, "a-3"),
    ]


def test_replaying_twice_adds_no_crossings(model: ScoringModel) -> None:
    events = [ev("contract", "x-1", "carol"), ev("email_open", "x-2", "dave")]
    states_once, crossings_once = replay(events, model)
    states_twice, crossings_twice = replay(events + events, model)
    assert crossings_twice == crossings_once
    assert len(crossings_once) == 2
    assert states_twice == states_once
    assert states_once["carol"].scores == {"engagement": 85}
    assert states_once["dave"].scores == {"engagement": 1}


def test_replay_of_nothing(model: ScoringModel) -> None:
    assert replay([], model) == ({}, [])


def test_alert_id_is_sha1_of_unit_separated_parts() -> None:
    parts = ("contact-9", "engagement", "sql", "down", "evt-77")
    expected = hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()
    assert SEPARATOR == "\x1f"
    assert alert_id(*parts) == expected
    assert len(alert_id(*parts)) == 40


def test_alert_id_handles_non_ascii() -> None:
    parts = ("kontakt-ü", "engagement", "mql", "up", "ereignis-é")
    expected = hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()
    assert alert_id(*parts) == expected


def test_alert_id_separator_prevents_ambiguous_joins() -> None:
    # Without a separator "ab"+"c" and "a"+"bc" would collide.
    assert alert_id("ab", "c", "t", "up", "e") != alert_id("a", "bc", "t", "up", "e")


def test_crossing_alert_id_uses_alert_id() -> None:
    crossing = Crossing("c9", "fit", "hot", "down", 1, 12, 10, "ev-5")
    assert crossing.alert_id == alert_id("c9", "fit", "hot", "down", "ev-5")
