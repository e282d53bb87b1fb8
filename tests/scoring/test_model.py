"""The model language: loading, validation, problem places/lines, compiling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stream_scorer.errors import ModelError, ScorerError
from stream_scorer.events import CONTACT_UPDATED
from stream_scorer.scoring.model import ScoringModel, load_model, parse_duration, parse_model

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = ROOT / "config" / "scoring.yaml"
EXAMPLES = sorted((ROOT / "config" / "examples").glob("*.yaml"))

HEAD = "version: 1\nname: m\n"

# Line numbers are 1-based and written next to each line for the assertions below.
GOOD = """\
version: 3
name: test-model
scores:
  engagement:
    max: 100
    categories: {behavior: {max: 50}, fit: {min: 0, max: 50}}
    thresholds: [{name: mql, at: 50, rearm_below: 40}]
  fit: {min: -10}
rules:
  - {id: open, score: engagement, category: behavior, on: {type: email_open}, points: 1}
  - {id: open-fit, score: fit, on: {type: email_open}, points: 2}
  - {id: vp, score: engagement, category: fit, when: {job_title: {contains: VP}}, points: 15}
  - {id: unsub, score: engagement, on: {type: unsubscribe}, points: -20, expires: 30d}
  - id: capped
    score: engagement
    on: {type: page_visit, where: {url: {glob: "*/pricing*"}}}
    points: 4
    cap: {points: 10, per: 7d}
    burst: 10s
    frequency: {count: 2, within: 1d}
  - {id: trial, score: engagement, on: {type: trial_signup}, points: 25, once: true}
gates:
  - {id: adult, when: {age: {gte: 18}}}
  - {id: us, when: {country: US}, scores: [fit]}
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(ModelError) as info:
        parse_model(text, "test.yaml")
    assert info.value.path == "test.yaml"
    return info.value.problems


def only_problem(text: str) -> str:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    return problems[0]


def with_rule(rule: str) -> str:
    """A model with one score ``s`` (category ``c``) and the given flow-style rule on line 5."""
    return HEAD + "scores: {s: {categories: {c: {}}}}\nrules:\n  - " + rule + "\n"


# --- the shipped models ---------------------------------------------------------------


def test_load_default_model() -> None:
    model = load_model(DEFAULT_MODEL)
    assert model.name == "b2b-default"
    assert model.version == 1
    assert len(model.spec.rules) == 24
    spec = model.spec.scores["engagement"]
    assert (spec.min, spec.max) == (0, 100)
    assert [(t.name, t.at, t.rearm) for t in spec.thresholds] == [("mql", 60, 50), ("sql", 85, 75)]
    assert [r.id for r in model.by_type["email_open"]] == ["email-open"]
    assert [r.id for r in model.by_type["page_visit"]] == [
        "page-visit",
        "pricing-page",
        "careers-page",
    ]
    assert len(model.attribute_rules) == 7
    assert [gid for gid, _ in model.gates] == ["service-region", "not-competitor"]


@pytest.mark.parametrize("path", [DEFAULT_MODEL, *EXAMPLES], ids=lambda p: p.name)
def test_every_shipped_model_loads(path: Path) -> None:
    model = load_model(path)
    assert isinstance(model, ScoringModel)
    assert model.scores


def test_the_examples_are_the_two_documented_ones() -> None:
    assert [p.name for p in EXAMPLES] == [
        "fit-engagement-grade.yaml",
        "gate-blocks-class-digit.yaml",
    ]
    grade = load_model(EXAMPLES[0])
    assert grade.name == "fit-engagement-grade"
    assert set(grade.scores) == {"fit", "engagement"}
    assert grade.spec.grade is not None
    blocks = load_model(EXAMPLES[1])
    assert blocks.name == "gate-blocks"
    assert blocks.scores["lead"].class_digit is True
    assert blocks.scores["lead"].categories == {"must_have": (None, 300), "behavior": (0, 99)}


def test_load_model_accepts_str_path() -> None:
    assert load_model(str(DEFAULT_MODEL)).name == "b2b-default"


