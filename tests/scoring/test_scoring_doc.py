"""docs/scoring-model.md, claim by claim.

Each test is named after the section of the document whose example or number it
checks (the heading is in a comment above it), builds a small model (from the
document's own YAML snippets where it has one) and asserts exactly the numbers
the document states. Expected values are the document's, never the engine's.
"""

from __future__ import annotations

import json
import re
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from stream_scorer.cli import cli
from stream_scorer.errors import ModelError
from stream_scorer.events import Event
from stream_scorer.scoring import (
    ContactState,
    Effects,
    advance,
    alert_id,
    alert_payload,
    apply,
    explain,
)
from stream_scorer.scoring.model import ScoringModel, load_model, parse_duration, parse_model
from stream_scorer.times import epoch_ms

from ..support.scenario import event_at, feed

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "scoring-model.md").read_text(encoding="utf-8")
HEAD = "version: 1\nname: doc\n"

T0 = datetime(2026, 11, 1, tzinfo=UTC)
T0_MS = epoch_ms(T0)
SEC = 1_000
HOUR = 3_600_000
DAY = 86_400_000


# --- helpers -----------------------------------------------------------------------------


def fenced(lang: str) -> list[str]:
    return [body for tag, body in re.findall(r"```(\w*)\n(.*?)```", DOC, re.S) if tag == lang]


def snippet(first_line: str) -> str:
    """The one ```yaml block of the document that starts with ``first_line``."""
    found = [b for b in fenced("yaml") if b.startswith(first_line)]
    assert len(found) == 1, f"expected one yaml snippet starting {first_line!r}"
    return found[0]


def section(heading: str) -> str:
    """The prose of one section, up to the next heading."""
    start = DOC.index(heading + "\n")
    rest = DOC[start + len(heading) + 1 :]
    end = re.search(r"^#", rest, re.M)
    return rest[: end.start()] if end else rest


def model_of(body: str) -> ScoringModel:
    return parse_model(HEAD + body, "doc.yaml")


def as_rules(rule_snippet: str) -> str:
    return "rules:\n" + textwrap.indent(rule_snippet, "  ")


def ev(eid: str, type_: str, at: int = 0, contact: str = "c1", **props: Any) -> Event:
    """An event ``at`` milliseconds after T0."""
    return event_at(T0, eid, type_, at, contact, **props)


def upd(eid: str, at: int = 0, contact: str = "c1", **attrs: Any) -> Event:
    return ev(eid, "contact_updated", at, contact, **attrs)


def walk(
    model: ScoringModel, score: str, types: list[str]
) -> tuple[list[int], list[list[tuple[str, str]]]]:
    """Values after each event and the (tier, direction) crossings of each."""
    state = ContactState()
    values, crossings = [], []
    for i, type_ in enumerate(types):
        state, effects = apply(state, ev(f"w{i}", type_, i * SEC), model)
        values.append(state.values[score])
        crossings.append([(c.tier, c.direction) for c in effects.crossings])
    return values, crossings


def problems_of(text: str) -> list[str]:
    with pytest.raises(ModelError) as info:
        parse_model(text, "doc.yaml")
    return info.value.problems


def reasons(effects: Effects) -> list[str]:
    return [r.reason for r in effects.refused]


def test_every_yaml_snippet_is_covered_below() -> None:
    firsts = sorted(b.splitlines()[0].split(":")[0] for b in fenced("yaml"))
    assert firsts == sorted(["scores", "- id", "- id", "where", "gates", "class_digit", "grade"]), (
        "a new snippet in the document needs a test here"
    )


# =========================================================================================
# The scoring model
# =========================================================================================


# The scoring model: the model check error message example
def test_the_scoring_model_check_error_message_format() -> None:
    (example,) = fenced("")
    expected = example.strip()
    assert expected.startswith("rules[3].expires (line 27): '9O d'")
    rule = "  - id: r{i}\n    score: s\n    on: {{type: x}}\n    points: 1\n"
    lines = [
        *HEAD.splitlines(),  # 1-2
        "scores: {s: {}}",  # 3
        "rules:",  # 4
        *"".join(rule.format(i=i) for i in range(3)).splitlines(),  # 5-16
        *[f"# padding {n}" for n in range(17, 22)],  # 17-21
        "  - id: r3",  # 22
        "    score: s",  # 23
        "    on:",  # 24
        "      type: x",  # 25
        "    points: 1",  # 26
        "    expires: 9O d",  # 27
    ]
    assert lines[26] == "    expires: 9O d"
    assert problems_of("\n".join(lines) + "\n") == [expected]


# The scoring model: `model check` exits 1 for an invalid model and 0 for a valid one
def test_the_scoring_model_check_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(HEAD + "scores: {s: {}}\n", encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        HEAD + "scores: {s: {}}\nrules:\n  - {id: r, score: s, on: {type: x}, "
        "points: 1, expires: 9O d}\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    ok = runner.invoke(cli, ["model", "check", str(good)])
    assert ok.exit_code == 0
    failed = runner.invoke(cli, ["model", "check", str(bad)])
    assert failed.exit_code == 1
    assert "rules[0].expires (line 5): '9O d' is not a duration" in failed.stderr


# The scoring model: "prints every problem" -- two mistakes in one score are two problems
def test_the_scoring_model_check_prints_every_problem() -> None:
    text = (
        HEAD + "scores:\n"  # 3
        "  s:\n"  # 4
        "    max: 100\n"  # 5
        "    thresholds:\n"  # 6
        "      - {name: low, at: 0}\n"  # 7: not above min
        "      - {name: high, at: 200}\n"  # 8: above max
    )
    problems = problems_of(text)
    assert len(problems) == 2, problems
    assert problems[0].startswith("scores.s.thresholds[0].at (line 7): 0 is not above")
    assert problems[1].startswith("scores.s.thresholds[1].at (line 8): 200 is above")


# The scoring model: "with its place and line" -- for a category named like the shipped
# example's `interest`
def test_the_scoring_model_check_place_of_a_category_problem() -> None:
    text = (
        HEAD + "scores:\n"  # 3
        "  engagement:\n"  # 4
        "    categories:\n"  # 5
        "      interest: {max: lots}\n"  # 6
    )
    (problem,) = problems_of(text)
    assert problem.startswith("scores.engagement.categories.interest.max (line 6): ")


# The scoring model: the shipped models
@pytest.mark.parametrize(
    "path",
    [
        "config/scoring.yaml",
        *sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("config/examples/*.yaml")),
    ],
)
def test_the_scoring_model_shipped_models_are_valid(path: str) -> None:
    assert path in DOC or path.startswith("config/examples/")
    assert load_model(ROOT / path).scores


