"""docs/refining-your-model.md: its commands run, in order, and do what it says."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stream_scorer.cli import cli

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "refining-your-model.md"


def _commands() -> list[list[str]]:
    text = DOC.read_text()
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", "", block)
        for line in joined.splitlines():
            line = line.strip()
            if line.startswith("stream-scorer "):
                out.append(shlex.split(line)[1:])
    return out


def test_the_walk_through_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(ROOT / "config", tmp_path / "config")
    monkeypatch.chdir(tmp_path)
    commands = _commands()
    assert [c[0] for c in commands] == [
        "simulate", "backtest", "backtest", "evaluate", "tune",
        "model", "backtest", "evaluate",
    ]  # fmt: skip
    runner = CliRunner()
    for args in commands:
        if args[0] == "simulate":  # smaller than the doc's, to keep the suite quick
            args = ["simulate", "--contacts", "1500", "--days", "120", "--out", "history"]
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, (args, result.output)

    for run in ("current", "tuned", "may"):
        assert (tmp_path / "review" / run / "scores.jsonl").stat().st_size > 0
    may = json.loads((tmp_path / "review" / "may" / "backtest.json").read_text())
    assert may["as_of"] == "2026-05-01T00:00:00.000Z"
    assert may["point_in_time"] == "as_of"
    current = json.loads((tmp_path / "review" / "current" / "report.json").read_text())
    assert current["point_in_time"] == "before_conversion"
    assert current["counts"]["excluded_converted_before_as_of"] == 0
    assert 0.5 < current["roc"]["auc"] <= 1.0
    page = (tmp_path / "review" / "tuned" / "report.html").read_text()
    assert page.lower().startswith("<!doctype html>")
    assert "held-out AUC" in (tmp_path / "review" / "tuned.yaml").read_text()
