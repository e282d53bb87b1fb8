"""The condition language shared by event ``where``, attribute ``when`` and gates.

A condition is a mapping. Each key is a property path (dots reach into
nested objects: ``utm.source``) whose value is either a plain value
(equality) or a mapping of operators; several keys must all hold. The keys
``all``, ``any`` (lists of conditions) and ``not`` (a condition) combine.

Operators: ``equals``, ``in``, ``not_in``, ``contains``, ``glob``, ``regex``,
``gt``, ``gte``, ``lt``, ``lte``, ``exists``. ``contains`` and ``glob`` ignore
case, as marketers expect of "title contains VP"; ``regex`` is as written
(add ``(?i)`` to ignore case). Numeric operators accept numbers and numeric
strings (CRMs often send ``"34"``). A missing property satisfies only
``exists: false`` and negations.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

Matcher = Callable[[Mapping[str, Any]], bool]

OPERATORS = (
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
_MISSING = object()
# Tuples, not ``int | float``: compiled, a union in isinstance is built anew on each call.
_NUMBER = (int, float)
_SCALAR = (str, int, float, bool)


class ConditionError(ValueError):
    """A condition that cannot be compiled; the message starts with its path."""


def _get(data: Mapping[str, Any], key: str) -> Any:
    if isinstance(data, dict):  # compiled: a dict lookup, not a call of a method by name
        return data.get(key, _MISSING)
    return data.get(key, _MISSING)


def _lookup(path: tuple[str, ...]) -> Callable[[Mapping[str, Any]], Any]:
    if len(path) == 1:
        key = path[0]
        return lambda data: data.get(key, _MISSING)

    def get(data: Mapping[str, Any]) -> Any:
        value: Any = data
        for part in path:
            if not isinstance(value, Mapping) or part not in value:
                return _MISSING
            value = value[part]
        return value

    return get


def as_number(value: Any) -> float | None:
    """A number, or numeric text such as ``"34"``; None for anything else (NaN included)."""
    if isinstance(value, bool) or value is None or value is _MISSING:
        return None
    if isinstance(value, _NUMBER):
        return float(value) if not math.isnan(value) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return None if math.isnan(number) or math.isinf(number) else number
    return None


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b if isinstance(a, bool) and isinstance(b, bool) else False
    if isinstance(a, _NUMBER) and isinstance(b, _NUMBER):
        return float(a) == float(b)
    return bool(a == b)


def _key(value: Any) -> Any:
    """A set key with :func:`_equal`'s meaning: numbers by value, bools apart from numbers."""
    if isinstance(value, bool):
        return (bool, value)
    if isinstance(value, _NUMBER):
        return float(value)
    return value


def _hashable(value: Any) -> bool:
    return value is None or isinstance(value, _SCALAR)


def _scalar(value: Any, where: str) -> Any:
    if value is None or isinstance(value, _SCALAR):
        return value
    raise ConditionError(f"{where}: expected a plain value, got {type(value).__name__}")


def _operator(name: str, arg: Any, where: str) -> Callable[[Any], bool]:
    here = f"{where}.{name}"
    if name == "equals":
        expected = _scalar(arg, here)
        return lambda v: v is not _MISSING and _equal(v, expected)
    if name in ("in", "not_in"):
        if not isinstance(arg, list) or not arg:
            raise ConditionError(f"{here}: expected a non-empty list")
        options = frozenset(_key(_scalar(a, here)) for a in arg)
        if name == "in":
            return lambda v: v is not _MISSING and _hashable(v) and _key(v) in options
        return lambda v: v is _MISSING or not _hashable(v) or _key(v) not in options
    if name == "contains":
        if not isinstance(arg, str) or not arg:
            raise ConditionError(f"{here}: expected a non-empty string")
        needle = arg.casefold()

        def contains(v: Any) -> bool:
            if isinstance(v, str):
                return needle in v.casefold()
            if isinstance(v, list):
                return any(isinstance(x, str) and x.casefold() == needle for x in v)
            return False

        return contains
    if name == "glob":
        if not isinstance(arg, str) or not arg:
            raise ConditionError(f"{here}: expected a non-empty pattern such as '*/pricing*'")
        matches = glob_matcher(arg.casefold())
        return lambda v: isinstance(v, str) and matches(v.casefold())
    if name == "regex":
        if not isinstance(arg, str) or not arg:
            raise ConditionError(f"{here}: expected a regular expression")
        try:
            rx = re.compile(arg)
        except re.error as exc:
            raise ConditionError(
                f"{here}: {arg!r} is not a valid regular expression: {exc}"
            ) from None
        return lambda v: isinstance(v, str) and rx.search(v) is not None
    if name in ("gt", "gte", "lt", "lte"):
        bound = as_number(arg)
        if bound is None or isinstance(arg, str):
            raise ConditionError(f"{here}: expected a number, got {arg!r}")
        compare: Callable[[float], bool] = {
            "gt": lambda x: x > bound,
            "gte": lambda x: x >= bound,
            "lt": lambda x: x < bound,
            "lte": lambda x: x <= bound,
        }[name]

        def numeric(v: Any) -> bool:
            number = as_number(v)
            return number is not None and compare(number)

        return numeric
    if name == "exists":
        if not isinstance(arg, bool):
            raise ConditionError(f"{here}: expected true or false")
        want = arg
        return lambda v: (v is not _MISSING and v is not None) == want
    known = ", ".join(OPERATORS)
    raise ConditionError(f"{here}: unknown operator {name!r} (known: {known})")


