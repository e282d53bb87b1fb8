"""Reading a model is total, and a model it accepts never makes the engine raise.

Any text gives a :class:`ScoringModel` or a :class:`ModelError` with its
problems, never another exception: arbitrary text, the shipped models with
text spliced in, and the shipped models' documents with random values put at
random places (numbers beyond any bound, NaN, deep nesting, keys that are not
strings). Each mutated model that loads scores a few valid events (apply,
advance, replay, explain, alerts, the stored state) without an exception.
Then one named test per hole these properties found.
"""

from __future__ import annotations

import copy
import json
import math
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st

from stream_scorer.errors import ModelError
from stream_scorer.events import EARLIEST, LATEST, MAX_SAFE_NUMBER, Event, limit_problem
from stream_scorer.scoring import (
    ContactState,
    ScoringModel,
    advance_in_place,
    alert_payload,
    apply,
    award_record,
    explain,
    load_model,
    parse_model,
    replay,
)
from stream_scorer.scoring.model import ModelSpec, loader, read_document, write_document
from stream_scorer.scoring.model.conditions import OPERATORS, condition_keys
from stream_scorer.scoring.model.loader import MAX_DEPTH, MAX_NODES
from stream_scorer.scoring.model.spec import MAX_CONDITION_DEPTH
from stream_scorer.times import EPOCH, format_ms

ROOT = Path(__file__).resolve().parents[2]
PATHS = [ROOT / "config" / "scoring.yaml", *sorted((ROOT / "config" / "examples").glob("*.yaml"))]
TEXTS = [p.read_text(encoding="utf-8") for p in PATHS]
DOCUMENTS = [read_document(t) for t in TEXTS]
#: What a hole that no check foresaw looks like (parse_model's last resort).
UNFORESEEN = "cannot be read:"


def _keys(value: Any, out: set[str]) -> set[str]:
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            out.update(k for k in item if isinstance(k, str))
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return out


KNOWN_KEYS = sorted(_keys(DOCUMENTS, set(OPERATORS) | {"all", "any", "not"}))
BIG = 10**400


def parsed(text: str) -> ScoringModel | None:
    """The model, or None for a ModelError with foreseen problems; anything else fails."""
    problems: list[str] = []
    try:
        return parse_model(text, "fuzz.yaml")
    except ModelError as exc:
        problems = exc.problems
    assert problems, "a ModelError names at least one problem"
    for problem in problems:
        assert isinstance(problem, str)
        assert UNFORESEEN not in problem, problem
    return None


# --- events: valid for the wire format, aimed at what the model reads ----------------------


def _reads(model: ScoringModel) -> list[str]:
    """Property and attribute names (and the parts of dotted ones) the model's conditions read."""
    spec = model.spec
    conditions: list[Any] = [r.on.where for r in spec.rules if r.on is not None and r.on.where]
    conditions += [r.when for r in spec.rules if r.when is not None]
    conditions += [g.when for g in spec.gates]
    names: set[str] = {"x", "url", "age", "country"}
    todo = list(conditions)
    while todo:  # condition_keys gives top-level names; dotted paths are split here
        cond = todo.pop()
        for key in condition_keys(cond):
            names.add(key)
        if isinstance(cond, dict):
            for key, value in cond.items():
                if isinstance(key, str):
                    names.update(key.split("."))
                if key in ("all", "any") and isinstance(value, list):
                    todo.extend(value)
                elif key == "not":
                    todo.append(value)
    if spec.class_digit is not None:
        names.add(spec.class_digit.attribute)
    return sorted(names)


def property_values(names: list[str]) -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-MAX_SAFE_NUMBER, MAX_SAFE_NUMBER),
        st.integers(-5, 120),
        st.floats(-1e15, 1e15, allow_nan=False),
        st.sampled_from(["34", " 34 ", "1e400", "-1e400", "nan", "inf", "0x10", "", "-0"]),
        st.sampled_from(["US", "DE", "VP Sales", "Student", "https://a.io/pricing", "/careers/1"]),
        st.text(max_size=10),
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(names), inner, max_size=3)
        ),
        max_leaves=8,
    )