# The scoring model: YAML 1.2, `on` stays a key
def test_the_scoring_model_yaml_12_on_stays_a_key() -> None:
    model = model_of(
        "scores: {s: {}}\nrules:\n  - id: r\n    score: s\n    on: {type: x}\n    points: 1\n"
    )
    assert [r.id for r in model.by_type["x"]] == ["r"]
    model = model_of(
        "scores: {s: {}}\nrules:\n  - {id: r, score: s, on: {type: x, where: "
        "{answer: yes}}, points: 1}\n"
    )
    match = model.by_id["r"].match
    assert match is not None
    assert match({"answer": "yes"}) is True  # `yes` is text, not true
    assert match({"answer": True}) is False


# =========================================================================================
# Top level
# =========================================================================================


# Top level: version >= 1, name pattern, at least one score
def test_top_level_required_keys() -> None:
    assert problems_of("version: 0\nname: m\nscores: {s: {}}\n")[0].startswith("version (line 1)")
    assert problems_of("version: 1\nname: -m\nscores: {s: {}}\n")[0].startswith("name (line 2)")
    assert problems_of("version: 1\nname: m\nscores: {}\n")[0].startswith("scores (line 3)")
    assert problems_of("version: 1\nname: m\n") == ["scores (line 1): Field required"]
    model = parse_model("version: 7\nname: A.b_c-9\nscores: {s: {}}\n")
    assert (model.name, model.version) == ("A.b_c-9", 7)


# Top level: `version` travels in every alert as `model_version`, `name` as `model`
def test_top_level_version_and_name_travel_in_alerts() -> None:
    model = parse_model(
        "version: 7\nname: my-model\nscores: {s: {thresholds: [{name: hot, at: 5}]}}\n"
        "rules:\n  - {id: r, score: s, on: {type: x}, points: 5}\n"
    )
    _, (effects,) = feed(model, [ev("e1", "x")])
    (crossing,) = effects.crossings
    alert = json.loads(alert_payload(crossing, model))
    assert (alert["model"], alert["model_version"]) == ("my-model", 7)


# Top level: unknown keys anywhere are errors
def test_top_level_unknown_keys_anywhere_are_errors() -> None:
    text = (
        "version: 1\n"  # 1
        "name: m\n"  # 2
        "typo: 1\n"  # 3
        "scores:\n"  # 4
        "  s:\n"  # 5
        "    mx: 100\n"  # 6
        "    categories: {c: {maxx: 5}}\n"  # 7
        "    thresholds: [{name: t, at: 5, rearm: 4}]\n"  # 8
        "rules:\n"  # 9
        "  - {id: r, score: s, on: {type: x, wher: {}}, points: 1, cap: {points: 5, pr: 1}}\n"
        "gates:\n"  # 11
        "  - {id: g, when: {a: 1}, score: [s]}\n"  # 12
        "class_digit: {attribute: a, classes: [{digit: 1, blow: 5}], mising: 0}\n"  # 13
    )
    problems = problems_of(text)
    for place in [
        "typo (line 3)",
        "scores.s.mx (line 6)",
        "scores.s.categories.c.maxx (line 7)",
        "scores.s.thresholds[0].rearm (line 8)",
        "rules[0].on.wher (line 10)",
        "rules[0].cap.pr (line 10)",
        "gates[0].score (line 12)",
        "class_digit.classes[0].blow (line 13)",
        "class_digit.mising (line 13)",
    ]:
        assert any(p.startswith(place + ": Extra inputs") for p in problems), place


# =========================================================================================
# Scores
# =========================================================================================

SCORES = snippet("scores:")
SCORES_RULES = """\
rules:
  - {id: act, score: engagement, category: behavior, on: {type: act}, points: 31}
  - {id: fit40, score: engagement, category: fit, when: {fit: strong}, points: 40}
  - {id: five, score: engagement, category: behavior, on: {type: five}, points: 5}
  - {id: ten, score: engagement, category: behavior, on: {type: ten}, points: 10}
  - {id: unsub, score: engagement, category: behavior, on: {type: unsubscribe}, points: -20,
     expires: 30d}
"""


def scores_model() -> ScoringModel:
    return model_of(SCORES + SCORES_RULES)


# Scores: the snippet parses
def test_scores_snippet_parses() -> None:
    spec = scores_model().spec.scores["engagement"]
    assert (spec.min, spec.max) == (0, 100)
    assert {k: (c.min, c.max) for k, c in spec.categories.items()} == {
        "behavior": (None, 50),
        "fit": (0, 50),
    }
    assert [(t.name, t.at, t.rearm) for t in spec.thresholds] == [("mql", 60, 50), ("sql", 85, 75)]


# Scores: "62 behaviour points and 40 fit points give min(62, 50) + 40 = 90"
def test_scores_62_behaviour_and_40_fit_give_90() -> None:
    model = scores_model()
    state, _ = feed(model, [ev("a", "act"), ev("b", "act", SEC), upd("u", 2 * SEC, fit="strong")])
    assert state.sums["engagement"] == {"behavior": 62, "fit": 40}
    assert state.values["engagement"] == 90
    out = explain(state, model)["engagement"]
    assert out.categories["behavior"] == {"raw": 62, "counted": 50, "max": 50}


# Scores: "an unsubscribe of -20 on a contact with 5 points shows 0, and the next +10 shows 0
# too (5 - 20 + 10 = -5), until the unsubscribe expires"
def test_scores_negative_points_are_remembered() -> None:
    model = scores_model()
    state, _ = feed(model, [ev("a", "five")])
    assert state.values["engagement"] == 5
    state, _ = feed(model, [ev("b", "unsubscribe", HOUR)], state)
    assert state.values["engagement"] == 0
    state, _ = feed(model, [ev("c", "ten", 2 * HOUR)], state)
    assert state.values["engagement"] == 0
    later, _ = advance(state, T0_MS + HOUR + 30 * DAY, model, "c1")
    assert later.values["engagement"] == 15


