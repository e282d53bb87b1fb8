"""Unit tests for stream_scorer.model: loading, validation and problem places/lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_scorer.errors import ModelError, ScorerError
from stream_scorer.model import Award, load_model, parse_model

DEFAULT_MODEL = Path("config/scoring.yaml")

# Line numbers are 1-based and written next to each line for the assertions below.
GOOD = """\
version: 3
name: test-model
scores:
  engagement: {min: 0, max: 100, thresholds: [{name: mql, at: 50, rearm_below: 40}]}
  fit: {min: -10}
rules:
  - {id: open, score: engagement, on: {type: email_open}, points: 1}
  - {id: open-fit, score: fit, on: {type: email_open}, points: 2}
  - {id: unsub, score: engagement, on: {type: unsubscribe}, points: -20}
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


def test_load_default_model() -> None:
    model = load_model(DEFAULT_MODEL)
    assert model.name == "b2b-default"
    assert model.version == 1
    assert len(model.spec.rules) == 9
    spec = model.spec.scores["engagement"]
    assert (spec.min, spec.max) == (0, 100)
    assert [(t.name, t.at, t.rearm) for t in spec.thresholds] == [("mql", 50, 40), ("sql", 80, 70)]
    assert model.awards_for("email_open") == (Award("email-open", "engagement", 1),)
    assert model.awards_for("unsubscribe") == (Award("unsubscribe", "engagement", -20),)
    assert model.awards_for("no_such_type") == ()


def test_load_model_accepts_str_path() -> None:
    assert load_model(str(DEFAULT_MODEL)).name == "b2b-default"


def test_load_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    with pytest.raises(ModelError) as info:
        load_model(missing)
    assert info.value.path == str(missing)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("(file): cannot read")


def test_load_model_from_file_reports_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 0\nname: m\nscores: {e: {}}\n", encoding="utf-8")
    with pytest.raises(ModelError) as info:
        load_model(bad)
    assert info.value.path == str(bad)
    assert str(bad) in str(info.value)
    assert "1 problem(s)" in str(info.value)


def test_parse_good_model_compiles_by_type_in_rule_order() -> None:
    model = parse_model(GOOD)
    assert model.name == "test-model"
    assert model.version == 3
    assert model.awards_for("email_open") == (
        Award("open", "engagement", 1),
        Award("open-fit", "fit", 2),
    )
    assert model.awards_for("unsubscribe") == (Award("unsub", "engagement", -20),)
    assert set(model.by_type) == {"email_open", "unsubscribe"}


def test_threshold_rearm_defaults_to_at() -> None:
    model = parse_model("version: 1\nname: m\nscores:\n  s: {thresholds: [{name: hot, at: 10}]}\n")
    tier = model.spec.scores["s"].thresholds[0]
    assert tier.rearm_below is None
    assert tier.rearm == 10


def test_score_defaults() -> None:
    model = parse_model("version: 1\nname: m\nscores:\n  s: {}\n")
    spec = model.spec.scores["s"]
    assert (spec.min, spec.max, spec.thresholds) == (0, None, [])
    assert model.spec.rules == []


def test_on_key_is_not_a_boolean() -> None:
    text = (
        "version: 1\nname: m\nscores: {s: {}}\n"
        "rules:\n"
        "  - id: r\n"
        "    score: s\n"
        "    on: {type: x}\n"
        "    points: 1\n"
    )
    model = parse_model(text)
    assert model.spec.rules[0].on.type == "x"
    assert model.awards_for("x") == (Award("r", "s", 1),)


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "y", "n"])
def test_yaml_11_boolean_words_stay_strings(word: str) -> None:
    # With YAML 1.1 booleans these would become True/False and fail the str pattern.
    model = parse_model(f"version: 1\nname: {word}\nscores: {{s: {{}}}}\n")
    assert model.name == word


def test_yaml_12_booleans_still_booleans() -> None:
    problem = only_problem("version: 1\nname: true\nscores: {s: {}}\n")
    assert problem.startswith("name (line 2): ")
    assert "(got True)" in problem


UNKNOWN_SCORE_ON_LINE_7 = (
    "version: 1\n"  # 1
    "name: m\n"  # 2
    "scores:\n"  # 3
    "  engagement: {min: 0, max: 100}\n"  # 4
    "rules:\n"  # 5
    "  - {id: a, score: engagement, on: {type: x}, points: 1}\n"  # 6
    "  - {id: b, score: nope, on: {type: y}, points: 2}\n"  # 7
)


def test_unknown_score_is_reported_with_place() -> None:
    problem = only_problem(UNKNOWN_SCORE_ON_LINE_7)
    assert "rules[1].score" in problem
    assert "unknown score 'nope'" in problem
    assert "engagement" in problem  # lists the known scores
    assert "(line " in problem


def test_unknown_score_names_the_rule_line() -> None:
    problem = only_problem(UNKNOWN_SCORE_ON_LINE_7)
    assert problem.startswith("rules[1].score (line 7): ")


def test_duplicate_rule_id_is_reported() -> None:
    text = (
        "version: 1\nname: m\nscores: {s: {}}\n"
        "rules:\n"
        "  - {id: a, score: s, on: {type: x}, points: 1}\n"
        "  - {id: a, score: s, on: {type: y}, points: 2}\n"
    )
    problem = only_problem(text)
    assert "rules[1].id" in problem
    assert "duplicate rule id 'a'" in problem


