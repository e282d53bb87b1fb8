"""Reading a model file: YAML 1.2 booleans, and every problem with its place and line.

``on`` must stay a string key, so only ``true``/``false`` are booleans (YAML
1.1 would read ``on`` as True). Problems come back all at once, each as
``rules[3].expires (line 27): '9O d' is not a duration``.

Reading is total: any text gives a model or a :class:`ModelError`, never
another exception. A document may nest at most :data:`MAX_DEPTH` levels and
hold at most :data:`MAX_NODES` values, aliases counted each time they are
used (so a "billion laughs" of aliases is refused before it is built), and
no alias may contain itself.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from stream_scorer.errors import ModelError
from stream_scorer.scoring.model.compiled import ScoringModel, compile_model
from stream_scorer.scoring.model.spec import ModelSpec, brief, cross_check

#: How deeply a model document may nest (the shipped ones nest 9 levels).
MAX_DEPTH = 64
#: How many values (mappings, lists, scalars) a model document may hold, each
#: alias counted as the values it stands for (the shipped ones hold 300).
MAX_NODES = 100_000


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader whose booleans are only true/false, as in YAML 1.2.

    A scalar its constructor cannot read (``!!int x``, ``2001-13-45``, an
    integer of 5000 digits, ``!!bool maybe``, ``!!timestamp x``) is a YAML
    error with its place, not the ``ValueError``, ``KeyError`` or
    ``AttributeError`` the constructor raised.
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (yaml.YAMLError, RecursionError):
            raise
        except Exception as exc:  # ValueError, KeyError, IndexError, AttributeError (!!timestamp x)
            tag = str(node.tag).rsplit(":", 1)[-1]
            shown = brief(node.value) if isinstance(node, yaml.ScalarNode) else "a value"
            detail = str(exc)[:200] if isinstance(exc, ValueError) else type(exc).__name__
            raise yaml.constructor.ConstructorError(
                None, None, f"{shown} is not a valid {tag} ({detail})", node.start_mark
            ) from None


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class _Refused(Exception):
    """A document refused before it is built: ``line`` and why."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(problem)
        self.line = line
        self.problem = problem


_EXIT = object()


def _lines(root: yaml.Node) -> dict[tuple[Any, ...], int]:
    """The line of every place in the document, checking its depth, size and aliases.

    A loop, not recursion, with aliases followed as the data will have them:
    raises :class:`_Refused` for a document deeper than :data:`MAX_DEPTH`,
    larger than :data:`MAX_NODES` or with an alias inside what it names.
    """
    out: dict[tuple[Any, ...], int] = {}
    open_nodes: set[int] = set()  # the collections on the way to the current one
    count = 0
    todo: list[Any] = [(root, (), 1)]
    while todo:
        item = todo.pop()
        if item[0] is _EXIT:
            open_nodes.discard(item[1])
            continue
        node, path, depth = item
        line = node.start_mark.line + 1
        out.setdefault(path, line)
        count += 1
        if count > MAX_NODES:
            raise _Refused(line, f"more than {MAX_NODES} values (an alias counts as what it names)")
        if not isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            continue
        if depth > MAX_DEPTH:
            raise _Refused(line, f"nested deeper than {MAX_DEPTH} levels")
        if id(node) in open_nodes:
            raise _Refused(line, "an alias refers to a value that contains it")
        open_nodes.add(id(node))
        todo.append((_EXIT, id(node)))
        children: list[tuple[yaml.Node, tuple[Any, ...]]] = []
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode):
                    continue  # a list or mapping as a key: construction refuses it
                out[(*path, key.value)] = key.start_mark.line + 1
                children.append((value, (*path, key.value)))
        else:
            children = [(value, (*path, i)) for i, value in enumerate(node.value)]
        todo.extend((child, place, depth + 1) for child, place in reversed(children))
    return out


_TAG = re.compile(
    r"^(function-[a-z-]+\[.*\]|int|float|str|bool|none|lax-or-strict|"
    r"constrained-[a-z]+|(list|dict|tuple)\[.*\])$"
)