# Scores: checks -- max >= min; threshold names unique; `at` above min and at most max
def test_scores_checks() -> None:
    assert problems_of(HEAD + "scores: {s: {min: 5, max: 4}}\n") == [
        "scores.s (line 3): max (4) is below min (5)"
    ]
    dup = problems_of(HEAD + "scores: {s: {thresholds: [{name: a, at: 1}, {name: a, at: 2}]}}\n")
    assert dup == ["scores.s (line 3): duplicate threshold names: a"]
    at_min = problems_of(HEAD + "scores: {s: {min: 10, thresholds: [{name: a, at: 10}]}}\n")
    assert "not above the score's min 10" in at_min[0]
    over = problems_of(HEAD + "scores: {s: {max: 10, thresholds: [{name: a, at: 11}]}}\n")
    assert "above the score's max 10" in over[0]
    assert model_of("scores: {s: {min: 10, max: 11, thresholds: [{name: a, at: 11}]}}\n")


# =========================================================================================
# Thresholds
# =========================================================================================

WALK = """\
scores:
  s:
    thresholds: [{name: mql, at: 60, rearm_below: 50}]
rules:
  - {id: p58, score: s, on: {type: p58}, points: 58}
  - {id: p3, score: s, on: {type: p3}, points: 3}
  - {id: m6, score: s, on: {type: m6}, points: -6}
  - {id: p7, score: s, on: {type: p7}, points: 7}
  - {id: m13, score: s, on: {type: m13}, points: -13}
  - {id: p11, score: s, on: {type: p11}, points: 11}
"""


# Thresholds: "58 -> 61 crosses up, 61 -> 55 -> 62 is silent, 62 -> 49 crosses down,
# and 49 -> 60 crosses up again"
def test_thresholds_walk() -> None:
    values, crossings = walk(model_of(WALK), "s", ["p58", "p3", "m6", "p7", "m13", "p11"])
    assert values == [58, 61, 55, 62, 49, 60]
    assert crossings == [
        [],
        [("mql", "up")],
        [],
        [],
        [("mql", "down")],
        [("mql", "up")],
    ]


# Thresholds: `rearm_below` defaults to `at`; may not be above `at`
def test_thresholds_rearm_default_and_limit() -> None:
    model = model_of(WALK.replace(", rearm_below: 50", ""))
    values, crossings = walk(model, "s", ["p58", "p3", "m6"])
    assert values == [58, 61, 55]
    assert crossings == [[], [("mql", "up")], [("mql", "down")]]
    bad = problems_of(HEAD + "scores: {s: {thresholds: [{name: t, at: 5, rearm_below: 6}]}}\n")
    assert bad == ["scores.s.thresholds[0] (line 3): rearm_below (6) is above at (5)"]


# Thresholds: a fall is news too -- the down crossing is an alert with `direction: down`
def test_thresholds_down_crossing_is_an_alert() -> None:
    model = model_of(WALK)
    state, _ = feed(model, [ev("a", "p58"), ev("b", "p3", SEC)])
    state, (effects,) = feed(model, [ev("c", "m13", 2 * SEC)], state)
    (down,) = effects.crossings
    alert = json.loads(alert_payload(down, model))
    assert (alert["direction"], alert["value"], alert["previous"], alert["threshold"]) == (
        "down",
        48,
        61,
        60,
    )
    assert (alert["trigger"], alert["event_id"]) == ("event", "c")


MQL = "      - {name: mql, at: 60, rearm_below: 50}\n"
SQL = "      - {name: sql, at: 85, rearm_below: 75}\n"


# Thresholds: several tiers may cross on one event, reported in the order listed
def test_thresholds_several_tiers_in_listed_order() -> None:
    model = scores_model()
    events = [ev("a", "act"), ev("b", "act", SEC), upd("u", 2 * SEC, fit="strong")]
    _, effects = feed(model, events)
    assert not effects[0].crossings
    assert not effects[1].crossings
    assert [(c.tier, c.direction, c.value) for c in effects[2].crossings] == [
        ("mql", "up", 90),
        ("sql", "up", 90),
    ]
    assert MQL in SCORES
    assert SQL in SCORES
    reversed_model = model_of(
        SCORES.replace(MQL, "@").replace(SQL, MQL).replace("@", SQL) + SCORES_RULES
    )
    _, effects = feed(reversed_model, events)
    assert [c.tier for c in effects[2].crossings] == ["sql", "mql"]


# =========================================================================================
# Rules
# =========================================================================================


# Rules: ids unique, points never 0, exactly one of `on` or `when`
def test_rules_shape() -> None:
    base = HEAD + "scores: {s: {}}\nrules:\n"
    assert problems_of(
        base + "  - {id: a, score: s, on: {type: x}, points: 1}\n"
        "  - {id: a, score: s, on: {type: x}, points: 1}\n"
    ) == ["rules[1].id (line 6): duplicate rule id 'a'"]
    assert problems_of(base + "  - {id: a, score: s, on: {type: x}, points: 0}\n") == [
        "rules[0] (line 5): points must not be 0"
    ]
    for rule in [
        "{id: a, score: s, points: 1}",
        "{id: a, score: s, on: {type: x}, when: {b: 1}, points: 1}",
    ]:
        (problem,) = problems_of(base + f"  - {rule}\n")
        assert "exactly one of 'on'" in problem
    model = parse_model(base + "  - {id: a, score: s, on: {type: x}, points: -3}\n")
    assert model.by_id["a"].points == -3


# =========================================================================================
# Event rules
# =========================================================================================

EVENT_RULE = snippet("- id: pricing-page")


def event_rule_model() -> ScoringModel:
    return model_of(
        "scores:\n  engagement:\n    categories: {behavior: {}}\n"
        + as_rules(EVENT_RULE)
        + "  - {id: page-visit, score: engagement, category: behavior, on: {type: page_visit},"
        " points: 1}\n"
    )


# Event rules: the snippet -- 10 points for a pricing page, expiring 30 days after the event
def test_event_rules_snippet() -> None:
    model = event_rule_model()
    _, (effects,) = feed(model, [ev("v", "page_visit", url="https://acme.io/pricing")])
    pricing = [a for a in effects.awards if a.rule == "pricing-page"]
    assert [(a.points, a.category, a.expires_at) for a in pricing] == [
        (10, "behavior", T0_MS + 30 * DAY)
    ]


# Event rules: every matching rule is considered, in file order (a pricing page visit is
# also a page visit)
def test_event_rules_every_matching_rule_in_file_order() -> None:
    model = event_rule_model()
    state, (pricing, blog) = feed(
        model,
        [
            ev("a", "page_visit", url="https://acme.io/pricing"),
            ev("b", "page_visit", SEC, url="https://acme.io/blog"),
        ],
    )
    assert [a.rule for a in pricing.awards] == ["pricing-page", "page-visit"]
    assert [a.rule for a in blog.awards] == ["page-visit"]
    assert state.values["engagement"] == 12


