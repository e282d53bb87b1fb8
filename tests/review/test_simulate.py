"""Unit tests for stream_scorer.review.simulation: reproducible, valid, ordered, informative.

One module-wide history (1,500 contacts over 90 days, well under a second to draw)
serves the checks of its content; determinism is checked on smaller ones.
"""

from __future__ import annotations

import csv
import itertools
import json
import statistics
from bisect import bisect_left, bisect_right
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stream_scorer.events import CONTACT_UPDATED, Event, decode_event, validate
from stream_scorer.review.conversions import read_conversions
from stream_scorer.review.simulation import (
    DEFAULT_START,
    Simulation,
    generate,
    live_events,
    simulate,
)
from stream_scorer.scoring import ScoringModel, load_model, replay
from stream_scorer.times import epoch_ms

ROOT = Path(__file__).resolve().parents[2]
CONTACTS = 1500
DAYS = 90
DAY = 86_400_000
START = epoch_ms(DEFAULT_START)
END = START + DAYS * DAY


@pytest.fixture(scope="module")
def model() -> ScoringModel:
    return load_model(ROOT / "config" / "scoring.yaml")


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Simulation:
    return simulate(CONTACTS, DAYS, tmp_path_factory.mktemp("simulation"), seed=11)


@pytest.fixture(scope="module")
def events(written: Simulation) -> list[Event]:
    return [decode_event(line) for line in written.events_path.read_bytes().splitlines()]


@pytest.fixture(scope="module")
def truth(written: Simulation) -> dict[str, dict[str, str]]:
    with written.contacts_path.open(newline="", encoding="utf-8") as handle:
        return {row["contact_id"]: row for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def conversions(written: Simulation) -> dict[str, int]:
    return read_conversions(written.conversions_path)


def auc(positives: list[int], negatives: list[int]) -> float:
    """Mann-Whitney AUC: the chance a positive outscores a negative, ties counting half."""
    ranked = sorted(negatives)
    wins = 0.0
    for value in positives:
        below, upto = bisect_left(ranked, value), bisect_right(ranked, value)
        wins += below + (upto - below) / 2
    return wins / (len(positives) * len(ranked))


def engagement(events: list[Event], model: ScoringModel, until: int) -> dict[str, int]:
    """Each contact's engagement at ``until``, from the events before it only."""
    states, _ = replay((e for e in events if epoch_ms(e.occurred_at) < until), model, until)
    return {cid: state.values["engagement"] for cid, state in states.items()}


def test_same_seed_writes_the_same_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    first = simulate(300, 30, tmp_path / "a", seed=3)
    again = simulate(300, 30, tmp_path / "b", seed=3)
    other = simulate(300, 30, tmp_path / "c", seed=4)
    for mine, same, different in zip(first.paths, again.paths, other.paths, strict=True):
        assert mine.name == same.name == different.name
        assert mine.read_bytes() == same.read_bytes(), mine.name
        assert mine.read_bytes() != different.read_bytes(), mine.name
    ids = {json.loads(line)["event_id"] for line in first.events_path.read_text().splitlines()}
    other_ids = {
        json.loads(line)["event_id"] for line in other.events_path.read_text().splitlines()
    }
    assert len(ids) == first.events
    assert not ids & other_ids, "two seeds' histories can be merged without id clashes"


def test_generate_is_what_simulate_writes(tmp_path: Path) -> None:
    start = datetime(2025, 3, 4, 13, 7, tzinfo=UTC)
    result = simulate(200, 20, tmp_path, seed=9, start=start)
    documents, conversions = generate(200, 20, seed=9, start=start)
    lines = result.events_path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == documents
    assert conversions == read_conversions(result.conversions_path)
    assert (result.contacts, result.days, result.seed) == (200, 20, 9)
    assert (result.events, result.conversions) == (len(documents), len(conversions))
    first, last = (decode_event(lines[i].encode()).occurred_at for i in (0, -1))
    assert start <= first <= last < start + timedelta(days=20)


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="days"):
        simulate(10, 0, tmp_path)
    with pytest.raises(ValueError, match="offset"):
        generate(10, 5, start=datetime(2026, 1, 1))  # naive on purpose