def test_load_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    with pytest.raises(ModelError) as info:
        load_model(missing)
    assert info.value.path == str(missing)
    assert info.value.problems == [
        "(file) (line 0): cannot read: No such file or directory",
    ]


def test_load_model_from_file_reports_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 0\nname: m\nscores: {e: {}}\n", encoding="utf-8")
    with pytest.raises(ModelError) as info:
        load_model(bad)
    assert info.value.path == str(bad)
    assert str(info.value).startswith(f"{bad}: 1 problem(s)\n")


# --- compiling ------------------------------------------------------------------------


def test_parse_good_model_compiles() -> None:
    model = parse_model(GOOD)
    assert (model.name, model.version) == ("test-model", 3)
    assert [r.id for r in model.rules] == ["open", "open-fit", "vp", "unsub", "capped", "trial"]
    assert [r.index for r in model.rules] == [0, 1, 2, 3, 4, 5]
    assert [r.id for r in model.by_type["email_open"]] == ["open", "open-fit"]
    assert set(model.by_type) == {"email_open", "unsubscribe", "page_visit", "trial_signup"}
    assert model.event_types == {
        "email_open",
        "unsubscribe",
        "page_visit",
        "trial_signup",
        CONTACT_UPDATED,
    }
    assert [r.id for r in model.attribute_rules] == ["vp"]
    assert model.by_id["vp"].event_type is None
    assert model.by_id["vp"].when is not None
    assert model.by_id["vp"].when({"job_title": "vp sales"}) is True


def test_compiled_rule_fields() -> None:
    model = parse_model(GOOD)
    capped = model.by_id["capped"]
    assert (capped.score, capped.category, capped.points) == ("engagement", None, 4)
    assert (capped.cap_points, capped.cap_occurrences, capped.cap_per) == (10, None, 604_800_000)
    assert capped.burst == 10_000
    assert (capped.freq_count, capped.freq_within) == (2, 86_400_000)
    assert capped.window == 604_800_000  # the longest of per, burst, within
    assert capped.keeps_history is True
    assert capped.match is not None
    assert capped.match({"url": "https://a.io/Pricing"}) is True
    assert capped.match({"url": "https://a.io/blog"}) is False
    unsub = model.by_id["unsub"]
    assert unsub.expires == 30 * 86_400_000
    assert unsub.match is None
    assert unsub.window is None
    assert unsub.keeps_history is False
    trial = model.by_id["trial"]
    assert trial.once is True
    assert model.by_id["open"].category == "behavior"


def test_compiled_scores_and_gates() -> None:
    model = parse_model(GOOD)
    engagement = model.scores["engagement"]
    assert (engagement.min, engagement.max) == (0, 100)
    assert engagement.categories == {"behavior": (None, 50), "fit": (0, 50)}
    assert [t.name for t in engagement.thresholds] == ["mql"]
    assert [gid for gid, _ in engagement.gates] == ["adult"]
    assert [gid for gid, _ in model.scores["fit"].gates] == ["adult", "us"]
    assert engagement.clamp(-5) == 0
    assert engagement.clamp(101) == 100
    assert engagement.clamp(55) == 55
    assert model.scores["fit"].clamp(-11) == -10
    assert model.scores["fit"].clamp(10**6) == 10**6  # no maximum
    assert engagement.class_digit is False


def test_threshold_rearm_defaults_to_at() -> None:
    model = parse_model(HEAD + "scores:\n  s: {thresholds: [{name: hot, at: 10}]}\n")
    tier = model.spec.scores["s"].thresholds[0]
    assert tier.rearm_below is None
    assert tier.rearm == 10


def test_rearm_below_equal_to_at_is_fine() -> None:
    model = parse_model(HEAD + "scores:\n  s: {thresholds: [{name: t, at: 5, rearm_below: 5}]}\n")
    assert model.spec.scores["s"].thresholds[0].rearm == 5