# Event rules: once -- awarded at most once per contact, ever
def test_event_rules_once() -> None:
    model = model_of(
        "scores: {s: {}}\nrules:\n  - {id: demo, score: s, on: {type: demo}, points: 30, "
        "once: true}\n"
    )
    state, effects = feed(
        model, [ev("a", "demo"), ev("b", "demo", DAY), ev("c", "demo", 400 * DAY)]
    )
    assert state.values["s"] == 30
    assert [reasons(e) for e in effects] == [[], ["once"], ["once"]]
    other, _ = feed(model, [ev("a", "demo", contact="c2")])
    assert other.values["s"] == 30  # per contact


# Event rules: expires 90d -- drops out 90 days after the event's time; an event so old its
# award would already have expired awards nothing
def test_event_rules_expires() -> None:
    model = model_of(
        "scores: {s: {}}\nrules:\n  - {id: r, score: s, on: {type: x}, points: 8, expires: 90d}\n"
        "  - {id: y, score: s, on: {type: y}, points: 1}\n"
    )
    state, _ = feed(model, [ev("a", "x")])
    before, _ = advance(state, T0_MS + 90 * DAY - 1, model, "c1")
    assert before.values["s"] == 8
    after, _ = advance(state, T0_MS + 90 * DAY, model, "c1")
    assert after.values["s"] == 0
    state, (_, old) = feed(model, [ev("now", "y", 100 * DAY), ev("old", "x", 5 * DAY)])
    assert reasons(old) == ["expired"]
    assert state.values["s"] == 1


# Event rules: late -- older than the rule's window (the longest of cap.per, burst,
# frequency.within) behind the contact's newest event
def test_event_rules_late() -> None:
    model = model_of(
        "scores: {s: {}}\nrules:\n"
        "  - {id: r, score: s, on: {type: x}, points: 1, cap: {occurrences: 5, per: 2d},"
        " burst: 10s, frequency: {count: 2, within: 5d}}\n"
        "  - {id: y, score: s, on: {type: y}, points: 1}\n"
    )
    state, _ = feed(model, [ev("newest", "y", 10 * DAY)])
    _, (late,) = feed(model, [ev("a", "x", 5 * DAY)], state)
    assert reasons(late) == ["late"]  # 5d behind: the 5d window
    _, (inside,) = feed(model, [ev("b", "x", 5 * DAY + 1)], state)
    assert reasons(inside) == ["frequency"]


# Event rules: burst 10s -- the same rule for the same contact within 10 s of a counted
# event counts once
def test_event_rules_burst() -> None:
    model = model_of(
        "scores: {s: {}}\nrules:\n  - {id: click, score: s, on: {type: click}, points: 3,"
        " burst: 10s}\n"
    )
    state, effects = feed(
        model,
        [
            ev("a", "click", 0),
            ev("b", "click", 2 * SEC),  # a double click
            ev("c", "click", 9 * SEC),  # still within 10 s of a
            ev("e", "click", 30 * SEC),
        ],
    )
    assert [reasons(e) for e in effects] == [[], ["burst"], ["burst"], []]
    assert state.values["s"] == 6
    other, (theirs,) = feed(model, [ev("d", "click", 3 * SEC, contact="c2")])
    assert not theirs.refused  # another contact's click is not a burst of c1's
    assert other.values["s"] == 3


# Event rules: frequency {count: 3, within: 7d} -- award only when the 3rd matching event
# within 7 days arrives; the matches used are then spent
def test_event_rules_frequency() -> None:
    model = model_of(
        "scores: {s: {}}\nrules:\n  - {id: r, score: s, on: {type: session}, points: 8,"
        " frequency: {count: 3, within: 7d}}\n"
    )
    days = [0, 2, 4, 5, 6, 7]
    state, effects = feed(model, [ev(f"d{d}", "session", d * DAY) for d in days])
    assert [[a.points for a in e.awards] for e in effects] == [[], [], [8], [], [], [8]]
    assert [reasons(e) for e in effects][:2] == [["frequency"], ["frequency"]]
    assert state.values["s"] == 16
    spread, effects = feed(model, [ev(f"s{d}", "session", d * DAY) for d in (0, 4, 8)])
    assert reasons(effects[2]) == ["frequency"]  # day 0 is 8 days before day 8
    assert spread.values["s"] == 0


# Event rules: frequency -- "time-based rules use each event's own time": three sessions
# within 7 days arriving out of order are the 3rd matching event within 7 days
def test_event_rules_frequency_uses_event_time() -> None:
    model = model_of(
        "scores: {s: {}}\nrules:\n  - {id: r, score: s, on: {type: session}, points: 8,"
        " frequency: {count: 3, within: 7d}}\n"
    )
    state, effects = feed(
        model,
        [ev("d1", "session", 1 * DAY), ev("d2", "session", 2 * DAY), ev("d0", "session", 0)],
    )
    assert [a.points for a in effects[2].awards] == [8]
    assert state.values["s"] == 8


# Event rules: cap {points: 10, per: 30d} -- at most 10 points in any rolling 30 days; an
# award that would overflow is cut to what is left
def test_event_rules_points_cap() -> None:
    model = model_of(
        "scores: {s: {}}\nrules:\n  - {id: r, score: s, on: {type: x}, points: 4,"
        " cap: {points: 10, per: 30d}}\n"
    )
    state, effects = feed(model, [ev(f"e{i}", "x", i * DAY) for i in range(4)])
    assert [[a.points for a in e.awards] for e in effects] == [[4], [4], [2], []]
    assert reasons(effects[3]) == ["cap"]
    assert state.values["s"] == 10


# Event rules: cap {occurrences: 3, per: 7d} -- at most 3 awards in any rolling 7 days
def test_event_rules_occurrences_cap() -> None:
    model = model_of(
        "scores: {s: {}}\nrules:\n  - {id: r, score: s, on: {type: x}, points: 1,"
        " cap: {occurrences: 3, per: 7d}}\n"
    )
    state, effects = feed(model, [ev(f"e{d}", "x", d * DAY) for d in (0, 1, 2, 3, 7)])
    assert [reasons(e) for e in effects] == [[], [], [], ["cap"], []]
    assert state.values["s"] == 4