def test_every_line_is_an_event_the_default_model_knows(
    written: Simulation, events: list[Event], model: ScoringModel
) -> None:
    assert len(events) == written.events > 10 * CONTACTS
    types = {e.type for e in events}
    assert types <= model.event_types, types - model.event_types
    common = model.event_types - {"spam_complaint", "unsubscribe"}
    assert common <= types, f"never drawn: {common - types}"
    assert len({e.event_id for e in events}) == len(events)


def test_events_are_in_time_order_within_the_span(events: list[Event]) -> None:
    times = [epoch_ms(e.occurred_at) for e in events]
    assert times == sorted(times)
    assert times[0] >= START
    assert times[-1] < END
    assert times[-1] - times[0] > (DAYS - 5) * DAY, "the history spans the whole period"


def test_each_contact_begins_with_its_attributes(
    events: list[Event], truth: dict[str, dict[str, str]]
) -> None:
    first: dict[str, Event] = {}
    updates: dict[str, int] = defaultdict(int)
    for event in events:
        first.setdefault(event.contact_id, event)
        updates[event.contact_id] += event.type == CONTACT_UPDATED
    assert set(first) == set(truth)
    keys = {"email", "job_title", "seniority", "department", "company_size", "industry"}
    for cid, event in first.items():
        assert event.type == CONTACT_UPDATED, cid
        assert keys | {"country", "is_competitor"} <= set(event.properties)
        local, domain = event.properties["email"].split("@")
        assert local == cid
        assert "." in domain
    personal = sum(
        first[c].properties["email"].endswith(("@gmail.com", "@yahoo.com")) for c in first
    )
    assert 0.05 < personal / CONTACTS < 0.4
    assert sum(first[c].properties["is_competitor"] for c in first) < 0.05 * CONTACTS
    changed = sum(n > 1 for n in updates.values())
    assert 0.02 * CONTACTS < changed < 0.5 * CONTACTS, "some titles change, budgets get confirmed"


def test_conversion_rate_is_plausible(written: Simulation, conversions: dict[str, int]) -> None:
    assert written.conversions == len(conversions)
    assert 0.08 <= len(conversions) / CONTACTS <= 0.16


def test_conversions_file_reads_back_as_the_hidden_truth(
    conversions: dict[str, int], truth: dict[str, dict[str, str]]
) -> None:
    converted = {
        cid: epoch_ms(datetime.fromisoformat(row["converted_at"]))
        for cid, row in truth.items()
        if row["converted_at"]
    }
    assert conversions == converted
    assert all(START < at < END for at in conversions.values())


def test_converters_have_the_higher_hidden_propensity(truth: dict[str, dict[str, str]]) -> None:
    propensity = {cid: float(row["propensity"]) for cid, row in truth.items()}
    assert all(0 < p < 1 for p in propensity.values())
    converters = [p for cid, p in propensity.items() if truth[cid]["converted_at"]]
    others = [p for cid, p in propensity.items() if not truth[cid]["converted_at"]]
    assert statistics.mean(converters) > 2 * statistics.mean(others)


def test_engagement_comes_before_conversion_and_goes_on_after(
    events: list[Event], conversions: dict[str, int]
) -> None:
    before: set[str] = set()
    after: set[str] = set()
    for event in events:
        at = conversions.get(event.contact_id)
        if at is None or event.type == CONTACT_UPDATED:
            continue
        t = epoch_ms(event.occurred_at)
        assert t != at, "no event coincides with the conversion it would explain"
        (before if t < at else after).add(event.contact_id)
    assert before == set(conversions), "every converter engaged before converting"
    assert len(after) > len(conversions) / 2, "customers keep producing events"


