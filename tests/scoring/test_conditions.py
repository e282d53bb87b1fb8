"""Model conditions: every operator, combinators, paths, errors."""

from __future__ import annotations

import fnmatch
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from stream_scorer.scoring.model import ConditionError, compile_condition
from stream_scorer.scoring.model.conditions import OPERATORS, condition_keys, glob_matcher


def holds(condition: dict[str, Any], data: dict[str, Any]) -> bool:
    return compile_condition(condition)(data)


def error_of(condition: Any, where: str = "condition") -> str:
    with pytest.raises(ConditionError) as info:
        compile_condition(condition, where)
    return str(info.value)


def test_operator_list_is_the_documented_one() -> None:
    assert OPERATORS == (
        "equals",
        "in",
        "not_in",
        "contains",
        "glob",
        "regex",
        "gt",
        "gte",
        "lt",
        "lte",
        "exists",
    )


# --- equals -------------------------------------------------------------------


def test_plain_value_is_equality() -> None:
    assert holds({"form_id": "newsletter"}, {"form_id": "newsletter"}) is True
    assert holds({"form_id": "newsletter"}, {"form_id": "Newsletter"}) is False
    assert holds({"form_id": "newsletter"}, {"form_id": "other"}) is False


def test_equals_operator_is_the_same_as_a_plain_value() -> None:
    assert holds({"form_id": {"equals": "demo"}}, {"form_id": "demo"}) is True
    assert holds({"form_id": {"equals": "demo"}}, {"form_id": "demos"}) is False


def test_equals_numbers_compare_as_numbers() -> None:
    assert holds({"size": 50}, {"size": 50.0}) is True
    assert holds({"size": 50.0}, {"size": 50}) is True
    assert holds({"size": {"equals": 50}}, {"size": 50.0}) is True
    assert holds({"size": 50}, {"size": 51}) is False


def test_equals_numeric_text_is_not_a_number() -> None:
    # Only the numeric operators read numeric text; equality is exact.
    assert holds({"size": 50}, {"size": "50"}) is False


def test_equals_bool_never_equals_int() -> None:
    assert holds({"flag": True}, {"flag": 1}) is False
    assert holds({"flag": 1}, {"flag": True}) is False
    assert holds({"flag": False}, {"flag": 0}) is False
    assert holds({"flag": 0}, {"flag": False}) is False
    assert holds({"flag": True}, {"flag": True}) is True
    assert holds({"flag": False}, {"flag": False}) is True
    assert holds({"flag": True}, {"flag": False}) is False


def test_equals_null_matches_only_a_present_null() -> None:
    assert holds({"phone": None}, {"phone": None}) is True
    assert holds({"phone": None}, {}) is False
    assert holds({"phone": None}, {"phone": ""}) is False


def test_equals_missing_property_is_false() -> None:
    assert holds({"form_id": "newsletter"}, {}) is False


# --- in / not_in ------------------------------------------------------------------


def test_in() -> None:
    cond = {"country": {"in": ["US", "CA"]}}
    assert holds(cond, {"country": "US"}) is True
    assert holds(cond, {"country": "CA"}) is True
    assert holds(cond, {"country": "us"}) is False
    assert holds(cond, {"country": "GB"}) is False
    assert holds(cond, {}) is False


def test_in_compares_numbers_as_numbers_and_bools_apart() -> None:
    assert holds({"n": {"in": [1, 2]}}, {"n": 2.0}) is True
    assert holds({"n": {"in": [1, 2]}}, {"n": True}) is False
    assert holds({"b": {"in": [True]}}, {"b": 1}) is False
    assert holds({"b": {"in": [True]}}, {"b": True}) is True


def test_not_in() -> None:
    cond = {"form_id": {"not_in": ["newsletter", "consultation"]}}
    assert holds(cond, {"form_id": "demo"}) is True
    assert holds(cond, {"form_id": "newsletter"}) is False
    assert holds(cond, {"form_id": "consultation"}) is False


def test_not_in_holds_when_missing() -> None:
    assert holds({"is_competitor": {"not_in": [True]}}, {}) is True
    assert holds({"is_competitor": {"not_in": [True]}}, {"is_competitor": False}) is True
    assert holds({"is_competitor": {"not_in": [True]}}, {"is_competitor": True}) is False


