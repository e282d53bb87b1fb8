"""The compiled build (mypyc) is the code under test, and a stale one is caught."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
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


def test_the_list_of_compiled_modules_is_read_from_one_place() -> None:
    """setup.py (what it compiles) and scripts/setup (what it hashes) read MODULES."""
    assert native.sources() == [m.replace(".", "/") + ".py" for m in native.MODULES]
    for source in native.sources():
        assert (ROOT / source).is_file(), source
    listed = subprocess.run(
        [sys.executable, "-I", "stream_scorer/scoring/native.py", "--sources"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert listed == native.sources()
    assert (
        'runpy.run_path("stream_scorer/scoring/native.py")["sources"]()'
        in (ROOT / "setup.py").read_text()
    )
    setup_script = (ROOT / "scripts" / "setup").read_text()
    assert "stream_scorer/scoring/native.py --sources" in setup_script
    assert "native_sources=(setup.py stream_scorer/scoring/native.py" in setup_script


def test_every_module_of_the_scoring_path_is_compiled() -> None:
    """A new module of the engine left out of MODULES would run interpreted."""
    scoring = ROOT / "stream_scorer" / "scoring"
    interpreted = {
        "stream_scorer/scoring/__init__.py",
        "stream_scorer/scoring/native.py",  # the build check itself
        "stream_scorer/scoring/model/__init__.py",
        "stream_scorer/scoring/model/loader.py",  # reads YAML, once per model
        "stream_scorer/scoring/model/spec.py",  # pydantic: validation, once per model
        "stream_scorer/scoring/records.py",  # msgspec schemas: it reads their annotations
    }
    found = {str(p.relative_to(ROOT)) for p in scoring.rglob("*.py")}
    assert found - interpreted == set(native.sources())


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
