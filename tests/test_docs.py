"""Documentation that must not drift from the code."""

from __future__ import annotations

from pathlib import Path

from stream_scorer.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[1]


def test_readme_and_env_example_list_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    example = (ROOT / "config" / ".env.example").read_text()
    for name, field in Settings.model_fields.items():
        var = f"{ENV_PREFIX}{name.upper()}"
        assert f"`{var}`" in readme, f"{var} is missing from the README"
        line = f"# {var}=" if field.default is None else f"{var}={field.default}"
        assert line in example, f"{var} is missing from .env.example"


def test_readme_quick_start_commands_exist_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "scripts/demo " in readme
    assert "scripts/test " in readme
    for script in ("scripts/demo", "scripts/test", "scripts/setup", ".ci/run"):
        path = ROOT / script
        assert path.stat().st_mode & 0o111, f"{script} is not executable"
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_consuming_alerts_example_is_valid_python_on_the_default_topic() -> None:
    import ast
    import re

    text = (ROOT / "docs" / "consuming-alerts.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 2
    for block in blocks:
        ast.parse(block)
    tree = ast.parse(blocks[-1])
    assert any(isinstance(n, ast.Constant) and n.value == "scorer.alerts" for n in ast.walk(tree))
    assert Settings.model_fields["alerts_topic"].default == "scorer.alerts"
    for field in ("alert_id", "direction", "tier", "contact_id", "display"):
        assert f"`{field}`" in text


def test_the_documented_signature_check_accepts_the_sinks_signature() -> None:
    import re

    from stream_scorer.worker.webhooks import signature

    text = (ROOT / "docs" / "consuming-alerts.md").read_text()
    scope: dict[str, object] = {}
    exec(re.findall(r"```python\n(.*?)```", text, re.S)[0], scope)
    verify = scope["verify_signature"]
    alert_id = "a1" * 20  # the 40 hex digits of a real alert id
    body, now = b'{"alert_id": "%s"}' % alert_id.encode(), 1_760_000_000
    header = signature("k", now, alert_id, body)
    assert verify("k", str(now), alert_id, body, header, now=now)  # type: ignore[operator]
    assert not verify("k", str(now), alert_id, body + b" ", header, now=now)  # type: ignore[operator]
    assert not verify("k", str(now), "b2" * 20, body, header, now=now)  # type: ignore[operator]
    assert not verify("k", str(now), alert_id, body, header, now=now + 301)  # type: ignore[operator]


def test_deploying_shows_the_workers_acl_rules_and_only_real_settings() -> None:
    import re

    from stream_scorer.connections.redis import DEFAULT_USER_ACL_RULES, WORKER_ACL_RULES

    text = (ROOT / "docs" / "deploying.md").read_text()
    rules = " ".join(WORKER_ACL_RULES)
    assert f"ACL SETUSER scorer on >CHANGE-ME {rules}\n" in text
    default = f"user default {' '.join(DEFAULT_USER_ACL_RULES)}\n"
    assert f"{default}user scorer on >CHANGE-ME {rules}\n" in text
    named = set(re.findall(r"(?<![A-Za-z0-9_])SCORER_[A-Z_]+[A-Z]", text))
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    assert named - known == set(), "docs/deploying.md names settings that do not exist"
    assert {"SCORER_KAFKA_SASL_PASSWORD", "SCORER_REDIS_CLUSTER"} <= named
