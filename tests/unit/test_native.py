"""The compiled build (mypyc) is the code under test, and a stale one is caught."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from stream_scorer.scoring import native

ROOT = Path(__file__).resolve().parents[2]


def test_every_listed_module_is_reported() -> None:
    assert set(native.compiled()) == set(native.MODULES)


def test_describe_names_the_build() -> None:
    state = native.compiled()
    text = native.describe()
    if all(state.values()):
        assert text.startswith("compiled")
    elif not any(state.values()):
        assert text == "pure Python"
    else:
        assert text.startswith("mixed")


def test_setup_compiles_exactly_the_listed_modules() -> None:
    setup = (ROOT / "setup.py").read_text()
    for name in native.MODULES:
        assert f'"{name.replace(".", "/")}.py"' in setup


def test_an_edited_source_makes_its_compiled_module_stale(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    package = tmp_path / "stream_scorer"
    record = {}
    for name in native.MODULES:
        source = name.replace(".", "/") + ".py"
        (tmp_path / source).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / source).write_text("x = 1\n")
        record[source] = hashlib.sha256(b"x = 1\n").hexdigest()
    (package / "_native.json").write_text(json.dumps(record))
    monkeypatch.setattr(native.resources, "files", lambda _: package)
    monkeypatch.setattr(native, "compiled", lambda: dict.fromkeys(native.MODULES, True))
    assert native.stale() == []
    (package / "scoring" / "engine.py").write_text("x = 2\n")
    assert native.stale() == ["stream_scorer.scoring.engine"]
    assert native.describe().endswith("STALE")