def test_score_defaults() -> None:
    model = parse_model(HEAD + "scores:\n  s: {}\n")
    spec = model.spec.scores["s"]
    assert (spec.min, spec.max, spec.thresholds, spec.categories) == (0, None, [], {})
    assert model.spec.rules == []
    assert model.spec.gates == []
    assert model.spec.class_digit is None
    assert model.spec.grade is None


def test_threshold_at_max_is_reachable() -> None:
    model = parse_model(HEAD + "scores: {s: {max: 10, thresholds: [{name: a, at: 10}]}}\n")
    assert model.spec.scores["s"].thresholds[0].at == 10


# --- YAML 1.2 -----------------------------------------------------------------------


def test_on_key_is_not_a_boolean() -> None:
    text = (
        HEAD
        + "scores: {s: {}}\nrules:\n  - id: r\n    score: s\n    on: {type: x}\n    points: 1\n"
    )
    model = parse_model(text)
    rule = model.spec.rules[0]
    assert rule.on is not None
    assert rule.on.type == "x"
    assert [r.id for r in model.by_type["x"]] == ["r"]


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "y", "n"])
def test_yaml_11_boolean_words_stay_strings(word: str) -> None:
    # With YAML 1.1 booleans these would become True/False and fail the str pattern.
    model = parse_model(f"version: 1\nname: {word}\nscores: {{s: {{}}}}\n")
    assert model.name == word


def test_yaml_12_booleans_still_booleans() -> None:
    problem = only_problem("version: 1\nname: true\nscores: {s: {}}\n")
    assert problem == "name (line 2): Input should be a valid string (got True)"


def test_yaml_11_booleans_in_conditions_stay_strings() -> None:
    model = parse_model(
        with_rule("{id: r, score: s, on: {type: x, where: {answer: yes}}, points: 1}")
    )
    match = model.by_id["r"].match
    assert match is not None
    assert match({"answer": "yes"}) is True
    assert match({"answer": True}) is False


# --- places, lines and all problems at once ----------------------------------------------

UNKNOWN_SCORE_ON_LINE_7 = (
    "version: 1\n"  # 1
    "name: m\n"  # 2
    "scores:\n"  # 3
    "  engagement: {min: 0, max: 100}\n"  # 4
    "rules:\n"  # 5
    "  - {id: a, score: engagement, on: {type: x}, points: 1}\n"  # 6
    "  - {id: b, score: nope, on: {type: y}, points: 2}\n"  # 7
)


def test_unknown_score_is_reported_with_place_and_line() -> None:
    problem = only_problem(UNKNOWN_SCORE_ON_LINE_7)
    assert problem == "rules[1].score (line 7): unknown score 'nope' (known: engagement)"


def test_unknown_score_lists_known_scores_sorted() -> None:
    text = (
        HEAD + "scores: {b: {}, a: {}}\nrules:\n  - {id: r, score: c, on: {type: x}, points: 1}\n"
    )
    assert only_problem(text) == "rules[0].score (line 5): unknown score 'c' (known: a, b)"


def test_unknown_category_of_a_score() -> None:
    text = (
        "version: 1\n"  # 1
        "name: m\n"  # 2
        "scores:\n"  # 3
        "  s: {categories: {behavior: {max: 5}, fit: {}}}\n"  # 4
        "  t: {}\n"  # 5
        "rules:\n"  # 6
        "  - {id: a, score: s, category: fi, on: {type: x}, points: 1}\n"  # 7
        "  - {id: b, score: t, category: fit, on: {type: x}, points: 1}\n"  # 8
    )
    assert problems_of(text) == [
        "rules[0].category (line 7): unknown category 'fi' of score 's' (known: behavior, fit)",
        "rules[1].category (line 8): unknown category 'fit' of score 't' (known: none defined)",
    ]


def test_duplicate_rule_id_is_reported() -> None:
    text = (
        HEAD + "scores: {s: {}}\n"  # 3
        "rules:\n"  # 4
        "  - {id: a, score: s, on: {type: x}, points: 1}\n"  # 5
        "  - {id: a, score: s, on: {type: y}, points: 2}\n"  # 6
    )
    assert only_problem(text) == "rules[1].id (line 6): duplicate rule id 'a'"