def _user_place(loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> tuple[Any, ...]:
    """pydantic's error location without its type tags (``int``, ``function-before[...]``)."""
    kept: tuple[Any, ...] = ()
    for part in loc:
        if isinstance(part, str) and (*kept, part) not in lines and _TAG.match(part):
            continue
        kept = (*kept, part)
    return kept


def place(loc: tuple[Any, ...]) -> str:
    """``('rules', 3, 'on', 'type')`` -> ``rules[3].on.type``."""
    text = ""
    for raw in loc:
        part = raw if isinstance(raw, str) else brief(raw, 40)
        text += f"[{part}]" if isinstance(raw, int) else (f".{part}" if text else part)
    return text or "(top)"


class _Yaml12Dumper(yaml.SafeDumper):
    """SafeDumper that, like the loader, leaves ``on``/``no``/``yes`` unquoted."""


_Yaml12Dumper.yaml_implicit_resolvers = _Yaml12Loader.yaml_implicit_resolvers


def write_document(data: Any) -> str:
    """Plain data as model YAML, in the order given."""
    return yaml.dump(data, Dumper=_Yaml12Dumper, sort_keys=False, allow_unicode=True, width=100)


def read_document(text: str) -> Any:
    """Model text as plain data, read as YAML 1.2 (``on``/``no`` stay strings) like the model."""
    return yaml.load(text, Loader=_Yaml12Loader)  # a SafeLoader subclass


def _read(text: str, source: str) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """The document's data and the line of each place; :class:`ModelError` if it has none."""
    loader: _Yaml12Loader | None = None
    try:
        loader = _Yaml12Loader(text)  # a SafeLoader subclass; refuses control characters
        node = loader.get_single_node()
        lines = _lines(node) if node is not None else {}
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "line ?"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ModelError(source, [f"(top) ({where}): not valid YAML: {problem}"]) from None
    except _Refused as exc:
        raise ModelError(source, [f"(top) (line {exc.line}): {exc.problem}"]) from None
    except RecursionError:  # the composer recurses once per level, before any check
        raise ModelError(
            source, [f"(top) (line ?): nested deeper than {MAX_DEPTH} levels"]
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, lines


def parse_model(text: str, source: str = "<model>") -> ScoringModel:
    """Validate model text; raise :class:`ModelError` listing every problem.

    Total: for any text it returns a model or raises :class:`ModelError`. An
    exception no check foresaw is still reported as a problem, ``(top)
    (line ?): cannot be read: ...`` (the property tests fail on it).
    """
    try:
        return _parse(text, source)
    except ModelError:
        raise
    except Exception as exc:  # a hole in the checks: still the user's problem to see
        problem = f"{type(exc).__name__}: {exc}"[:300]
        raise ModelError(source, [f"(top) (line ?): cannot be read: {problem}"]) from None


def _parse(text: str, source: str) -> ScoringModel:
    data, lines = _read(text, source)
    if not isinstance(data, dict):
        raise ModelError(source, ["(top) (line 1): the model must be a mapping of keys"])

    def line_of(loc: tuple[Any, ...]) -> int:
        return next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines), 1)

    problems: list[tuple[int, str]] = []
    spec: ModelSpec | None = None
    try:
        spec = ModelSpec.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = _user_place(err["loc"], lines)
            msg = err["msg"].removeprefix("Value error, ")
            got = err.get("input")
            shown = ""
            if (
                err["type"] not in ("value_error", "missing")
                and not isinstance(got, dict | list)
                and got is not None
            ):
                shown = f" (got {brief(got)})"
            problems.append((line_of(loc), f"{place(loc)} (line {line_of(loc)}): {msg}{shown}"))
    for loc, msg in cross_check(data):
        problems.append((line_of(loc), f"{place(loc)} (line {line_of(loc)}): {msg}"))
    if problems or spec is None:
        problems.sort(key=lambda p: p[0])
        raise ModelError(source, [text for _, text in problems])
    return compile_model(spec)


def load_model(path: str | Path) -> ScoringModel:
    """Read and validate a model file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelError(str(p), [f"(file) (line 0): cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ModelError(
            str(p),
            [f"(file) (line 0): not UTF-8 text: byte {exc.start} is {exc.object[exc.start]:#04x}"],
        ) from None
    return parse_model(text, str(p))