@st.composite
def events_for(draw: st.DrawFn, model: ScoringModel) -> list[Event]:
    names = _reads(model)
    types = [*sorted(model.event_types), "not_in_the_model"]
    low = (EARLIEST - EPOCH) // timedelta(microseconds=1)
    high = (LATEST - EPOCH) // timedelta(microseconds=1) - 1
    start = draw(st.integers(low, high))
    events: list[Event] = []
    for i in range(draw(st.integers(1, 8))):
        if events and draw(st.integers(0, 5)) == 0:
            events.append(draw(st.sampled_from(events)))  # a duplicate
            continue
        step = draw(st.sampled_from([0, 1, 1000, 86_400_000_000, 40 * 86_400_000_000, -5_000_000]))
        at = min(max(start + step * i, low), high)
        event = Event(
            event_id=f"e{i}",
            contact_id=draw(st.sampled_from(["c-1", "c-2"])),
            type=draw(st.sampled_from(types)),
            occurred_at=EPOCH + timedelta(microseconds=at),
            properties=draw(st.dictionaries(st.sampled_from(names), property_values(names))),
        )
        assume(limit_problem(event) is None)
        events.append(event)
    return events


def scores_without_raising(model: ScoringModel, events: list[Event]) -> None:
    """Everything the worker, the API and backtests do with a model and events."""
    states: dict[str, ContactState] = {}
    for event in events:
        state = states.get(event.contact_id, ContactState())
        state, effects = apply(state, event, model)
        states[event.contact_id] = state
        for crossing in effects.crossings:
            json.loads(alert_payload(crossing, model))
    horizon = max(e.occurred_at for e in events) - EPOCH
    until = horizon // timedelta(milliseconds=1) + 101 * 365 * 86_400_000  # all expired
    for cid, state in states.items():
        for explained in explain(state, model).values():
            for award in explained.awards:
                award_record(award, format_ms)
        stored = json.loads(json.dumps(state.to_json()))
        assert ContactState.from_json(stored, model).to_json() == state.to_json()
        for crossing in advance_in_place(state, until, model, cid).crossings:
            json.loads(alert_payload(crossing, model))
        explain(state, model)
    replayed, crossings = replay(events, model, until=until)
    for crossing in crossings:
        json.loads(alert_payload(crossing, model))
    assert set(replayed) == {e.contact_id for e in events}


# --- mutated shipped models ------------------------------------------------------------------

numbers = st.one_of(
    st.integers(-10, 200),
    st.sampled_from([0, 1, -1, 999, 1000, MAX_SAFE_NUMBER, MAX_SAFE_NUMBER + 1, -MAX_SAFE_NUMBER]),
    st.sampled_from([-MAX_SAFE_NUMBER - 1, BIG, -BIG, 2**64, 10**4000]),
    st.floats(),
    st.sampled_from([math.inf, -math.inf, math.nan, 1e-9, 1e300, 0.5, 36_500 * 86_400.0]),
)
strings = st.one_of(
    st.text(max_size=12),
    st.sampled_from(KNOWN_KEYS),
    st.sampled_from(
        ["1d", "30s", "0s", "1ms", "36500d", "36501d", "9" * 30 + "d", "1" * 5000 + "s"]
    ),
    st.sampled_from(
        ["1e400", "nan", ".inf", "*/pricing*", "[z-a]", "(a", "a{4294967296}", "(?i)vp"]
    ),
    st.sampled_from(
        ["email_open", "page_visit", "contact_updated", "engagement", "fit", "behavior"]
    ),
)
scalars = st.none() | st.booleans() | numbers | strings
mapping_keys = st.one_of(
    st.sampled_from(KNOWN_KEYS), st.text(max_size=6), st.integers(-3, 3), st.none(), st.booleans()
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(mapping_keys, inner, max_size=4),
    max_leaves=12,
)