def test_cross_check_problems_are_separate_and_sorted_by_line() -> None:
    text = (
        "version: 1\n"  # 1
        "name: m\n"  # 2
        "scores: {s: {}}\n"  # 3
        "rules:\n"  # 4
        "  - {id: c, score: nope, on: {type: z}, points: 3}\n"  # 5
        "  - {id: a, score: s, on: {type: x}, points: 1}\n"  # 6
        "  - {id: a, score: s, on: {type: y}, points: 2}\n"  # 7
    )
    problems = problems_of(text)
    assert len(problems) == 2
    assert problems[0].startswith("rules[0].score (line 5): ")
    assert problems[1].startswith("rules[2].id (line 7): ")


def test_field_errors_and_cross_checks_together_sorted_by_line() -> None:
    text = (
        "version: 1\n"  # 1
        "name: m\n"  # 2
        "scores: {s: {}}\n"  # 3
        "rules:\n"  # 4
        "  - {id: b, score: nope, on: {type: y}, points: 2}\n"  # 5
        "  - {id: a, score: s, on: {type: x}, points: lots}\n"  # 6
        "  - {id: c, score: s, on: {type: x}, points: 1, expires: 9O d}\n"  # 7
        "gates:\n"  # 8
        "  - {id: g, when: {age: {gte: old}}}\n"  # 9
    )
    assert problems_of(text) == [
        "rules[0].score (line 5): unknown score 'nope' (known: s)",
        "rules[1].points (line 6): Input should be a valid integer, unable to parse string "
        "as an integer (got 'lots')",
        "rules[2].expires (line 7): '9O d' is not a duration "
        "(use e.g. 30s, 15m, 12h, 90d, 2w, 1d12h)",
        "gates[0].when (line 9): age.gte: expected a number, got 'old'",
    ]


def test_two_separate_mistakes_two_problems() -> None:
    text = (
        "version: 0\n"  # 1
        "name: m\n"  # 2
        "scores:\n"  # 3
        "  engagement: {min: 0}\n"  # 4
        "rules:\n"  # 5
        "  - {id: a, score: engagement, on: {type: x}, points: lots}\n"  # 6
    )
    problems = problems_of(text)
    assert len(problems) == 2
    assert problems[0] == "version (line 1): Input should be greater than or equal to 1 (got 0)"
    assert problems[1].startswith("rules[0].points (line 6): ")


def test_rearm_below_above_at() -> None:
    text = (
        "version: 1\n"  # 1
        "name: m\n"  # 2
        "scores:\n"  # 3
        "  engagement:\n"  # 4
        "    thresholds:\n"  # 5
        "      - {name: mql, at: 50, rearm_below: 40}\n"  # 6
        "      - {name: sql, at: 80, rearm_below: 90}\n"  # 7
    )
    assert only_problem(text) == (
        "scores.engagement.thresholds[1] (line 7): rearm_below (90) is above at (80)"
    )


def test_max_below_min() -> None:
    text = (
        "version: 1\n"  # 1
        "name: m\n"  # 2
        "scores:\n"  # 3
        "  engagement: {min: 10, max: 5}\n"  # 4
    )
    assert only_problem(text) == "scores.engagement (line 4): max (5) is below min (10)"


def test_category_max_below_min() -> None:
    text = (
        "version: 1\n"  # 1
        "name: m\n"  # 2
        "scores:\n"  # 3
        "  s:\n"  # 4
        "    categories:\n"  # 5
        "      fit: {min: 5, max: 1}\n"  # 6
    )
    assert only_problem(text) == "scores.s.categories.fit (line 6): max (1) is below min (5)"


def test_duplicate_threshold_names() -> None:
    text = HEAD + "scores:\n  s: {thresholds: [{name: t, at: 1}, {name: t, at: 2}]}\n"  # 4
    assert only_problem(text) == "scores.s (line 4): duplicate threshold names: t"