def glob_matcher(pattern: str) -> Callable[[str], bool]:
    """``fnmatch`` of the whole text; patterns whose only wildcard is ``*`` skip the regex.

    Those are nearly all patterns in practice (``*/pricing*``), and a regex
    with a leading ``.*`` was the costliest part of matching a page visit.
    """
    if any(c in pattern for c in "?["):
        rx = re.compile(fnmatch.translate(pattern), re.DOTALL)
        return lambda text: rx.match(text) is not None
    parts = pattern.split("*")
    if len(parts) == 1:
        return lambda text: text == pattern
    head, middle, tail = parts[0], [p for p in parts[1:-1] if p], parts[-1]
    least = len(head) + len(tail)

    def matches(text: str) -> bool:
        if len(text) < least or not text.startswith(head) or not text.endswith(tail):
            return False
        pos, end = len(head), len(text) - len(tail)
        for part in middle:  # each in order, leftmost: as a backtracking ".*" would allow
            found = text.find(part, pos, end)
            if found < 0:
                return False
            pos = found + len(part)
        return True

    return matches


def compile_condition(spec: Any, where: str = "condition") -> Matcher:
    """Compile a condition mapping into a predicate over a property mapping."""
    if not isinstance(spec, Mapping) or not spec:
        raise ConditionError(f"{where}: expected a non-empty mapping of property: test")
    parts: list[Matcher] = []
    for key, value in spec.items():
        if not isinstance(key, str) or not key:
            raise ConditionError(f"{where}: keys must be property names, got {key!r}")
        here = f"{where}.{key}"
        if key in ("all", "any"):
            if not isinstance(value, list) or not value:
                raise ConditionError(f"{here}: expected a non-empty list of conditions")
            subs = [compile_condition(s, f"{here}[{i}]") for i, s in enumerate(value)]
            parts.append(_every(subs) if key == "all" else _some(subs))
            continue
        if key == "not":
            parts.append(_negate(compile_condition(value, here)))
            continue
        if isinstance(value, Mapping):
            if not value:
                raise ConditionError(f"{here}: expected at least one operator")
            tests = [_operator(str(op), arg, here) for op, arg in value.items()]
        else:
            tests = [_operator("equals", value, here)]
        parts.append(_property(tuple(key.split(".")), tests))
    return parts[0] if len(parts) == 1 else _every(parts)


def _every(parts: list[Matcher]) -> Matcher:
    return lambda d: all(p(d) for p in parts)


def _some(parts: list[Matcher]) -> Matcher:
    return lambda d: any(p(d) for p in parts)


def _negate(inner: Matcher) -> Matcher:
    return lambda d: not inner(d)


def _property(path: tuple[str, ...], tests: list[Callable[[Any], bool]]) -> Matcher:
    if len(tests) == 1 and len(path) == 1:  # the usual case, one call fewer per event
        key, test = path[0], tests[0]
        return lambda d: test(_get(d, key))
    get = _lookup(path)
    if len(tests) == 1:
        test = tests[0]
        return lambda d: test(get(d))
    return lambda d: all(t(get(d)) for t in tests)


def condition_keys(spec: Any) -> set[str]:
    """Top-level property names a condition reads (for documentation and checks)."""
    keys: set[str] = set()
    if isinstance(spec, Mapping):
        for key, value in spec.items():
            if key in ("all", "any") and isinstance(value, list):
                for sub in value:
                    keys |= condition_keys(sub)
            elif key == "not":
                keys |= condition_keys(value)
            else:
                keys.add(str(key).split(".")[0])
    return keys