def nested(levels: int, kind: str) -> Any:
    """A value ``levels`` deep: ``{not: {not: ... {x: 1}}}``, lists, or ``all`` of ``all``."""
    value: Any = {"x": 1}
    for _ in range(levels):
        value = {"not": value} if kind == "not" else [value] if kind == "list" else {"all": [value]}
    return value


deep_values = st.builds(nested, st.integers(20, 120), st.sampled_from(["not", "list", "all"]))


def _places(doc: Any) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    todo: list[tuple[Any, tuple[Any, ...]]] = [(doc, ())]
    while todo:
        value, path = todo.pop()
        out.append(path)
        if isinstance(value, dict):
            todo.extend((v, (*path, k)) for k, v in value.items())
        elif isinstance(value, list):
            todo.extend((v, (*path, i)) for i, v in enumerate(value))
    return sorted(out, key=repr)


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def like(current: Any) -> st.SearchStrategy[Any]:
    """Values of the kind already there, mostly: the mutated model then often still loads."""
    if isinstance(current, bool):
        return st.booleans()
    if isinstance(current, int):
        return numbers
    if isinstance(current, float):
        return st.floats() | numbers
    if isinstance(current, str):
        return strings
    return values


@st.composite
def mutated_documents(draw: st.DrawFn) -> Any:
    doc: Any = copy.deepcopy(draw(st.sampled_from(DOCUMENTS)))
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
        path = draw(st.sampled_from(_places(doc)))
        action = draw(st.sampled_from(["like", "like", "like", "replace", "delete", "insert"]))
        if not path:
            continue
        parent, last = _at(doc, path[:-1]), path[-1]
        target = parent[last]
        new = draw(values | deep_values) if draw(st.integers(0, 9)) == 0 else draw(values)
        if action == "like":
            parent[last] = draw(like(target))
        elif action == "replace":
            parent[last] = new
        elif action == "delete":
            del parent[last]
        elif isinstance(target, dict):
            target[draw(mapping_keys)] = new
        elif isinstance(target, list):
            target.insert(draw(st.integers(0, len(target))), new)
        else:
            parent[last] = new
    return doc


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(doc=mutated_documents(), data=st.data())
def test_mutated_shipped_models_load_or_say_why_and_score_without_raising(
    doc: Any, data: st.DataObject
) -> None:
    text = write_document(doc)
    note(text)
    model = parsed(text)  # a model, or a ModelError naming only foreseen problems
    hypothesis_event("loaded" if model is not None else "refused")
    assert (parsed(text) is None) == (model is None), "loading the same text decided twice"
    if model is not None:
        scores_without_raising(model, data.draw(events_for(model)))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_each_shipped_model_scores_random_valid_events_without_raising(
    data: st.DataObject,
) -> None:
    model = parsed(data.draw(st.sampled_from(TEXTS)))
    assert model is not None
    scores_without_raising(model, data.draw(events_for(model)))


yaml_text = st.text(
    alphabet=st.sampled_from(list("{}[]:,-&*!|>'\"#%@?`~ \n\t.aet019")), max_size=80
)
#: Pieces of YAML that PyYAML's constructors or the model's checks treat specially.
yaml_tokens = st.lists(
    st.sampled_from(
        [
            *["version: 1\n", "name: m\n", "scores: {s: {}}\n", "rules:\n", "  - ", "{", "}"],
            *["[", "]", ": ", ", ", "\n", "  ", "&a ", "*a", "!!int ", "!!bool ", "!!float ", "? "],
            *["!!binary ", "2001-13-45", "2001-12-14", "1" * 5000, "0x" + "f" * 2000, ".inf"],
            *[".nan", "-1", "1.5", "id: r", "score: s", "on: {type: x}", "points: 1", "when: "],
            *["where: ", "gte: ", "not: ", "all: ", "any: ", "in: ", "regex: ", "'a{4294967296}'"],
            *["expires: ", "0.0001", "<<: ", "~", "true", "on", "no", "'", '"', "#", "|", ">"],
            *["%YAML 1.2\n", "---\n", "!!timestamp ", "0000-00-00"],
        ]
    ),
    max_size=40,
).map("".join)