@pytest.mark.parametrize(
    ("score", "message"),
    [
        (
            "{min: 5, max: 10, thresholds: [{name: a, at: 5}]}",
            "5 is not above the score's min 5: every contact would cross it",
        ),
        (
            "{thresholds: [{name: a, at: -3}]}",
            "-3 is not above the score's min 0: every contact would cross it",
        ),
        (
            "{max: 10, thresholds: [{name: a, at: 11}]}",
            "11 is above the score's max 10: it could never be reached",
        ),
    ],
)
def test_threshold_at_not_above_min_or_above_max(score: str, message: str) -> None:
    assert (
        only_problem(HEAD + f"scores:\n  s: {score}\n")
        == f"scores.s.thresholds[0].at (line 4): {message}"
    )


def test_unknown_top_level_key_is_forbidden() -> None:
    problem = only_problem("version: 1\nname: m\ncolour: blue\nscores: {s: {}}\n")
    assert problem == "colour (line 3): Extra inputs are not permitted (got 'blue')"


def test_unknown_nested_keys_are_forbidden() -> None:
    text = (
        "version: 1\n"  # 1
        "name: m\n"  # 2
        "scores: {s: {colour: red}}\n"  # 3
        "rules:\n"  # 4
        "  - id: r\n"  # 5
        "    score: s\n"  # 6
        "    on: {type: x, channel: email}\n"  # 7
        "    points: 1\n"  # 8
        "    weight: 2\n"  # 9
    )
    assert problems_of(text) == [
        "scores.s.colour (line 3): Extra inputs are not permitted (got 'red')",
        "rules[0].on.channel (line 7): Extra inputs are not permitted (got 'email')",
        "rules[0].weight (line 9): Extra inputs are not permitted (got 2)",
    ]


def test_block_style_rule_points_line() -> None:
    text = (
        "version: 1\n"  # 1
        "name: m\n"  # 2
        "scores: {s: {}}\n"  # 3
        "rules:\n"  # 4
        "  - id: a\n"  # 5
        "    score: s\n"  # 6
        "    on:\n"  # 7
        "      type: x\n"  # 8
        "    points: lots\n"  # 9
    )
    problem = only_problem(text)
    assert problem.startswith("rules[0].points (line 9): ")
    assert problem.endswith("(got 'lots')")


def test_missing_required_keys() -> None:
    assert problems_of("version: 1\n") == [
        "name (line 1): Field required",
        "scores (line 1): Field required",
    ]


def test_empty_scores_rejected() -> None:
    assert only_problem("version: 1\nname: m\nscores: {}\n").startswith("scores (line 3): ")


def test_bad_event_type_in_rule() -> None:
    problem = only_problem(with_rule("{id: a, score: s, on: {type: Email Open}, points: 1}"))
    assert problem.startswith("rules[0].on.type (line 5): ")
    assert problem.endswith("(got 'Email Open')")


def test_yaml_syntax_error_reports_line() -> None:
    problem = only_problem("version: 1\nname: m\n  bad: indent\nscores: {s: {}}\n")
    assert problem == "(top) (line 3): not valid YAML: mapping values are not allowed here"


def test_yaml_unclosed_flow_mapping_reports_a_line() -> None:
    problem = only_problem("version: 1\nname: m\nscores: {s: {}\n")
    assert problem.startswith("(top) (line 4): not valid YAML")


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a\n- b\n", "just a string\n"])
def test_model_must_be_a_mapping(text: str) -> None:
    assert only_problem(text) == "(top) (line 1): the model must be a mapping of keys"


def test_model_error_message_lists_every_problem() -> None:
    text = "version: 0\nname: m\nscores: {s: {min: 3, max: 1}}\n"
    with pytest.raises(ScorerError) as info:
        parse_model(text, "m.yaml")
    assert isinstance(info.value, ModelError)
    assert str(info.value) == (
        "m.yaml: 2 problem(s)\n"
        "version (line 1): Input should be greater than or equal to 1 (got 0)\n"
        "scores.s (line 3): max (1) is below min (3)"
    )