def test_cross_check_problems_are_separate() -> None:
    text = (
        "version: 1\n"  # 1
        "name: m\n"  # 2
        "scores: {s: {}}\n"  # 3
        "rules:\n"  # 4
        "  - {id: a, score: s, on: {type: x}, points: 1}\n"  # 5
        "  - {id: a, score: s, on: {type: y}, points: 2}\n"  # 6
        "  - {id: c, score: nope, on: {type: z}, points: 3}\n"  # 7
    )
    problems = problems_of(text)
    assert len(problems) == 2
    assert problems[0].startswith("rules[1].id (line 6): ")
    assert problems[1].startswith("rules[2].score (line 7): ")


def test_field_error_and_cross_check_reported_together() -> None:
    text = (
        "version: 1\n"  # 1
        "name: m\n"  # 2
        "scores: {s: {}}\n"  # 3
        "rules:\n"  # 4
        "  - {id: a, score: s, on: {type: x}, points: lots}\n"  # 5
        "  - {id: b, score: nope, on: {type: y}, points: 2}\n"  # 6
    )
    problems = problems_of(text)
    assert len(problems) == 2
    assert any(p.startswith("rules[0].points (line 5): ") for p in problems)
    assert any("rules[1].score" in p and "(line 6)" in p for p in problems)


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
    problem = only_problem(text)
    assert problem.startswith("scores.engagement.thresholds[1] (line 7): ")
    assert "rearm_below (90) is above at (80)" in problem


def test_rearm_below_equal_to_at_is_fine() -> None:
    model = parse_model(
        "version: 1\nname: m\nscores:\n  s: {thresholds: [{name: t, at: 5, rearm_below: 5}]}\n"
    )
    assert model.spec.scores["s"].thresholds[0].rearm == 5


def test_max_below_min() -> None:
    text = (
        "version: 1\n"  # 1
        "name: m\n"  # 2
        "scores:\n"  # 3
        "  engagement: {min: 10, max: 5}\n"  # 4
    )
    problem = only_problem(text)
    assert problem.startswith("scores.engagement (line 4): ")
    assert "max (5) is below min (10)" in problem


def test_duplicate_threshold_names() -> None:
    text = (
        "version: 1\n"  # 1
        "name: m\n"  # 2
        "scores:\n"  # 3
        "  s: {thresholds: [{name: t, at: 1}, {name: t, at: 2}]}\n"  # 4
    )
    problem = only_problem(text)
    assert problem.startswith("scores.s (line 4): ")
    assert "duplicate threshold names: t" in problem


def test_unknown_top_level_key_is_forbidden() -> None:
    text = "version: 1\nname: m\ncolour: blue\nscores: {s: {}}\n"
    problem = only_problem(text)
    assert problem.startswith("colour (line 3): ")
    assert "Extra inputs are not permitted" in problem
    assert "(got 'blue')" in problem


def test_unknown_nested_key_is_forbidden() -> None:
    text = (
        "version: 1\n"  # 1
        "name: m\n"  # 2
        "scores: {s: {}}\n"  # 3
        "rules:\n"  # 4
        "  - id: r\n"  # 5
        "    score: s\n"  # 6
        "    on: {type: x, channel: email}\n"  # 7
        "    points: 1\n"  # 8
        "    weight: 2\n"  # 9
    )
    problems = problems_of(text)
    assert len(problems) == 2
    assert any(p.startswith("rules[0].on.channel (line 7): ") for p in problems)
    assert any(p.startswith("rules[0].weight (line 9): ") for p in problems)


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
    assert "(got 'lots')" in problem


def test_missing_required_keys() -> None:
    problems = problems_of("version: 1\n")
    joined = "\n".join(problems)
    assert len(problems) == 2
    assert "name (line 1): Field required" in joined
    assert "scores (line 1): Field required" in joined


def test_empty_scores_rejected() -> None:
    problem = only_problem("version: 1\nname: m\nscores: {}\n")
    assert problem.startswith("scores (line 3): ")


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
    assert problems[0].startswith("version (line 1): ")
    assert "(got 0)" in problems[0]
    assert problems[1].startswith("rules[0].points (line 6): ")


def test_bad_event_type_in_rule() -> None:
    text = (
        "version: 1\nname: m\nscores: {s: {}}\n"
        "rules:\n"
        "  - {id: a, score: s, on: {type: Email Open}, points: 1}\n"  # 5
    )
    problem = only_problem(text)
    assert problem.startswith("rules[0].on.type (line 5): ")
    assert "(got 'Email Open')" in problem


def test_yaml_syntax_error_reports_line() -> None:
    text = "version: 1\nname: m\n  bad: indent\nscores: {s: {}}\n"
    problem = only_problem(text)
    assert problem.startswith("(line 3): not valid YAML")


def test_yaml_unclosed_flow_mapping_reports_a_line() -> None:
    text = "version: 1\nname: m\nscores: {s: {}\n"
    problem = only_problem(text)
    assert problem.startswith("(line ")
    assert "not valid YAML" in problem


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a\n- b\n", "just a string\n"])
def test_model_must_be_a_mapping(text: str) -> None:
    assert only_problem(text) == "(top): the model must be a mapping of keys"


def test_model_error_message_lists_every_problem() -> None:
    text = "version: 0\nname: m\nscores: {s: {min: 3, max: 1}}\n"
    with pytest.raises(ScorerError) as info:
        parse_model(text, "m.yaml")
    assert isinstance(info.value, ModelError)
    message = str(info.value)
    assert message.startswith("m.yaml: 2 problem(s)\n")
    for problem in info.value.problems:
        assert problem in message
