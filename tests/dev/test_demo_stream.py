"""The demo's stream: the simulator's events that the model scores, whatever the model."""

from __future__ import annotations

import itertools

from stream_scorer.dev.demo import scored_stream
from stream_scorer.events import CONTACT_UPDATED
from stream_scorer.review.simulation import live_events
from stream_scorer.scoring import load_model, parse_model

OWN_TYPES_MODEL = """
version: 1
name: own-types
scores:
  engagement: {min: 0, max: 100, thresholds: [{name: mql, at: 20}]}
rules:
  - {id: ping, score: engagement, on: {type: app_ping}, points: 5}
  - {id: signup, score: engagement, on: {type: app_signup}, points: 15}
"""


def take(model_events: object, n: int = 3000) -> list[dict[str, object]]:
    return list(itertools.islice(model_events, n))  # type: ignore[call-overload]


def test_the_default_model_gets_only_the_simulated_types_it_scores() -> None:
    model = load_model("config/scoring.yaml")
    raw = take(live_events(50, seed=7), 6000)
    sent = take(scored_stream(model, iter(raw)), 3000)
    assert sent == [e for e in raw if e["type"] in model.event_types][: len(sent)]
    assert {e["type"] for e in sent} - {CONTACT_UPDATED}, "engagement events are sent"


def test_a_model_with_its_own_event_types_gets_them_instead() -> None:
    model = parse_model(OWN_TYPES_MODEL)
    sent = take(scored_stream(model, live_events(50, seed=7)))
    kinds = {e["type"] for e in sent}
    assert kinds <= {"app_ping", "app_signup", CONTACT_UPDATED}
    assert {"app_ping", "app_signup"} <= kinds
    renamed: dict[str, set[str]] = {}
    for original, event in zip(take(live_events(50, seed=7)), sent, strict=True):
        assert original["event_id"] == event["event_id"]
        renamed.setdefault(str(original["type"]), set()).add(str(event["type"]))
    assert all(len(targets) == 1 for targets in renamed.values()), "one name for each type"
