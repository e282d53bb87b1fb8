"""Unit tests for the stream-scorer command line (no Kafka, no Redis)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stream_scorer.cli import cli

DEFAULT_MODEL = "config/scoring.yaml"
EXAMPLE_MODELS = {
    "config/examples/fit-engagement-grade.yaml": "fit-engagement-grade v1, 12 rules",
    "config/examples/gate-blocks-class-digit.yaml": "gate-blocks v1, 7 rules",
}

BAD_MODEL = (
    "version: 0\n"  # 1
    "name: bad\n"  # 2
    "scores:\n"  # 3
    "  engagement: {min: 10, max: 5}\n"  # 4
    "rules:\n"  # 5
    "  - {id: a, score: engagement, on: {type: x}, points: lots}\n"  # 6
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("SCORER_"):
            monkeypatch.delenv(name)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_model_check_default_model(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["model", "check", DEFAULT_MODEL])
    assert result.exit_code == 0, result.output
    assert f"{DEFAULT_MODEL}: ok" in result.stdout
    assert result.stdout == f"{DEFAULT_MODEL}: ok (b2b-default v1, 24 rules)\n"
    assert result.stderr == ""


@pytest.mark.parametrize(("path", "summary"), sorted(EXAMPLE_MODELS.items()))
def test_model_check_example_model(runner: CliRunner, path: str, summary: str) -> None:
    result = runner.invoke(cli, ["model", "check", path])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{path}: ok ({summary})\n"
    assert result.stderr == ""


def test_model_check_every_shipped_model_at_once(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["model", "check", DEFAULT_MODEL, *sorted(EXAMPLE_MODELS)])
    assert result.exit_code == 0, result.output
    assert [line.split(": ")[0] for line in result.stdout.splitlines()] == [
        DEFAULT_MODEL,
        *sorted(EXAMPLE_MODELS),
    ]
    assert all(": ok (" in line for line in result.stdout.splitlines())


def test_model_check_bad_model_lists_every_problem(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_MODEL, encoding="utf-8")
    result = runner.invoke(cli, ["model", "check", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}: invalid" in result.output
    lines = result.stderr.splitlines()
    problem_lines = [line for line in lines if line.startswith("  ")]
    assert len(problem_lines) == 3
    assert any(line.startswith("  version (line 1): ") for line in problem_lines)
    assert any(line.startswith("  scores.engagement (line 4): ") for line in problem_lines)
    assert any(line.startswith("  rules[0].points (line 6): ") for line in problem_lines)
    assert "ok" not in result.stdout


def test_model_check_mixed_files_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: m\ncolour: red\nscores: {s: {}}\n", encoding="utf-8")
    result = runner.invoke(cli, ["model", "check", DEFAULT_MODEL, str(bad)])
    assert result.exit_code == 1
    assert f"{DEFAULT_MODEL}: ok" in result.stdout
    assert f"{bad}: invalid" in result.stderr
    assert "colour (line 3)" in result.stderr


def test_model_check_missing_file(runner: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = runner.invoke(cli, ["model", "check", str(missing)])
    assert result.exit_code == 1
    assert f"{missing}: invalid" in result.output
    assert "  (file) (line 0): cannot read: No such file or directory" in result.stderr


def test_model_check_yaml_syntax_error(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("version: 1\nname: m\n  bad: indent\n", encoding="utf-8")
    result = runner.invoke(cli, ["model", "check", str(bad)])
    assert result.exit_code == 1
    assert "(line 3): not valid YAML" in result.output


def test_model_check_needs_a_file(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["model", "check"])
    assert result.exit_code == 2


def test_worker_with_bad_port_exits_2(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["worker"], env={"SCORER_WEB_PORT": "notaport"})
    assert result.exit_code == 2, result.output
    assert "SCORER_WEB_PORT" in result.stderr
    assert "notaport" in result.stderr
    assert result.output.startswith("error: invalid configuration")


def test_worker_with_bad_model_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_MODEL, encoding="utf-8")
    result = runner.invoke(cli, ["worker"], env={"SCORER_MODEL_PATH": str(bad)})
    assert result.exit_code == 1, result.output
    assert "3 problem(s)" in result.stderr
    assert "rules[0].points (line 6)" in result.stderr


def test_alerts_tail_with_bad_settings_exits_2(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["alerts", "tail"], env={"SCORER_REDIS_URL": "http://x"})
    assert result.exit_code == 2, result.output
    assert "SCORER_REDIS_URL" in result.stderr


def test_no_arguments_shows_help(runner: CliRunner) -> None:
    result = runner.invoke(cli, [])
    assert result.exit_code == 2
    assert "Usage" in result.output
    for command in ("worker", "demo", "model", "alerts"):
        assert command in result.output


def test_demo_with_bad_model_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_MODEL, encoding="utf-8")
    result = runner.invoke(cli, ["demo", "--model", str(bad)])
    assert result.exit_code == 1, result.output
    assert "version (line 1)" in result.stderr


@pytest.mark.parametrize(("kind", "file"), [("events", "event"), ("alerts", "alert")])
def test_committed_json_schemas_match_the_models(runner: CliRunner, kind: str, file: str) -> None:
    result = runner.invoke(cli, ["schema", kind])
    assert result.exit_code == 0
    committed = Path(f"docs/schemas/{file}.schema.json").read_text()
    assert result.stdout == committed, (
        f"run: stream-scorer schema {kind} > docs/schemas/{file}.schema.json"
    )
    assert json.loads(committed)["title"] == ("Event" if kind == "events" else "Alert")


def test_kafka_commands_end_a_bad_tls_file_with_one_line(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read as the client starts: a configuration error (exit 2), not a traceback."""
    empty = tmp_path / "ca.pem"
    empty.write_text("no certificate here\n")
    events = tmp_path / "events.jsonl"
    events.write_text("")
    monkeypatch.setenv("SCORER_KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("SCORER_KAFKA_SSL_CAFILE", str(empty))
    for command in (["produce", str(events)], ["alerts", "tail"], ["demo", "--produce-only"]):
        result = runner.invoke(cli, command)
        assert result.exit_code == 2, (command, result.output)
        assert "SCORER_KAFKA_SSL_CAFILE: no CA certificate could be read" in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)


def test_the_producer_alone_fails_when_kafka_is_away_whatever_its_duration(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stream_scorer.dev.services import free_port

    monkeypatch.setenv("SCORER_KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")
    result = runner.invoke(cli, ["demo", "--produce-only", "--duration", "2"])
    assert result.exit_code == 1, result.output
    assert "error: " in result.output
    assert runner.invoke(cli, ["demo", "--produce-only", "--duration", "0"]).exit_code == 2