# Event rules: cap {points: 30} -- without `per`, at most 30 points ever
def test_event_rules_lifetime_cap() -> None:
    model = model_of(
        "scores: {s: {}}\nrules:\n  - {id: r, score: s, on: {type: x}, points: 12,"
        " cap: {points: 30}}\n"
    )
    state, effects = feed(model, [ev(f"e{d}", "x", d * 100 * DAY) for d in range(4)])
    assert [[a.points for a in e.awards] for e in effects] == [[12], [12], [6], []]
    assert state.values["s"] == 30


# Event rules: the checks run in the order of the table
def test_event_rules_check_order() -> None:
    model = model_of(
        "scores: {s: {}}\nrules:\n"
        "  - {id: o, score: s, on: {type: o}, points: 1, once: true, expires: 1d}\n"
        "  - {id: e, score: s, on: {type: e}, points: 1, expires: 1d, burst: 2d}\n"
        "  - {id: b, score: s, on: {type: b}, points: 1, burst: 1h,"
        " frequency: {count: 2, within: 1d}}\n"
        "  - {id: f, score: s, on: {type: f}, points: 1, frequency: {count: 2, within: 1d},"
        " cap: {occurrences: 1, per: 1d}}\n"
        "  - {id: l, score: s, on: {type: l}, points: 1, burst: 2d,"
        " cap: {occurrences: 5, per: 3d}}\n"
    )
    state, _ = feed(
        model, [ev("o1", "o", 10 * DAY), ev("e1", "e", 10 * DAY), ev("l1", "l", 8 * DAY)]
    )
    state, (l2,) = feed(model, [ev("l2", "l", 10 * DAY)], state)
    assert not l2.refused  # 2d after l1 is not within 2d
    state, effects = feed(
        model,
        [
            ev("o2", "o", 0),  # once; also expired (1d <= 10d)
            ev("e2", "e", 7 * DAY),  # expired (8d <= 10d); also late (7d <= 10d - 2d), burst
            ev("e3", "e", 8 * DAY + 12 * HOUR),  # expired (9.5d); also burst (1.5d from e1)
            ev("l3", "l", 7 * DAY),  # late (7d <= 10d - 3d); also burst (1d from l1)
        ],
        state,
    )
    assert [reasons(e) for e in effects] == [["once"], ["expired"], ["expired"], ["late"]]
    state, effects = feed(
        model,
        [
            ev("b1", "b", 10 * DAY),
            ev("b2", "b", 10 * DAY + SEC),
            ev("b3", "b", 10 * DAY + 2 * HOUR),
        ],
        state,
    )
    # b2: burst, not counted toward the frequency; b3 is then the 2nd
    assert [reasons(e) for e in effects] == [["frequency"], ["burst"], []]
    state, effects = feed(
        model,
        [
            ev("f1", "f", 10 * DAY),
            ev("f2", "f", 10 * DAY + HOUR),
            ev("f3", "f", 10 * DAY + 2 * HOUR),
        ],
        state,
    )
    assert [reasons(e) for e in effects] == [["frequency"], [], ["frequency"]]


# Event rules: caps hold in every window, even when events arrive out of order
def test_event_rules_caps_hold_out_of_order() -> None:
    model = model_of(
        "scores: {s: {}}\nrules:\n  - {id: r, score: s, on: {type: x}, points: 1,"
        " cap: {occurrences: 3, per: 7d}}\n"
    )
    state, effects = feed(model, [ev(f"e{d}", "x", d * DAY) for d in (3, 6, 9)])
    assert not any(e.refused for e in effects)  # (2d, 9d] holds 3d, 6d, 9d
    # 2.5d is within the 7d window of the clock (9d); the window ending at 2.5d holds
    # nothing, but (2d, 9d] would hold 2.5d, 3d, 6d, 9d = 4
    state, (late,) = feed(model, [ev("e2.5", "x", 2 * DAY + 12 * HOUR)], state)
    assert reasons(late) == ["cap"]
    assert state.values["s"] == 3


# Event rules: caps apply to rules that add points; once rules need no cap
def test_event_rules_cap_only_on_positive_repeatable_rules() -> None:
    base = HEAD + "scores: {s: {}}\nrules:\n"
    assert problems_of(
        base + "  - {id: a, score: s, on: {type: x}, points: -1, cap: {points: 5}}\n"
    ) == ["rules[0] (line 5): a cap limits positive points; this rule subtracts"]
    assert problems_of(
        base + "  - {id: a, score: s, on: {type: x}, points: 1, once: true, cap: {points: 5}}\n"
    ) == ["rules[0] (line 5): a one-time rule needs no cap"]


# Event rules: durations -- ms, s, m, h, d or w, combined as in 1d12h, or seconds
def test_event_rules_durations() -> None:
    assert parse_duration("250ms") == 250
    assert parse_duration("10s") == 10 * SEC
    assert parse_duration("15m") == 15 * 60 * SEC
    assert parse_duration("12h") == 12 * HOUR
    assert parse_duration("90d") == 90 * DAY
    assert parse_duration("2w") == 14 * DAY
    assert parse_duration("1d12h") == 36 * HOUR
    assert parse_duration(30) == 30 * SEC
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration("9O d")


# =========================================================================================
# Attribute (fit) rules
# =========================================================================================

ATTRIBUTE_RULE = snippet("- id: vp-title")


def attribute_model() -> ScoringModel:
    return model_of(
        "scores:\n  engagement:\n    categories: {fit: {}}\n"
        + as_rules(ATTRIBUTE_RULE)
        + "  - {id: has-phone, score: engagement, category: fit, when: {phone: {exists: true}},"
        " points: 5}\n"
    )


# Attribute (fit) rules: the snippet -- 15 points while the title contains VP
def test_attribute_fit_rules_snippet() -> None:
    model = attribute_model()
    state, _ = feed(model, [upd("u", job_title="Senior vp, Sales")])
    assert state.values["engagement"] == 15


# Attribute (fit) rules: the award appears or is withdrawn; it is never accumulated
def test_attribute_fit_rules_appear_withdraw_never_accumulate() -> None:
    model = attribute_model()
    titles = ["VP Sales", "VP Sales", "VP Marketing", "Engineer", "VP Sales"]
    state = ContactState()
    values = []
    for i, title in enumerate(titles):
        state, _ = apply(state, upd(f"u{i}", i * SEC, job_title=title), model)
        values.append(state.values["engagement"])
    assert values == [15, 15, 15, 0, 15]


