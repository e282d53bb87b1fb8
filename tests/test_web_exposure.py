"""The worker serves its API on the network only with a token, or when told to (no services)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stream_scorer.cli import cli
from stream_scorer.settings import Settings
from stream_scorer.worker.api import exposure_problem, host_name, is_loopback, token_matches

LOOPBACK = ["127.0.0.1", "127.3.2.1", "127.255.255.254", "::1", "[::1]", "localhost", "LocalHost"]
LOOPBACK += ["::ffff:127.0.0.1", " 127.0.0.1 "]
NETWORK = ["0.0.0.0", "::", "[::]", "", "192.168.1.10", "10.0.0.1", "128.0.0.1", "::2"]
NETWORK += ["example.com", "localhost.example.com", "my-localhost", "127.1", "not an address"]
NETWORK += ["::ffff:10.0.0.1", "fe80::1"]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SCORER_ variable, nor Faust's own WEB_BIND, from the caller's shell."""
    for name in list(os.environ):
        if name.upper().startswith("SCORER_") or name.upper() == "WEB_BIND":
            monkeypatch.delenv(name)


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)
    assert exposure_problem(Settings(web_host=host)) is None


@pytest.mark.parametrize("host", NETWORK)
def test_a_network_host_needs_a_token_or_the_explicit_flag(host: str) -> None:
    assert not is_loopback(host)
    problem = exposure_problem(Settings(web_host=host))
    assert problem is not None
    for hint in ("SCORER_API_TOKEN", "SCORER_WEB_HOST", "SCORER_WEB_ALLOW_NO_TOKEN"):
        assert hint in problem
    assert exposure_problem(Settings(web_host=host, api_token="t0ken")) is None  # type: ignore[arg-type]
    assert exposure_problem(Settings(web_host=host, web_allow_no_token=True)) is None


def test_an_empty_token_is_no_token() -> None:
    """The API treats an empty token as unset (open), so the check must too."""
    assert exposure_problem(Settings(web_host="0.0.0.0", api_token="")) is not None  # type: ignore[arg-type]


def test_the_address_faust_binds_is_what_counts() -> None:
    settings = Settings()  # 127.0.0.1
    assert exposure_problem(settings) is None
    assert exposure_problem(settings, "0.0.0.0") is not None


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("localhost", "localhost"),
        ("LocalHost:6066", "localhost"),
        ("127.0.0.1:6066", "127.0.0.1"),
        ("[::1]", "::1"),
        ("[::1]:6066", "::1"),
        ("::1", "::1"),  # no port can follow an unbracketed IPv6 address
        ("attacker.example:80", "attacker.example"),
        ("", ""),
    ],
)
def test_the_name_in_a_host_header(header: str, name: str) -> None:
    assert host_name(header) == name


@pytest.mark.parametrize(
    "header",
    ["localhost:", "localhost:x", "localhost:6066x", "[::1", "[::1]x", "[::1]:", "a:\u0661"],
)
def test_a_malformed_host_header_names_nothing(header: str) -> None:
    assert host_name(header) is None


@pytest.mark.parametrize("given", ["\udcff", "t0ken\udcff", chr(0xD800), "", "t0ke", "t0ken "])
def test_a_token_that_is_not_the_token_never_matches_and_never_raises(given: str) -> None:
    """Header bytes that are not UTF-8 reach the check as lone surrogates."""
    assert not token_matches(given, "t0ken")
    assert token_matches("t0ken", "t0ken")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_worker_refuses_a_network_host_without_a_token(runner: CliRunner, tmp_path: Path) -> None:
    """First thing, like a bad setting: the (missing) model is not even read."""
    env = {"SCORER_WEB_HOST": "0.0.0.0", "SCORER_MODEL_PATH": str(tmp_path / "none.yaml")}
    result = runner.invoke(cli, ["worker"], env=env)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: invalid configuration")
    assert "'0.0.0.0'" in result.stderr
    assert "SCORER_API_TOKEN" in result.stderr


def test_worker_refuses_faust_binding_the_network_behind_its_back(runner: CliRunner) -> None:
    """Faust's own WEB_BIND variable overrides SCORER_WEB_HOST: the check sees it too."""
    result = runner.invoke(cli, ["worker"], env={"WEB_BIND": "0.0.0.0"})
    assert result.exit_code == 2, result.output
    assert "'0.0.0.0' (Faust's WEB_BIND overrides SCORER_WEB_HOST)" in result.stderr
    assert "SCORER_API_TOKEN" in result.stderr


@pytest.mark.parametrize(
    "allowed", [{"SCORER_API_TOKEN": "t0ken"}, {"SCORER_WEB_ALLOW_NO_TOKEN": "true"}]
)
def test_worker_passes_the_check_with_a_token_or_the_flag(
    runner: CliRunner, tmp_path: Path, allowed: dict[str, str]
) -> None:
    """Past the check it goes on to load the model (missing here: exit 1, no network)."""
    env = {"SCORER_WEB_HOST": "0.0.0.0", "SCORER_MODEL_PATH": str(tmp_path / "none.yaml")}
    result = runner.invoke(cli, ["worker"], env={**env, **allowed})
    assert result.exit_code == 1, result.output
    assert "SCORER_API_TOKEN" not in result.stderr