# --- contains ----------------------------------------------------------------------


def test_contains_text_ignores_case() -> None:
    cond = {"job_title": {"contains": "VP"}}
    assert holds(cond, {"job_title": "VP Sales"}) is True
    assert holds(cond, {"job_title": "Senior vp of marketing"}) is True
    assert holds(cond, {"job_title": "Engineer"}) is False
    assert holds(cond, {}) is False


def test_contains_on_a_list_needs_an_equal_element_ignoring_case() -> None:
    cond = {"tags": {"contains": "Pricing"}}
    assert holds(cond, {"tags": ["blog", "PRICING"]}) is True
    assert holds(cond, {"tags": ["pricing-page"]}) is False
    assert holds(cond, {"tags": []}) is False
    assert holds(cond, {"tags": [1, None]}) is False


def test_contains_on_a_number_is_false() -> None:
    assert holds({"n": {"contains": "5"}}, {"n": 50}) is False


# --- glob ------------------------------------------------------------------------


def test_glob_ignores_case() -> None:
    cond = {"url": {"glob": "*/pricing*"}}
    assert holds(cond, {"url": "https://x.io/pricing"}) is True
    assert holds(cond, {"url": "https://x.io/PRICING/enterprise"}) is True
    assert holds(cond, {"url": "https://x.io/blog/cheap-pricing"}) is False
    assert holds(cond, {"url": "https://x.io/careers"}) is False
    assert holds(cond, {}) is False
    assert holds(cond, {"url": 5}) is False


def test_glob_question_mark_and_class() -> None:
    assert holds({"code": {"glob": "a?c"}}, {"code": "abc"}) is True
    assert holds({"code": {"glob": "a?c"}}, {"code": "abbc"}) is False
    assert holds({"code": {"glob": "[a-c]1"}}, {"code": "B1"}) is True
    assert holds({"code": {"glob": "[a-c]1"}}, {"code": "d1"}) is False


def test_glob_matches_the_whole_text() -> None:
    assert holds({"url": {"glob": "pricing"}}, {"url": "/pricing"}) is False
    assert holds({"url": {"glob": "pricing"}}, {"url": "pricing"}) is True


# --- regex -----------------------------------------------------------------------


def test_regex_searches_and_keeps_case() -> None:
    cond = {"email": {"regex": "@(gmail|yahoo)\\."}}
    assert holds(cond, {"email": "ann@gmail.com"}) is True
    assert holds(cond, {"email": "ann@GMAIL.com"}) is False
    assert holds(cond, {"email": "ann@acme.com"}) is False
    assert holds(cond, {}) is False
    assert holds(cond, {"email": 1}) is False


def test_regex_inline_flag_ignores_case() -> None:
    cond = {"job_title": {"regex": "(?i)\\bvp\\b"}}
    assert holds(cond, {"job_title": "Vp Sales"}) is True
    assert holds(cond, {"job_title": "MVP"}) is False


# --- gt / gte / lt / lte ------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("gt", 51, True),
        ("gt", 50, False),
        ("gt", 49, False),
        ("gte", 50, True),
        ("gte", 49.5, False),
        ("lt", 49, True),
        ("lt", 50, False),
        ("lte", 50, True),
        ("lte", 50.5, False),
    ],
)
def test_numeric_operators_on_numbers(op: str, value: float, expected: bool) -> None:
    assert holds({"size": {op: 50}}, {"size": value}) is expected


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("gt", "51", True),
        ("gt", " 50 ", False),
        ("gte", "50", True),
        ("gte", "50.0", True),
        ("lt", "34", True),
        ("lte", "50.1", False),
    ],
)
def test_numeric_operators_on_numeric_text(op: str, value: str, expected: bool) -> None:
    assert holds({"size": {op: 50}}, {"size": value}) is expected


@pytest.mark.parametrize("value", ["lots", "", None, True, False, [60], {"n": 60}, "nan"])
def test_numeric_operators_on_non_numbers_are_false(value: Any) -> None:
    for op in ("gt", "gte", "lt", "lte"):
        assert holds({"size": {op: 50}}, {"size": value}) is False, op
    # neither below a huge bound nor above a tiny one: not a number at all
    assert holds({"size": {"lt": 10**9}}, {"size": value}) is False
    assert holds({"size": {"gt": -(10**9)}}, {"size": value}) is False