# --- rule shapes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        "{id: a, score: s, points: 1}",
        "{id: a, score: s, on: {type: x}, when: {t: 1}, points: 1}",
    ],
    ids=["neither", "both"],
)
def test_exactly_one_of_on_or_when(rule: str) -> None:
    assert only_problem(with_rule(rule)) == (
        "rules[0] (line 5): give exactly one of 'on' (an event rule) or 'when' (an attribute rule)"
    )


def test_points_zero() -> None:
    problem = only_problem(with_rule("{id: a, score: s, on: {type: x}, points: 0}"))
    assert problem == "rules[0] (line 5): points must not be 0"


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ("once: true", "once"),
        ("expires: 30d", "expires"),
        ("cap: {points: 5}", "cap"),
        ("burst: 10s", "burst"),
        ("frequency: {count: 2, within: 1d}", "frequency"),
        ("once: true, expires: 1d, burst: 1s", "once, expires, burst"),
    ],
)
def test_attribute_rule_cannot_have_event_keys(extra: str, named: str) -> None:
    rule = f"{{id: a, score: s, when: {{t: 1}}, points: 5, {extra}}}"
    assert only_problem(with_rule(rule)) == (
        f"rules[0] (line 5): an attribute rule follows current attributes and cannot have {named}"
    )


def test_attribute_rule_with_once_false_is_fine() -> None:
    model = parse_model(with_rule("{id: a, score: s, when: {t: 1}, points: 5, once: false}"))
    assert [r.id for r in model.attribute_rules] == ["a"]


def test_cap_with_both_points_and_occurrences() -> None:
    rule = "{id: a, score: s, on: {type: x}, points: 1, cap: {points: 3, occurrences: 2}}"
    assert only_problem(with_rule(rule)) == (
        "rules[0].cap (line 5): give exactly one of points or occurrences"
    )


def test_cap_with_neither_points_nor_occurrences() -> None:
    rule = "{id: a, score: s, on: {type: x}, points: 1, cap: {per: 7d}}"
    assert only_problem(with_rule(rule)) == (
        "rules[0].cap (line 5): give exactly one of points or occurrences"
    )


def test_cap_on_a_negative_rule() -> None:
    rule = "{id: a, score: s, on: {type: x}, points: -1, cap: {points: 3}}"
    assert only_problem(with_rule(rule)) == (
        "rules[0] (line 5): a cap limits positive points; this rule subtracts"
    )


def test_once_with_cap() -> None:
    rule = "{id: a, score: s, on: {type: x}, points: 1, once: true, cap: {occurrences: 1}}"
    assert only_problem(with_rule(rule)) == "rules[0] (line 5): a one-time rule needs no cap"


@pytest.mark.parametrize(
    ("rule", "place"),
    [
        ("{id: a, score: s, on: {type: x}, points: 1, cap: {points: 0}}", "rules[0].cap.points"),
        (
            "{id: a, score: s, on: {type: x}, points: 1, frequency: {count: 1, within: 1d}}",
            "rules[0].frequency.count",
        ),
        ("{id: 'bad id', score: s, on: {type: x}, points: 1}", "rules[0].id"),
    ],
)
def test_field_limits(rule: str, place: str) -> None:
    assert only_problem(with_rule(rule)).startswith(f"{place} (line 5): ")


def test_malformed_condition_is_a_problem_with_its_place() -> None:
    text = (
        "version: 1\n"  # 1
        "name: m\n"  # 2
        "scores: {s: {}}\n"  # 3
        "rules:\n"  # 4
        "  - id: a\n"  # 5
        "    score: s\n"  # 6
        "    on:\n"  # 7
        "      type: x\n"  # 8
        "      where: {url: {globx: '*'}}\n"  # 9
        "    points: 1\n"  # 10
        "  - {id: b, score: s, when: {email: {regex: '('}}, points: 1}\n"  # 11
    )
    problems = problems_of(text)
    assert len(problems) == 2
    assert problems[0].startswith("rules[0].on.where (line 9): url.globx: unknown operator 'globx'")
    assert problems[1].startswith(
        "rules[1].when (line 11): email.regex: '(' is not a valid regular expression"
    )