@st.composite
def spliced(draw: st.DrawFn) -> str:
    """A shipped model with a slice cut out and random text put in its place."""
    text = draw(st.sampled_from(TEXTS))
    start = draw(st.integers(0, len(text)))
    end = draw(st.integers(start, min(len(text), start + 40)))
    return text[:start] + draw(st.text(max_size=20) | yaml_text) + text[end:]


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text() | yaml_text | yaml_tokens | spliced())
def test_any_text_gives_a_model_or_a_model_error(text: str) -> None:
    model = parsed(text)
    hypothesis_event("loaded" if model is not None else "refused")
    if model is not None:
        assert isinstance(model, ScoringModel)


# --- the holes found, one test each ----------------------------------------------------------

HEAD = "version: 1\nname: m\nscores:\n  s: {min: 0, max: 100, thresholds: [{name: t, at: 10}]}\n"


def problems_of(text: str) -> list[str]:
    with pytest.raises(ModelError) as caught:
        parse_model(text, "m.yaml")
    problems = caught.value.problems
    assert not any(UNFORESEEN in p for p in problems), problems
    return problems


def with_rule(rule: str) -> str:
    return HEAD + "rules:\n  - " + rule + "\n"


def event(properties: dict[str, Any], kind: str = "x") -> Event:
    return Event(
        event_id="e-1",
        contact_id="c-1",
        type=kind,
        occurred_at=EPOCH + timedelta(days=20_000),
        properties=properties,
    )


@pytest.mark.parametrize(
    "rule",
    [
        "{id: r, score: s, on: {type: x, where: {n: {gte: %s}}}, points: 5}",
        "{id: r, score: s, on: {type: x, where: {n: %s}}, points: 5}",  # equals: raised in apply
        "{id: r, score: s, on: {type: x, where: {n: {in: [1, %s]}}}, points: 5}",
        "{id: r, score: s, on: {type: x, where: {n: {lt: -%s}}}, points: 5}",
        "{id: r, score: s, when: {n: {gte: %s}}, points: 5}",
        "{id: r, score: s, when: {any: [{n: 1}, {m: {not_in: [%s]}}]}, points: 5}",
    ],
    ids=["gte", "equals", "in", "negative-lt", "attribute-rule", "nested-not_in"],
)
def test_a_400_digit_number_in_a_condition_is_a_model_error(rule: str) -> None:
    """It loaded, and then float() of it raised OverflowError (when loading or in the engine)."""
    big = "1" + "0" * 400
    problems = problems_of(with_rule(rule % big))
    assert len(problems) == 1, problems
    assert problems[0].startswith(("rules[0].on.where (line 6): n", "rules[0].when (line 6): "))
    assert problems[0].endswith(
        "integer of about 401 digits is not a finite number within ±(2**53 - 1)"
    )
    model = parse_model(with_rule(rule % str(MAX_SAFE_NUMBER)))  # the largest safe one is fine
    for props in ({"n": 5}, {"n": 5.5}, {"n": "7"}, {"m": 1}):
        replay([event(props), event(props, "contact_updated")], model)


@pytest.mark.parametrize(
    ("number", "shown"),
    [(".inf", "inf"), ("-.inf", "-inf"), (".nan", "nan"), ("1.0e+400", "inf")],
)
def test_a_number_that_is_not_finite_in_a_condition_is_a_model_error(
    number: str, shown: str
) -> None:
    """Accepted before: ``lt: .inf`` held for every number, ``equals: .nan`` for none."""
    rule = f"{{id: r, score: s, when: {{n: {{lt: {number}}}}}, points: 1}}"
    assert problems_of(with_rule(rule)) == [
        f"rules[0].when (line 6): n.lt: {shown} is not a finite number within ±(2**53 - 1)"
    ]