def test_behaviours_carry_the_signal_they_are_meant_to(
    events: list[Event], truth: dict[str, dict[str, str]], conversions: dict[str, int]
) -> None:
    """Before converting: pricing visits and demos mark high propensity, careers visits low,
    downloads little, opens nothing."""
    seen: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if epoch_ms(event.occurred_at) >= conversions.get(event.contact_id, END):
            continue
        kind = event.type
        if kind == "page_visit":
            url = event.properties["url"]
            kind = "pricing" if "/pricing" in url else "careers" if "/careers" in url else kind
        seen[kind].add(event.contact_id)
    propensity = {cid: float(row["propensity"]) for cid, row in truth.items()}

    def ratio(kind: str) -> float:
        did = [p for cid, p in propensity.items() if cid in seen[kind]]
        did_not = [p for cid, p in propensity.items() if cid not in seen[kind]]
        return statistics.mean(did) / statistics.mean(did_not)

    assert ratio("pricing") > 1.8
    assert ratio("demo_request") > 2.0
    assert ratio("webinar_attended") > 1.5
    assert ratio("careers") < 0.7
    assert 0.9 < ratio("content_download") < 1.6
    assert 0.7 < ratio("email_open") < 1.35


def test_default_model_is_informative_but_imperfect(
    events: list[Event], conversions: dict[str, int], model: ScoringModel
) -> None:
    """Scored at mid-span with the events before it, against who converts afterwards."""
    cutoff = START + DAYS // 2 * DAY
    scores = engagement(events, model, cutoff)
    later = [v for cid, v in scores.items() if conversions.get(cid, 0) > cutoff]
    never = [v for cid, v in scores.items() if cid not in conversions]
    assert len(later) > 50
    assert len(never) > 500
    point_in_time = auc(later, never)
    assert 0.6 < point_in_time < 0.9

    # Scoring with everything, customers' own activity included, flatters the model:
    # why evaluations must judge each contact with the events before the moment judged.
    final = engagement(events, model, END)
    leaky = auc(
        [v for cid, v in final.items() if cid in conversions],
        [v for cid, v in final.items() if cid not in conversions],
    )
    assert leaky > point_in_time + 0.05


def _live(contacts: int, stretches: int, seed: int = 3) -> list[dict[str, Any]]:
    """The live stream's first ``stretches`` stretches of 7 days, on a clock ticking 5 ms a call."""
    ticks = itertools.count(START, 5)
    out: list[dict[str, Any]] = []
    for doc in live_events(contacts, seed=seed, days=7, clock=lambda: next(ticks)):
        if doc["event_id"].startswith(f"live{seed}-{stretches}-"):
            return out
        out.append(doc)
    raise AssertionError("unreachable: the stream does not end")


def test_the_live_stream_goes_on_with_the_same_people_stamped_by_the_clock(
    model: ScoringModel,
) -> None:
    docs = _live(20, stretches=3)
    events = [validate(doc) for doc in docs]
    assert {doc["event_id"].split("-")[1] for doc in docs} == {"0", "1", "2"}
    assert len({e.event_id for e in events}) == len(events)
    assert {e.contact_id for e in events} <= {f"c-{i}" for i in range(20)}
    assert {e.type for e in events} <= model.event_types
    times = [epoch_ms(e.occurred_at) for e in events]
    assert times == sorted(times)
    assert times[0] >= START
    assert len(set(times)) == len(times)
    # The same people in every stretch: who they are and where they work never change.
    seen: dict[str, set[tuple[Any, Any]]] = defaultdict(set)
    for e in events:
        if e.type == CONTACT_UPDATED and "email" in e.properties:
            seen[e.contact_id].add((e.properties["email"], e.properties["company"]))
    assert len(seen) == 20
    assert all(len(who) == 1 for who in seen.values())


def test_the_live_stream_is_reproducible_and_refuses_no_contacts() -> None:
    assert _live(5, stretches=2) == _live(5, stretches=2)
    assert _live(5, stretches=1) != _live(5, stretches=1, seed=4)
    with pytest.raises(ValueError, match="contact"):
        next(live_events(0))