def test_numeric_operator_missing_property_is_false() -> None:
    assert holds({"size": {"gt": 0}}, {}) is False
    assert holds({"size": {"lt": 0}}, {}) is False


def test_several_operators_must_all_hold() -> None:
    cond = {"company_size": {"gte": 200, "lt": 5000}}
    assert holds(cond, {"company_size": 200}) is True
    assert holds(cond, {"company_size": 4999}) is True
    assert holds(cond, {"company_size": 199}) is False
    assert holds(cond, {"company_size": 5000}) is False


# --- exists ------------------------------------------------------------------------


def test_exists_true() -> None:
    cond = {"phone": {"exists": True}}
    assert holds(cond, {"phone": "555"}) is True
    assert holds(cond, {"phone": ""}) is True
    assert holds(cond, {"phone": 0}) is True
    assert holds(cond, {"phone": False}) is True
    assert holds(cond, {"phone": None}) is False
    assert holds(cond, {}) is False


def test_exists_false() -> None:
    cond = {"phone": {"exists": False}}
    assert holds(cond, {}) is True
    assert holds(cond, {"phone": None}) is True
    assert holds(cond, {"phone": "555"}) is False
    assert holds(cond, {"phone": 0}) is False


# --- combinators --------------------------------------------------------------------


def test_several_properties_must_all_hold() -> None:
    cond = {"country": {"in": ["US", "CA"]}, "age": {"gte": 18}}
    assert holds(cond, {"country": "US", "age": 30}) is True
    assert holds(cond, {"country": "US", "age": 17}) is False
    assert holds(cond, {"country": "GB", "age": 30}) is False
    assert holds(cond, {"age": 30}) is False


def test_all() -> None:
    cond = {"all": [{"a": 1}, {"b": 2}]}
    assert holds(cond, {"a": 1, "b": 2}) is True
    assert holds(cond, {"a": 1, "b": 3}) is False
    assert holds(cond, {"a": 1}) is False


def test_any() -> None:
    cond = {"any": [{"seniority": "executive"}, {"job_title": {"contains": "VP"}}]}
    assert holds(cond, {"seniority": "executive"}) is True
    assert holds(cond, {"job_title": "vp sales"}) is True
    assert holds(cond, {"seniority": "manager", "job_title": "Engineer"}) is False
    assert holds(cond, {}) is False


def test_not() -> None:
    cond = {"not": {"form_id": {"in": ["newsletter", "consultation"]}}}
    assert holds(cond, {"form_id": "demo"}) is True
    assert holds(cond, {"form_id": "newsletter"}) is False
    assert holds(cond, {}) is True  # a negation of a missing property holds


def test_nested_combinators_and_properties_together() -> None:
    cond = {
        "country": "US",
        "any": [{"all": [{"a": 1}, {"b": 2}]}, {"not": {"c": {"exists": True}}}],
    }
    assert holds(cond, {"country": "US", "a": 1, "b": 2, "c": 3}) is True
    assert holds(cond, {"country": "US", "a": 1, "c": 3}) is False
    assert holds(cond, {"country": "US"}) is True
    assert holds(cond, {"country": "CA"}) is False


# --- paths -----------------------------------------------------------------------


def test_dotted_path_reaches_into_nested_objects() -> None:
    cond = {"utm.source": "linkedin"}
    assert holds(cond, {"utm": {"source": "linkedin"}}) is True
    assert holds(cond, {"utm": {"source": "google"}}) is False
    assert holds(cond, {"utm": {}}) is False
    assert holds(cond, {"utm": "linkedin"}) is False
    assert holds(cond, {}) is False
    # a literal key with a dot in it is not a path
    assert holds(cond, {"utm.source": "linkedin"}) is False


def test_deep_dotted_path() -> None:
    cond = {"a.b.c": {"gt": 1}}
    assert holds(cond, {"a": {"b": {"c": 2}}}) is True
    assert holds(cond, {"a": {"b": {"c": 1}}}) is False
    assert holds(cond, {"a": {"b": None}}) is False