# --- durations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        ("90d", 90 * 86_400_000),
        ("1d12h", 36 * 3_600_000),
        ("30s", 30_000),
        ("15m", 900_000),
        ("2w", 14 * 86_400_000),
        ("500ms", 500),
        ("12h", 43_200_000),
        ("1m30s", 90_000),
        (" 1d 12h ", 36 * 3_600_000),
        (45, 45_000),
        (1.5, 1_500),
    ],
)
def test_parse_duration(value: Any, ms: int) -> None:
    assert parse_duration(value) == ms


@pytest.mark.parametrize(
    "value", ["9O d", "", "-5", "5", "d", "12h30", "1x", "0s", 0, -5, True, False, None, [1]]
)
def test_parse_duration_rejects(value: Any) -> None:
    with pytest.raises(ValueError, match="is not a"):
        parse_duration(value)


def test_parse_duration_message() -> None:
    with pytest.raises(ValueError, match="9O d") as info:
        parse_duration("9O d")
    assert str(info.value) == "'9O d' is not a duration (use e.g. 30s, 15m, 12h, 90d, 2w, 1d12h)"


def test_duration_in_a_model_is_milliseconds() -> None:
    model = parse_model(with_rule("{id: a, score: s, on: {type: x}, points: 1, expires: 45}"))
    assert model.by_id["a"].expires == 45_000


# --- gates ------------------------------------------------------------------------------


def test_gate_duplicate_ids_and_unknown_scores() -> None:
    text = (
        "version: 1\n"  # 1
        "name: m\n"  # 2
        "scores: {s: {}, t: {}}\n"  # 3
        "gates:\n"  # 4
        "  - {id: g, when: {age: {gte: 18}}, scores: [s, nope]}\n"  # 5
        "  - {id: g, when: {country: US}}\n"  # 6
    )
    assert problems_of(text) == [
        "gates[0].scores[1] (line 5): unknown score 'nope' (known: s, t)",
        "gates[1].id (line 6): duplicate gate id 'g'",
    ]


def test_gate_needs_a_condition() -> None:
    problem = only_problem(HEAD + "scores: {s: {}}\ngates:\n  - {id: g}\n")
    assert problem == "gates[0].when (line 5): Field required"


# --- class digit --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "score",
    ["{max: 1000}", "{min: -1, max: 10}", "{}"],
    ids=["max-over-999", "min-below-0", "no-max"],
)
def test_class_digit_needs_min_0_and_max_999(score: str) -> None:
    text = (
        "version: 1\n"  # 1
        "name: m\n"  # 2
        "scores:\n"  # 3
        f"  s: {score}\n"  # 4
        "class_digit: {attribute: size, classes: [{digit: 1}]}\n"  # 5
    )
    assert only_problem(text) == (
        "scores.s (line 4): a score shown with a class digit needs min >= 0 and max <= 999"
    )


def test_class_digit_limited_to_listed_scores() -> None:
    text = (
        HEAD + "scores:\n"
        "  s: {max: 999}\n"  # 4
        "  big: {}\n"  # 5
        "class_digit: {attribute: size, classes: [{digit: 1}], scores: [s]}\n"  # 6
    )
    model = parse_model(text)
    assert model.scores["s"].class_digit is True
    assert model.scores["big"].class_digit is False


def test_class_digit_unknown_score() -> None:
    text = HEAD + "scores: {s: {max: 9}}\nclass_digit: {attribute: a, classes: [{digit: 1}], "
    text += "scores: [zz]}\n"
    assert only_problem(text) == "class_digit.scores[0] (line 4): unknown score 'zz' (known: s)"