@pytest.mark.parametrize(
    ("text", "place"),
    [
        (HEAD.replace("version: 1", "version: %s"), "version (line 1)"),
        (HEAD.replace("max: 100", "max: %s"), "scores.s.max (line 4)"),
        (
            HEAD.replace("at: 10}", "at: 10, rearm_below: -%s}"),
            "scores.s.thresholds[0].rearm_below",
        ),
        (with_rule("{id: r, score: s, on: {type: x}, points: %s}"), "rules[0].points (line 6)"),
        (with_rule("{id: r, score: s, on: {type: x}, points: 1, cap: {points: %s}}"), "cap.points"),
        (
            with_rule(
                "{id: r, score: s, on: {type: x}, points: 1, frequency: {count: %s, within: 1d}}"
            ),
            "count",
        ),
        (
            HEAD + "grade: {fit: {score: s, bands: [{at: %s, label: A}, {label: B}]},\n"
            "  engagement: {score: s, bands: [{label: C}]}}\n",
            "grade.fit.bands[0].at",
        ),
        (
            HEAD.replace("max: 100", "max: 100, categories: {c: {min: -%s}}"),
            "scores.s.categories.c.min",
        ),
    ],
    ids=["version", "max", "rearm_below", "points", "cap", "frequency", "band", "category"],
)
def test_integers_beyond_the_safe_range_are_model_errors(text: str, place: str) -> None:
    """Accepted before; JSON readers of alerts and states lose such integers."""
    for unsafe in (str(2**53), "1" + "0" * 400, "0x" + "f" * 6000):
        problems = problems_of(text % unsafe)
        assert len(problems) == 1, problems
        assert place in problems[0]
        assert "9007199254740991" in problems[0]
    assert parse_model(text % str(2**53 - 1 if "rearm" not in place else 0))


@pytest.mark.parametrize("below", [".nan", ".inf", "1" + "0" * 400])
def test_a_class_digit_bound_that_is_not_a_safe_number_is_a_model_error(below: str) -> None:
    text = (
        "version: 1\nname: m\nscores: {s: {min: 0, max: 100}}\n"
        f"class_digit: {{attribute: a, classes: [{{below: {below}, digit: 1}}, {{digit: 2}}]}}\n"
    )
    problems = problems_of(text)
    assert len(problems) == 1
    assert problems[0].startswith("class_digit.classes[0].below (line 4)")


@pytest.mark.parametrize(
    "text",
    [
        "a: " + "[" * 5000 + "]" * 5000,  # the composer recursed past Python's limit
        "a: " + "{a: " * 3000 + "1" + "}" * 3000,
        with_rule(
            "{id: r, score: s, on: {type: x, where: "
            + "{not: " * 900
            + "{a: 1}"
            + "}" * 900
            + "}, points: 1}"
        ),
        "a:\n" + "".join("  " * i + "- \n" for i in range(1, 400)),
    ],
    ids=["flow-lists", "flow-mappings", "not-chain", "block-lists"],
)
def test_deeply_nested_yaml_is_a_model_error(text: str) -> None:
    """RecursionError before: PyYAML's composer and the condition compiler recurse per level."""
    problems = problems_of(text)
    assert len(problems) == 1
    assert problems[0].endswith(f"nested deeper than {MAX_DEPTH} levels")


def test_a_deeply_nested_condition_is_refused_by_the_schema_too() -> None:
    """Data validated without the loader (a tuned model, the API): RecursionError before."""
    for levels in (MAX_CONDITION_DEPTH + 1, 900):
        doc: dict[str, Any] = read_document(with_rule("{id: r, score: s, when: {a: 1}, points: 1}"))
        doc["rules"][0]["when"] = nested(levels, "not")
        with pytest.raises(ValueError, match=f"nested deeper than {MAX_CONDITION_DEPTH} levels"):
            ModelSpec.model_validate(doc)
        problems = problems_of(write_document(doc)) if levels < MAX_DEPTH - 10 else []
        assert all(f"nested deeper than {MAX_CONDITION_DEPTH}" in p for p in problems)
    doc["rules"][0]["when"] = nested(MAX_CONDITION_DEPTH - 2, "not")  # within the limit
    model = parse_model(write_document(doc))
    replay([event({"x": 1}, "contact_updated")], model)