# Attribute (fit) rules: cannot have once, expires, cap, burst or frequency
def test_attribute_fit_rules_cannot_have_event_keys() -> None:
    rule = (
        "{id: a, score: s, when: {t: 1}, points: 5, once: true, expires: 1d, cap: {points: 5},"
        " burst: 1s, frequency: {count: 2, within: 1d}}"
    )
    assert problems_of(HEAD + f"scores: {{s: {{}}}}\nrules:\n  - {rule}\n") == [
        "rules[0] (line 5): an attribute rule follows current attributes and cannot have "
        "once, expires, cap, burst, frequency"
    ]


# Attribute (fit) rules: the contact_updated example -- sets job_title, null removes phone
def test_attribute_fit_rules_contact_updated_example() -> None:
    (example,) = fenced("json")
    event = Event.model_validate_json(example)
    assert event.type == "contact_updated"
    model = attribute_model()
    state, _ = feed(model, [upd("u-1", 0, contact="c-42", phone="555")])
    assert state.values["engagement"] == 5
    state, effects = apply(state, event, model)
    assert state.attributes == {"job_title": "VP Sales"}
    assert [a.rule for a in effects.awards] == ["vp-title"]
    assert [a.rule for a in effects.withdrawn] == ["has-phone"]
    assert state.values["engagement"] == 15


# Attribute (fit) rules: an update older than the value it would replace is ignored
def test_attribute_fit_rules_late_update_never_wins() -> None:
    model = attribute_model()
    state, _ = feed(
        model, [upd("new", HOUR, job_title="VP Sales"), upd("old", 0, job_title="Intern")]
    )
    assert state.attributes["job_title"] == "VP Sales"
    assert state.values["engagement"] == 15


# =========================================================================================
# Conditions
# =========================================================================================


def condition_matchers() -> list[Any]:
    lines = [line for line in snippet("where:").splitlines() if line.startswith("where:")]
    rules = "".join(
        f"  - id: r{i}\n    score: s\n    points: 1\n    on:\n      type: x\n      {line}\n"
        for i, line in enumerate(lines)
    )
    model = model_of("scores: {s: {}}\nrules:\n" + rules)
    return [model.by_id[f"r{i}"].match for i in range(len(lines))]


# Conditions: every snippet line parses, and each means what its comment says
def test_conditions_snippets() -> None:
    m = condition_matchers()
    assert len(m) == 8
    equality, glob, several_ops, several_props, any_, all_, not_, dotted = m
    assert equality({"form_id": "newsletter"})
    assert not equality({"form_id": "other"})
    assert glob({"url": "https://a.io/Pricing/x"})
    assert not glob({"url": "https://a.io/blog"})
    assert several_ops({"company_size": 200})
    assert several_ops({"company_size": 4999})
    assert not several_ops({"company_size": 5000})
    assert not several_ops({"company_size": 199})
    assert several_props({"country": "CA", "age": 18})
    assert not several_props({"country": "CA", "age": 17})
    assert not several_props({"country": "GB", "age": 40})
    assert any_({"seniority": "executive"})
    assert any_({"job_title": "vp marketing"})
    assert not any_({"seniority": "manager", "job_title": "Engineer"})
    assert all_({"a": 1, "b": 2})
    assert not all_({"a": 1, "b": 1})
    assert not_({"form_id": "demo"})
    assert not not_({"form_id": "consultation"})
    assert dotted({"utm": {"source": "linkedin"}})
    assert not dotted({"utm": {"source": "x"}})


# Conditions: the operator table
def test_conditions_operators() -> None:
    def holds(cond: str, data: dict[str, Any]) -> bool:
        model = model_of(
            f"scores: {{s: {{}}}}\nrules:\n  - {{id: r, score: s, on: {{type: x, "
            f"where: {cond}}}, points: 1}}\n"
        )
        match = model.by_id["r"].match
        assert match is not None
        return match(data)

    assert holds("{n: 50}", {"n": 50.0})  # numbers compare as numbers
    assert holds("{n: {equals: 50.0}}", {"n": 50})
    assert holds("{c: {in: [US, CA]}}", {"c": "US"})
    assert not holds("{c: {in: [US]}}", {})
    assert holds("{c: {not_in: [US]}}", {"c": "GB"})
    assert holds("{c: {not_in: [US]}}", {})
    assert not holds("{c: {not_in: [US]}}", {"c": "US"})
    assert holds("{t: {contains: vp}}", {"t": "SVP Sales"})  # ignoring case
    assert holds("{t: {contains: vp}}", {"t": ["VP", "x"]})
    assert not holds("{t: {contains: vp}}", {"t": ["SVP"]})  # a list needs an equal element
    assert holds("{u: {glob: '*/PRICING*'}}", {"u": "/pricing"})
    assert holds("{u: {glob: 'a?[a-z]'}}", {"u": "abc"})
    assert not holds("{u: {regex: 'VP'}}", {"u": "vp"})  # case as written
    assert holds("{u: {regex: '(?i)VP'}}", {"u": "vp"})
    assert holds("{a: {gt: 33}}", {"a": "34"})  # numeric text
    assert holds("{a: {gte: 34, lte: 34, lt: 35}}", {"a": 34})
    assert not holds("{a: {gt: 0}}", {"a": "many"})
    assert holds("{p: {exists: true}}", {"p": ""})
    assert not holds("{p: {exists: true}}", {"p": None})
    assert holds("{p: {exists: false}}", {"p": None})
    assert holds("{p: {exists: false}}", {})


# Conditions: a missing property satisfies nothing but `exists: false`, `not_in` and
# negations
def test_conditions_missing_property() -> None:
    conditions = {
        "{p: {exists: false}}": True,
        "{p: {not_in: [a]}}": True,
        "{not: {p: a}}": True,
        "{p: a}": False,
        "{p: {in: [a]}}": False,
        "{p: {contains: a}}": False,
        "{p: {glob: '*'}}": False,
        "{p: {regex: '.*'}}": False,
        "{p: {gte: 0}}": False,
        "{p: {lte: 0}}": False,
        "{p: {exists: true}}": False,
    }
    rules = "".join(
        f"  - {{id: r{i}, score: s, on: {{type: x, where: {c}}}, points: 1}}\n"
        for i, c in enumerate(conditions)
    )
    model = model_of("scores: {s: {}}\nrules:\n" + rules)
    _, (effects,) = feed(model, [ev("e", "x")])
    awarded = {a.rule for a in effects.awards}
    assert {f"r{i}" for i, ok in enumerate(conditions.values()) if ok} == awarded