@pytest.mark.parametrize(
    ("classes", "message"),
    [
        (
            "[{below: 1000, digit: 2}, {below: 50, digit: 1}]",
            "classes must be in increasing order of 'below'",
        ),
        (
            "[{below: 50, digit: 1}, {below: 50, digit: 2}]",
            "classes must be in increasing order of 'below'",
        ),
        (
            "[{digit: 3}, {below: 50, digit: 1}]",
            "only the last class may omit 'below' (it takes the rest)",
        ),
    ],
)
def test_class_digit_classes_order(classes: str, message: str) -> None:
    text = (
        HEAD + f"scores: {{s: {{max: 999}}}}\nclass_digit: {{attribute: a, classes: {classes}}}\n"
    )
    assert only_problem(text) == f"class_digit (line 4): {message}"


def test_class_digit_digit_range() -> None:
    text = HEAD + "scores: {s: {max: 999}}\nclass_digit: {attribute: a, classes: [{digit: 10}]}\n"
    assert only_problem(text).startswith("class_digit.classes[0].digit (line 4): ")


def test_class_digit_lookup() -> None:
    text = (
        HEAD + "scores: {s: {max: 999}}\n"
        "class_digit:\n"
        "  attribute: size\n"
        "  classes: [{below: 50, digit: 1}, {below: 1000, digit: 2}, {digit: 3}]\n"
        "  missing: 7\n"
    )
    model = parse_model(text)
    assert model.class_digit({"size": 10}) == 1
    assert model.class_digit({"size": 49.9}) == 1
    assert model.class_digit({"size": 50}) == 2
    assert model.class_digit({"size": "999"}) == 2
    assert model.class_digit({"size": 1000}) == 3
    assert model.class_digit({}) == 7
    assert model.class_digit({"size": "big"}) == 7
    assert model.class_digit({"size": True}) == 7
    assert model.display("s", 89, {"size": 500}) == 2089
    assert model.display("s", 5, {}) == 7005


# --- grade ---------------------------------------------------------------------------------


GRADE = (
    "version: 1\n"  # 1
    "name: m\n"  # 2
    "scores: {fit: {max: 100}, engagement: {max: 100}}\n"  # 3
    "grade:\n"  # 4
    "  fit: {score: fit, bands: [{at: 75, label: A}, {at: 50, label: B}, {label: C}]}\n"  # 5
    "  engagement: {score: engagement, bands: [{at: 60, label: '1'}, {label: '2'}]}\n"  # 6
)


def test_grade_compiles_and_grades() -> None:
    model = parse_model(GRADE)
    assert model.grade({"fit": 80, "engagement": 60}) == "A1"
    assert model.grade({"fit": 75, "engagement": 59}) == "A2"
    assert model.grade({"fit": 74, "engagement": 0}) == "B2"
    assert model.grade({"fit": 0, "engagement": 100}) == "C1"
    assert model.grade({}) == "C2"  # a contact with no awards sits at the scores' min
    assert parse_model(HEAD + "scores: {s: {}}\n").grade({"s": 1}) is None


@pytest.mark.parametrize(
    ("fit_bands", "message"),
    [
        ("[{at: 50, label: B}, {at: 75, label: A}, {label: C}]", "bands must be in decreasing"),
        ("[{at: 50, label: B}, {at: 50, label: A}, {label: C}]", "bands must be in decreasing"),
        ("[{at: 75, label: A}, {at: 50, label: B}]", "the last band must omit 'at'"),
        ("[{label: A}, {label: B}]", "only the last band may omit 'at'"),
    ],
)
def test_grade_bands_order_and_last_band(fit_bands: str, message: str) -> None:
    text = GRADE.replace("[{at: 75, label: A}, {at: 50, label: B}, {label: C}]", fit_bands)
    problem = only_problem(text)
    assert problem.startswith(f"grade.fit (line 5): {message}")


def test_grade_unknown_score() -> None:
    text = GRADE.replace("{score: engagement,", "{score: engagment,")
    assert only_problem(text) == (
        "grade.engagement.score (line 6): unknown score 'engagment' (known: engagement, fit)"
    )