@pytest.mark.parametrize(
    "text",
    [
        "version: 1\nname: m\nscores: &a {s: {}, t: *a}\n",
        HEAD + "rules: &a [*a]\n",
        HEAD + "rules:\n  - &r {id: r, score: s, on: {type: x, where: {all: [*r]}}, points: 1}\n",
    ],
    ids=["mapping", "list", "condition"],
)
def test_an_alias_inside_what_it_names_is_a_model_error(text: str) -> None:
    """Recursive data: RecursionError before (the line walk, then validation)."""
    problems = problems_of(text)
    assert len(problems) == 1
    assert problems[0].endswith("an alias refers to a value that contains it")


def test_an_alias_bomb_is_refused_before_it_is_built() -> None:
    """A million conditions from a few lines: 11 seconds to compile before, 100 times that for 7."""
    lines = ["defs:", "  - &c0 {a: 1}"]
    for i in range(1, 8):
        lines.append(f"  - &c{i} {{all: [{', '.join([f'*c{i - 1}'] * 10)}]}}")
    text = (
        "\n".join(lines)
        + "\n"
        + with_rule("{id: r, score: s, on: {type: x, where: *c7}, points: 1}")
    )
    start = time.perf_counter()
    problems = problems_of(text)
    assert time.perf_counter() - start < 5
    assert problems == [
        f"(top) (line 2): more than {MAX_NODES} values (an alias counts as what it names)"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "version: 1\nname: m\nscores:\n  1: {min: 0}\n  s: {min: 0}\n",
            ["scores[1].[key] (line 3): Input should be a valid string (got 1)"],
        ),
        (
            "version: 1\nname: m\nscores:\n  1: {min: 0}\n"
            "rules:\n  - {id: r, score: 1, on: {type: x}, points: 1}\n",
            [
                "scores[1].[key] (line 3): Input should be a valid string (got 1)",
                "rules[0].score (line 6): Input should be a valid string (got 1)",
            ],
        ),
        (
            "version: 1\nname: m\nscores: {s: {categories: {1: {}, b: {}}}}\n"
            "rules: [{id: r, score: s, category: c, on: {type: x}, points: 1}]\n",
            [
                "scores.s.categories[1].[key] (line 3): Input should be a valid string (got 1)",
                "rules[0].category (line 4): unknown category 'c' of score 's' (known: b)",
            ],
        ),
        (
            HEAD + "class_digit: {attribute: a, classes: [{digit: 1}], scores: 5}\n",
            ["class_digit.scores (line 5): Input should be a valid list (got 5)"],
        ),
        (
            HEAD + "class_digit: {attribute: a, classes: [{digit: 1}], scores: [[1]]}\n",
            ["class_digit.scores[0] (line 5): Input should be a valid string"],
        ),
        (
            HEAD + "gates: [{id: g, when: {a: 1}, scores: 5}]\n",
            ["gates[0].scores (line 5): Input should be a valid list (got 5)"],
        ),
    ],
    ids=[
        "score-key",
        "score-key-referenced",
        "category-key",
        "digit-scores",
        "digit-scores-list",
        "gate-scores",
    ],
)
def test_keys_and_lists_of_other_types_are_reported_not_crashed_on(
    text: str, expected: list[str]
) -> None:
    """TypeError before, in the cross checks (sorting and joining names, iterating an int)."""
    assert problems_of(text) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1" * 5000, "is not a valid int (Exceeds the limit (4300 digits)"),
        ("2001-13-45", "'2001-13-45' is not a valid timestamp (month must be in 1..12)"),
        ("!!bool maybe", "'maybe' is not a valid bool (KeyError)"),
        ("!!int x", "'x' is not a valid int (invalid literal for int() with base 10: 'x')"),
        ("!!float x", "'x' is not a valid float (could not convert string to float: 'x')"),
        ("0000-00-00", "'0000-00-00' is not a valid timestamp (year 0 is out of range)"),
        ("!!int", "'' is not a valid int (IndexError)"),
        ("!!timestamp x", "'x' is not a valid timestamp (AttributeError)"),
    ],
    ids=["5000-digits", "timestamp", "bool", "int", "float", "year-0", "empty-int", "timestamp-x"],
)
def test_a_scalar_yaml_cannot_construct_is_a_model_error(value: str, message: str) -> None:
    """ValueError, KeyError, IndexError, AttributeError from PyYAML's constructors before."""
    problems = problems_of(HEAD + f"description: {value}\n")
    assert len(problems) == 1
    assert problems[0].startswith("(top) (line 5): not valid YAML: ")
    assert message in problems[0]


