"""The public Python API is what docs/python-api.md lists, and the docs import nothing else."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
API_DOC = ROOT / "docs" / "python-api.md"


def documented() -> dict[str, list[str]]:
    """Each ``## `module` `` section of the API page with the names of its table."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in API_DOC.read_text().splitlines():
        heading = re.fullmatch(r"## `([a-z_.]+)`", line)
        if heading:
            current = sections.setdefault(heading.group(1), [])
        elif current is not None and (row := re.match(r"\| `([A-Za-z_]+)` \|", line)):
            current.append(row.group(1))
    return sections


def test_the_page_lists_modules() -> None:
    sections = documented()
    assert {"stream_scorer", "stream_scorer.client", "stream_scorer.scoring"} <= set(sections)
    assert all(sections.values())


@pytest.mark.parametrize("module", sorted(documented()))
def test_each_documented_module_exports_exactly_what_the_page_lists(module: str) -> None:
    imported = importlib.import_module(module)
    exported = getattr(imported, "__all__", None)
    assert exported is not None, f"{module} has no __all__"
    listed = documented()[module]
    assert len(listed) == len(set(listed)), f"{module} is listed twice on the page"
    assert sorted(exported) == sorted(listed)
    for name in exported:
        assert hasattr(imported, name), f"{module}.{name} is in __all__ but missing"


def _doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_docs_import_only_public_names() -> None:
    """Every ``from stream_scorer... import`` in a doc's code and every dotted name it cites."""
    public = documented()
    cited: list[tuple[str, str, str]] = []
    for path in _doc_files():
        text = path.read_text()
        for block in re.findall(r"```python\n(.*?)```", text, re.S):
            for node in ast.walk(ast.parse(block)):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "stream_scorer"
                ):
                    cited += [(path.name, node.module or "", a.name) for a in node.names]
        for dotted in re.findall(r"`(stream_scorer(?:\.[a-z_]+)*)\.([A-Z][A-Za-z]+)`", text):
            cited.append((path.name, *dotted))
    assert cited, "the docs show no Python import at all"
    for doc, module, name in cited:
        assert module in public, f"{doc} imports from {module}, which is not public"
        assert name in public[module], f"{doc} uses {module}.{name}, not in its __all__"