# Conditions: a malformed condition is a model error with its place
def test_conditions_malformed_is_a_model_error() -> None:
    text = (
        HEAD + "scores: {s: {}}\n"  # 3
        "rules:\n"  # 4
        "  - {id: a, score: s, on: {type: x, where: {url: {globe: '*'}}}, points: 1}\n"  # 5
        "  - {id: b, score: s, when: {email: {regex: '(gmail'}}, points: 1}\n"  # 6
        "gates:\n"  # 7
        "  - {id: g, when: {age: {gte: adult}}}\n"  # 8
    )
    problems = problems_of(text)
    assert len(problems) == 3
    assert problems[0].startswith("rules[0].on.where (line 5): url.globe: unknown operator")
    assert problems[1].startswith("rules[1].when (line 6): email.regex: '(gmail' is not a valid")
    assert problems[2] == "gates[0].when (line 8): age.gte: expected a number, got 'adult'"


# =========================================================================================
# Gates
# =========================================================================================

GATES = snippet("gates:")
GATE_MODEL = (
    """\
scores:
  engagement:
    thresholds: [{name: mql, at: 50}]
  fit:
    thresholds: [{name: good, at: 50}]
rules:
  - {id: e60, score: engagement, on: {type: e60}, points: 60}
  - {id: f60, score: fit, on: {type: f60}, points: 60}
"""
    + GATES
)


# Gates: while a gate fails no tier crosses up; failing crosses down; passing again crosses
# up at that moment
def test_gates_block_and_release() -> None:
    model = model_of(GATE_MODEL)
    state, (e1,) = feed(model, [ev("a", "e60")])
    assert state.values["engagement"] == 60
    assert not e1.crossings  # age and country missing
    state, (e2,) = feed(model, [upd("u1", SEC, age=30)], state)
    assert not e2.crossings  # in-region still fails for engagement
    state, (e3,) = feed(model, [upd("u2", 2 * SEC, country="US")], state)
    assert [(c.tier, c.direction, c.cause) for c in e3.crossings] == [("mql", "up", "u2")]
    state, (e4,) = feed(model, [upd("u3", 3 * SEC, country="GB")], state)
    assert [(c.tier, c.direction, c.value) for c in e4.crossings] == [("mql", "down", 60)]
    state, (e5,) = feed(model, [upd("u4", 4 * SEC, country="CA")], state)
    assert [(c.tier, c.direction) for c in e5.crossings] == [("mql", "up")]


# Gates: `scores` limits a gate to some scores (default: all)
def test_gates_scores_limit() -> None:
    model = model_of(GATE_MODEL)
    _, (_, e1) = feed(model, [upd("u", 0, age=30, country="GB"), ev("a", "f60", SEC)])
    assert [(c.score, c.tier) for c in e1.crossings] == [("fit", "good")]  # in-region not on fit
    young, _ = feed(model, [upd("v", 0, age=12)])
    _, (blocked,) = feed(model, [ev("b", "f60", SEC)], young)
    assert not blocked.crossings  # adult applies to every score


# Gates: 100-point blocks -- only a lead meeting all three must-haves can reach 300
def test_gates_100_point_blocks_example() -> None:
    model = load_model(ROOT / "config" / "examples" / "gate-blocks-class-digit.yaml")
    behaviour = [ev("d", "demo_request", 0)] + [
        ev(f"p{i}", "page_visit", (i + 1) * SEC, url="https://acme.io/pricing") for i in range(4)
    ]
    state, effects = feed(model, [upd("u1", 0, age=30, country="US"), *behaviour])
    assert state.values["lead"] == 299  # 200 + behaviour 100 held at 99
    assert not any(e.crossings for e in effects)
    state, (e,) = feed(model, [upd("u2", 10 * SEC, budget=5000, company_size=500)], state)
    assert state.values["lead"] == 399
    assert [(c.tier, c.direction, c.value, c.display) for c in e.crossings] == [
        ("sales_ready", "up", 399, 2399)
    ]


# =========================================================================================
# Class digit
# =========================================================================================

CLASS_DIGIT = snippet("class_digit:")
DIGIT_MODEL = (
    """\
scores:
  lead:
    max: 999
    thresholds: [{name: ready, at: 90}]
  other: {}
rules:
  - {id: r, score: lead, on: {type: x}, points: 89}
  - {id: one, score: lead, on: {type: one}, points: 1}
"""
    + CLASS_DIGIT
)


# Class digit: a medium business scoring 89 displays as 2089
def test_class_digit_2089() -> None:
    model = model_of(DIGIT_MODEL)
    state, _ = feed(model, [upd("u", 0, company_size=200), ev("a", "x", SEC)])
    assert state.values["lead"] == 89
    assert explain(state, model)["lead"].display == 2089
    assert model.display("other", 89, state.attributes) == 89  # scores: [lead]


# Class digit: classes in order, the first whose `below` is above the attribute wins;
# `missing` when the attribute is missing or not a number
def test_class_digit_classes_and_missing() -> None:
    model = model_of(DIGIT_MODEL)
    assert [model.class_digit({"company_size": n}) for n in (0, 49, 50, 999, 1000, 10**6)] == [
        1,
        1,
        2,
        2,
        3,
        3,
    ]
    assert model.class_digit({}) == 0
    assert model.class_digit({"company_size": "unknown"}) == 0
    assert model.class_digit({"company_size": None}) == 0


# Class digit: `missing` is used when the attribute is "not a number" -- also for the text
# NaN, which the numeric condition operators also treat as not a number
def test_class_digit_nan_is_not_a_number() -> None:
    model = model_of(DIGIT_MODEL)
    assert model.class_digit({"company_size": "NaN"}) == 0
    assert model.display("lead", 89, {"company_size": "nan"}) == 89


# Class digit: a score shown with a class digit must have min >= 0 and max <= 999
def test_class_digit_range_check() -> None:
    problems = problems_of(HEAD + "scores:\n  lead: {max: 1000}\n" + CLASS_DIGIT)
    assert problems == [
        "scores.lead (line 4): a score shown with a class digit needs min >= 0 and max <= 999"
    ]