def test_dotted_path_missing_satisfies_exists_false_and_not_in() -> None:
    assert holds({"utm.source": {"exists": False}}, {"utm": {}}) is True
    assert holds({"utm.source": {"not_in": ["x"]}}, {}) is True
    assert holds({"utm.source": {"exists": True}}, {"utm": {"source": "x"}}) is True


def test_missing_property_satisfies_only_exists_false_not_in_and_negations() -> None:
    satisfied = [
        {"p": {"exists": False}},
        {"p": {"not_in": ["x"]}},
        {"not": {"p": "x"}},
    ]
    unsatisfied = [
        {"p": "x"},
        {"p": {"equals": None}},
        {"p": {"in": ["x"]}},
        {"p": {"contains": "x"}},
        {"p": {"glob": "*"}},
        {"p": {"regex": ".*"}},
        {"p": {"gt": 0}},
        {"p": {"gte": 0}},
        {"p": {"lt": 0}},
        {"p": {"lte": 0}},
        {"p": {"exists": True}},
    ]
    for cond in satisfied:
        assert holds(cond, {}) is True, cond
    for cond in unsatisfied:
        assert holds(cond, {}) is False, cond


# --- errors ---------------------------------------------------------------------


def test_unknown_operator() -> None:
    message = error_of({"url": {"globx": "*"}})
    assert message == (
        "condition.url.globx: unknown operator 'globx' (known: equals, in, not_in, contains, "
        "glob, regex, gt, gte, lt, lte, exists)"
    )


def test_bad_regex() -> None:
    message = error_of({"email": {"regex": "("}})
    assert message.startswith("condition.email.regex: '(' is not a valid regular expression: ")


@pytest.mark.parametrize("bound", ["abc", "34", None, True, [1]])
def test_non_numeric_bound(bound: Any) -> None:
    message = error_of({"age": {"gte": bound}})
    assert message == f"condition.age.gte: expected a number, got {bound!r}"


@pytest.mark.parametrize("spec", [{}, None, [], "x", [{"a": 1}]])
def test_empty_or_non_mapping_condition(spec: Any) -> None:
    assert error_of(spec) == "condition: expected a non-empty mapping of property: test"


def test_empty_operator_mapping() -> None:
    assert error_of({"age": {}}) == "condition.age: expected at least one operator"


def test_error_place_is_nested() -> None:
    message = error_of({"any": [{"a": 1}, {"not": {"b": {"regex": "["}}}]}, "rules[2].when")
    assert message.startswith("rules[2].when.any[1].not.b.regex: '[' is not a valid regular")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"a": {"in": []}}, "condition.a.in: expected a non-empty list"),
        ({"a": {"not_in": "x"}}, "condition.a.not_in: expected a non-empty list"),
        ({"a": {"contains": ""}}, "condition.a.contains: expected a non-empty string"),
        ({"a": {"exists": "yes"}}, "condition.a.exists: expected true or false"),
        ({"all": []}, "condition.all: expected a non-empty list of conditions"),
        ({"any": {"a": 1}}, "condition.any: expected a non-empty list of conditions"),
        ({"a": {"equals": [1]}}, "condition.a.equals: expected a plain value, got list"),
        ({"a": {"regex": ""}}, "condition.a.regex: expected a regular expression"),
    ],
)
def test_other_malformed_conditions(spec: dict[str, Any], message: str) -> None:
    assert error_of(spec) == message


def test_condition_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown operator"):
        compile_condition({"a": {"nope": 1}})


def test_condition_keys() -> None:
    spec = {"utm.source": "x", "any": [{"a": 1}, {"not": {"b": 2}}], "all": [{"c": 3}]}
    assert condition_keys(spec) == {"utm", "a", "b", "c"}


@hyp_settings(max_examples=400, deadline=None)
@given(
    pattern=st.text(alphabet="ab*/.?[]!", max_size=8),
    text=st.text(alphabet="ab/.", max_size=10),
)
def test_glob_matcher_agrees_with_fnmatch(pattern: str, text: str) -> None:
    expected = re.compile(fnmatch.translate(pattern), re.DOTALL).match(text) is not None
    assert glob_matcher(pattern)(text) is expected
