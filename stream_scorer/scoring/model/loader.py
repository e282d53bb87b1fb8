"""Reading a model file: YAML 1.2 booleans, and every problem with its place and line.

``on`` must stay a string key, so only ``true``/``false`` are booleans (YAML
1.1 would read ``on`` as True). Problems come back all at once, each as
``rules[3].expires (line 27): '9O d' is not a duration``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from stream_scorer.errors import ModelError
from stream_scorer.scoring.model.compiled import ScoringModel, compile_model
from stream_scorer.scoring.model.spec import ModelSpec, cross_check


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader whose booleans are only true/false, as in YAML 1.2."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _lines(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out[(*path, key.value)] = key.start_mark.line + 1
            _lines(value, (*path, key.value), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, (*path, i), out)


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
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
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


def parse_model(text: str, source: str = "<model>") -> ScoringModel:
    """Validate model text; raise :class:`ModelError` listing every problem."""
    try:
        node = yaml.compose(text, Loader=_Yaml12Loader)
        data = yaml.load(text, Loader=_Yaml12Loader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "line ?"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ModelError(source, [f"(top) ({where}): not valid YAML: {problem}"]) from None
    if not isinstance(data, dict):
        raise ModelError(source, ["(top) (line 1): the model must be a mapping of keys"])
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _lines(node, (), lines)

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
                shown = f" (got {got!r})"
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
    return parse_model(text, str(p))