# Class digit: the digit changes only the display; thresholds compare the value
def test_class_digit_thresholds_compare_the_value() -> None:
    model = model_of(DIGIT_MODEL)
    state, (_, e1) = feed(model, [upd("u", 0, company_size=200), ev("a", "x", SEC)])
    assert not e1.crossings  # display 2089 is not 90
    _, (e2,) = feed(model, [ev("b", "one", 2 * SEC)], state)
    assert [(c.value, c.display) for c in e2.crossings] == [(90, 2090)]


# =========================================================================================
# Grade
# =========================================================================================

GRADE = snippet("grade:")
GRADE_MODEL = (
    """\
scores:
  fit: {max: 100}
  engagement: {max: 100}
"""
    + GRADE
)


# Grade: fit 80 and engagement 40 is A2; A1 is the best, D3 the worst
def test_grade_a2() -> None:
    model = model_of(
        GRADE_MODEL + "rules:\n"
        "  - {id: f, score: fit, when: {title: {contains: chief}}, points: 80}\n"
        "  - {id: e, score: engagement, on: {type: webinar}, points: 20}\n"
    )
    state, _ = feed(
        model, [upd("u", 0, title="Chief"), ev("a", "webinar"), ev("b", "webinar", SEC)]
    )
    assert state.values == {"fit": 80, "engagement": 40}
    assert model.grade(state.values) == "A2"
    assert model.grade({"fit": 100, "engagement": 100}) == "A1"
    assert model.grade({"fit": 0, "engagement": 0}) == "D3"


# Grade: bands in decreasing order of `at`; the last band has no `at`
def test_grade_bands_checks() -> None:
    swapped = GRADE.replace(
        "{at: 75, label: A}, {at: 50, label: B}", "{at: 50, label: B}, {at: 75, label: A}"
    )
    assert (
        "bands must be in decreasing order"
        in problems_of(HEAD + GRADE_MODEL.replace(GRADE, swapped))[0]
    )
    closed = GRADE.replace('{label: "3"}', '{at: 0, label: "3"}')
    assert (
        "the last band must omit 'at'" in problems_of(HEAD + GRADE_MODEL.replace(GRADE, closed))[0]
    )


# =========================================================================================
# Expiry and time
# =========================================================================================

EXPIRY = """\
scores:
  s:
    thresholds:
      - {name: warm, at: 10}
      - {name: hot, at: 20}
rules:
  - {id: r, score: s, on: {type: x}, points: 10, expires: 1d}
  - {id: y, score: s, on: {type: y}, points: 1}
"""


# Expiry and time: each award drops out at event time + expires, in the event's own time
def test_expiry_and_time_event_time_plus_expires() -> None:
    model = model_of(EXPIRY)
    event = Event.model_validate(
        {
            "event_id": "a",
            "contact_id": "c1",
            "type": "x",
            "occurred_at": "2026-11-28T14:00:00+02:00",
        }
    )
    _, effects = apply(ContactState(), event, model)
    (award,) = effects.awards
    noon = datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert award.at == epoch_ms(noon)
    assert award.expires_at == epoch_ms(noon + timedelta(days=1))


# Expiry and time: one expiry instant at a time, cause expired@<ms>, the same however often
# or late the worker checks
def test_expiry_and_time_stable_causes() -> None:
    model = model_of(EXPIRY)
    state, _ = feed(model, [ev("a", "x", 0), ev("b", "x", 6 * HOUR)])
    assert state.tiers == {"s": ["warm", "hot"]}
    first, second = T0_MS + DAY, T0_MS + DAY + 6 * HOUR
    expected = [("hot", f"expired@{first}"), ("warm", f"expired@{second}")]

    _, once = advance(state, T0_MS + 90 * DAY, model, "c1")
    assert [(c.tier, c.cause) for c in once.crossings] == expected

    often = state
    ids = []
    for minute in range(0, 2 * 24 * 60, 7):
        often, effects = advance(often, T0_MS + minute * 60_000, model, "c1")
        ids += [alert_id(c, model) for c in effects.crossings]
    assert ids == [alert_id(c, model) for c in once.crossings]

    _, (by_event,) = feed(model, [ev("later", "y", 30 * DAY)], state)
    assert [(c.tier, c.cause) for c in by_event.crossings] == expected
    assert [alert_id(c, model) for c in by_event.crossings] == ids


# =========================================================================================
# Duplicates and order
# =========================================================================================


# Duplicates and order: the same event twice awards nothing and emits no alert
def test_duplicates_and_order_same_event_twice() -> None:
    model = model_of(EXPIRY)
    event = ev("a", "x")
    state, first = apply(ContactState(), event, model)
    assert [c.tier for c in first.crossings] == ["warm"]
    again, second = apply(state, event, model)
    assert second.duplicate is True
    assert not second.awards
    assert not second.crossings
    assert again.values == {"s": 10}


# =========================================================================================
# Explanations
# =========================================================================================


# Explanations: live awards (rule, points, event id, awarded and expiry times), category
# raw and counted sums, tiers active and gates' results; alerts carry the largest awards
def test_explanations() -> None:
    model = model_of(SCORES + SCORES_RULES + "gates:\n  - {id: adult, when: {age: {gte: 18}}}\n")
    state, effects = feed(
        model,
        [
            upd("u", 0, fit="strong", age=40),
            ev("a", "act", SEC),
            ev("f", "five", 2 * SEC),
            ev("b", "act", 3 * SEC),
        ],
    )
    out = explain(state, model)["engagement"]
    assert out.value == 90  # behaviour 67 held at 50, fit 40
    assert out.tiers == ["mql", "sql"]
    assert out.gates == {"adult": True}
    assert out.categories == {
        "behavior": {"raw": 67, "counted": 50, "max": 50},
        "fit": {"raw": 40, "counted": 40, "max": 50},
    }
    assert [(a.rule, a.points, a.event_id, a.at, a.expires_at) for a in out.awards] == [
        ("fit40", 40, "u", T0_MS, None),
        ("act", 31, "a", T0_MS + SEC, None),
        ("five", 5, "f", T0_MS + 2 * SEC, None),
        ("act", 31, "b", T0_MS + 3 * SEC, None),
    ]
    (crossing,) = effects[3].crossings  # 90: sql up (mql crossed at 71 on "a")
    assert (crossing.tier, crossing.direction) == ("sql", "up")
    alert = json.loads(alert_payload(crossing, model))
    assert [(r["rule"], r["points"]) for r in alert["reasons"]] == [
        ("fit40", 40),
        ("act", 31),
        ("act", 31),
    ]
