"""Unit tests for the stream_scorer package surface."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import pytest

import stream_scorer
from stream_scorer import errors, settings

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_all_names_are_importable() -> None:
    module = importlib.import_module("stream_scorer")
    assert len(stream_scorer.__all__) == len(set(stream_scorer.__all__))
    for name in stream_scorer.__all__:
        assert hasattr(module, name), name
        namespace: dict[str, object] = {}
        exec(f"from stream_scorer import {name}", namespace)
        assert namespace[name] is getattr(module, name)


def test_all_names_are_the_real_objects() -> None:
    assert stream_scorer.ConfigError is errors.ConfigError
    assert stream_scorer.InvalidEvent is errors.InvalidEvent
    assert stream_scorer.ModelError is errors.ModelError
    assert stream_scorer.ScorerError is errors.ScorerError
    assert stream_scorer.ServiceUnavailable is errors.ServiceUnavailable
    assert stream_scorer.Settings is settings.Settings
    assert stream_scorer.load_settings is settings.load_settings


@pytest.mark.parametrize(
    "name", ["ConfigError", "InvalidEvent", "ModelError", "ServiceUnavailable"]
)
def test_errors_share_a_base(name: str) -> None:
    cls = getattr(stream_scorer, name)
    assert issubclass(cls, stream_scorer.ScorerError)
    assert issubclass(cls, Exception)


def test_version_matches_pyproject() -> None:
    with PYPROJECT.open("rb") as f:
        project = tomllib.load(f)["project"]
    assert project["name"] == "stream-scorer"
    assert stream_scorer.__version__ == project["version"]


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from stream_scorer import *", namespace)
    exported = {k for k in namespace if k != "__builtins__"}
    assert exported == set(stream_scorer.__all__)