def test_a_huge_hex_integer_is_reported_without_printing_it() -> None:
    """6000 hex digits are read (no limit for base 16) and have no decimal text: ValueError."""
    big = "0x" + "f" * 6000
    for text in (
        HEAD.replace("at: 10", f"at: {big}"),
        with_rule(f"{{id: r, score: s, on: {{type: x}}, points: 1, expires: {big}}}"),
        with_rule(f"{{id: r, score: s, on: {{type: x, where: {{a: {big}}}}}, points: 1}}"),
        f"version: 1\nname: m\nscores:\n  s: {{}}\n  ? {big}\n  : {{}}\n",  # a long key
    ):
        problems = problems_of(text)
        assert any("an integer of about 7225 digits" in p for p in problems), problems


def test_a_regex_repetition_too_large_is_a_model_error() -> None:
    """re.compile raises OverflowError, not re.error, for a{4294967296}."""
    rule = "{id: r, score: s, on: {type: x, where: {a: {regex: 'a{4294967296}'}}}, points: 1}"
    assert problems_of(with_rule(rule)) == [
        "rules[0].on.where (line 6): cannot be compiled: OverflowError: "
        "the repetition number is too large"
    ]


@pytest.mark.parametrize("value", ["1.0e-9", "0.0001", "'1" + "0" * 5000 + "d'"])
def test_a_duration_under_a_millisecond_or_of_thousands_of_digits_is_a_model_error(
    value: str,
) -> None:
    """0.0001 (seconds) was read as 0 ms; 5000 digits made int() refuse with its own message."""
    problems = problems_of(
        with_rule(f"{{id: r, score: s, on: {{type: x}}, points: 1, expires: {value}}}")
    )
    assert len(problems) == 1
    assert problems[0].startswith("rules[0].expires (line 6): ")
    assert "at least 1ms" in problems[0] or "longer than 36500d (a century)" in problems[0]
    assert parse_model(with_rule("{id: r, score: s, on: {type: x}, points: 1, expires: 0.001}"))


def test_a_model_file_that_is_not_utf8_is_a_model_error(tmp_path: Path) -> None:
    """UnicodeDecodeError before (it is a ValueError, not an OSError)."""
    path = tmp_path / "latin1.yaml"
    path.write_bytes(HEAD.encode() + b"description: caf\xe9\n")
    with pytest.raises(ModelError) as caught:
        load_model(path)
    at = len(HEAD) + len("description: caf")
    assert caught.value.problems == [f"(file) (line 0): not UTF-8 text: byte {at} is 0xe9"]


@pytest.mark.parametrize("text", ["a: \x00", "a: \ud800", "\x85\x1b"])
def test_characters_yaml_refuses_are_a_model_error(text: str) -> None:
    problems = problems_of(text)
    assert len(problems) == 1
    assert "not valid YAML: unacceptable character" in problems[0]


def test_an_exception_no_check_foresaw_is_still_a_model_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The last resort: a hole in the checks is reported, and the properties above fail on it."""

    def broken(data: object) -> list[object]:
        raise RuntimeError("a check with a bug")

    monkeypatch.setattr(loader, "cross_check", broken)
    with pytest.raises(ModelError) as caught:
        parse_model(TEXTS[0], "m.yaml")
    assert caught.value.problems == [
        f"(top) (line ?): {UNFORESEEN} RuntimeError: a check with a bug"
    ]
