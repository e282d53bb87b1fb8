"""The Helm chart: linted and rendered by the real helm, then its objects checked.

With the default values and with every option on (``ci/all-options-values.yaml``):
probes on /readyz and /livez, a rolling update that waits for readiness, a
non-root read-only container, secrets referenced and never inlined, only
``SCORER_*`` names the settings know, the model in a ConfigMap, and an
autoscaler capped at the partition count.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream_scorer.scoring.model.loader import parse_model
from stream_scorer.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "stream-scorer"
ALL_OPTIONS = CHART / "ci" / "all-options-values.yaml"
HELM = ROOT / ".venv" / "bin" / "helm"
SETTINGS = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}


def helm(*args: str) -> str:
    assert HELM.exists(), "helm is missing: run scripts/setup"
    done = subprocess.run(
        [str(HELM), *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def render(*values: Path) -> dict[str, dict[str, Any]]:
    """The chart's objects by kind (each kind once here, TriggerAuthentication included)."""
    text = helm("template", "scorer", str(CHART), *(f"--values={v}" for v in values))
    objects = [o for o in yaml.safe_load_all(text) if o]
    kinds = [o["kind"] for o in objects]
    assert len(kinds) == len(set(kinds)), kinds
    return {o["kind"]: o for o in objects}


@pytest.mark.parametrize("values", [(), (ALL_OPTIONS,)], ids=["defaults", "all-options"])
def test_the_chart_lints(values: tuple[Path, ...]) -> None:
    out = helm("lint", "--strict", str(CHART), *(f"--values={v}" for v in values))
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("values", [(), (ALL_OPTIONS,)], ids=["defaults", "all-options"])
def test_the_worker_is_probed_non_root_read_only_and_rolled_safely(
    values: tuple[Path, ...],
) -> None:
    deployment = render(*values)["Deployment"]
    spec = deployment["spec"]
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    [container] = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/tmp" in mounts, "a writable /tmp (Faust's data folder) on a read-only root"
    env = {e["name"]: e for e in container["env"]}
    assert set(env) <= SETTINGS, f"not settings: {sorted(set(env) - SETTINGS)}"
    assert env["SCORER_WEB_HOST"]["value"] == "0.0.0.0"
    assert "secretKeyRef" in env["SCORER_API_TOKEN"]["valueFrom"]


def test_secrets_are_referenced_never_inlined() -> None:
    objects = render(ALL_OPTIONS)
    assert "Secret" not in objects, "an existing token Secret is used, not made"
    container = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    secret_names = {
        "SCORER_KAFKA_SASL_USERNAME": "scorer-kafka-login",
        "SCORER_KAFKA_SASL_PASSWORD": "scorer-kafka-login",
        "SCORER_REDIS_USERNAME": "scorer-redis-login",
        "SCORER_REDIS_PASSWORD": "scorer-redis-login",
        "SCORER_API_TOKEN": "scorer-api-token",
    }
    for name, secret in secret_names.items():
        assert "value" not in env[name], f"{name} inlined"
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == secret
    for name, item in env.items():
        if any(word in name for word in ("PASSWORD", "TOKEN", "SECRET")):
            assert "value" not in item, f"{name} inlined"
    volumes = {v["name"]: v for v in objects["Deployment"]["spec"]["template"]["spec"]["volumes"]}
    assert volumes["kafka-tls"]["secret"]["secretName"] == "scorer-kafka-ca"
    assert volumes["redis-tls"]["secret"]["secretName"] == "scorer-redis-ca"
    assert env["SCORER_KAFKA_SSL_CAFILE"]["value"].startswith("/etc/stream-scorer/kafka-tls/")
    assert env["SCORER_DEDUPE_DAYS"]["value"] == "45"
    # YAML numbers reach Helm as floats: written whole, or an int setting is refused.
    assert env["SCORER_API_MAX_BODY_BYTES"]["value"] == "2097152"
    assert Settings(api_max_body_bytes=env["SCORER_API_MAX_BODY_BYTES"]["value"])


def test_without_a_token_secret_the_chart_makes_one_with_a_random_token() -> None:
    objects = render()
    secret = objects["Secret"]
    assert set(secret["data"]) == {"token"}
    again = render()["Secret"]
    assert secret["data"]["token"] != again["data"]["token"], "not a fixed token"
    container = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    token = next(e for e in container["env"] if e["name"] == "SCORER_API_TOKEN")
    assert token["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]


def test_the_model_is_a_configmap_the_default_one_unless_given() -> None:
    default = render()["ConfigMap"]["data"]["scoring.yaml"]
    assert default.strip() == (ROOT / "config" / "scoring.yaml").read_text().strip()
    given = render(ALL_OPTIONS)
    model = parse_model(given["ConfigMap"]["data"]["scoring.yaml"])
    assert model.name == "tiny"
    container = given["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "model")
    assert env["SCORER_MODEL_PATH"] == f"{mount['mountPath']}/scoring.yaml"
    annotations = given["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert (
        annotations["checksum/model"]
        != render()["Deployment"]["spec"]["template"]["metadata"]["annotations"]["checksum/model"]
    ), "a model change rolls the workers"


def test_the_autoscaler_is_capped_at_the_partition_count(tmp_path: Path) -> None:
    objects = render(ALL_OPTIONS)
    scaled = objects["ScaledObject"]
    assert scaled["spec"]["maxReplicaCount"] == 12  # maxReplicas 50, 12 partitions
    assert "replicas" not in objects["Deployment"]["spec"], "KEDA owns the replica count"
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["metadata"]["consumerGroup"] == "scorer-prod"
    assert trigger["metadata"]["topic"] == "prod.events"
    assert trigger["metadata"]["sasl"] == "scram_sha512"
    assert (
        trigger["authenticationRef"]["name"] == objects["TriggerAuthentication"]["metadata"]["name"]
    )
    few = tmp_path / "few.yaml"
    few.write_text("keda: {enabled: true, maxReplicas: 3}\npartitions: 12\n")
    assert render(few)["ScaledObject"]["spec"]["maxReplicaCount"] == 3
    plain = tmp_path / "plain.yaml"  # SASL without a mechanism: PLAIN, as the worker
    plain.write_text("keda: {enabled: true}\nkafka: {securityProtocol: SASL_SSL}\n")
    [trigger] = render(plain)["ScaledObject"]["spec"]["triggers"]
    assert trigger["metadata"]["sasl"] == "plaintext"
    assert trigger["metadata"]["tls"] == "enable"


def test_the_service_monitor_and_disruption_budget() -> None:
    objects = render(ALL_OPTIONS)
    [endpoint] = objects["ServiceMonitor"]["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] == "web"
    assert objects["ServiceMonitor"]["metadata"]["labels"]["release"] == "prometheus"
    assert objects["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    assert "ServiceMonitor" not in render(), "off by default"


def test_notes_say_how_to_reach_the_dashboard() -> None:
    # helm renders NOTES.txt only on install, which needs a cluster: the text is checked.
    notes = (CHART / "templates" / "NOTES.txt").read_text()
    assert "kubectl port-forward" in notes
    assert "/dashboard?token=$TOKEN" in notes
    assert 'include "stream-scorer.tokenSecret" .' in notes, "the token Secret the pods read"


@pytest.mark.parametrize(
    "values",
    [
        "partitions: 0\n",
        "keda: {maxReplicas: '08'}\n",  # a string Helm's int would read as octal
        "kafka: {saslMechanism: scram-sha-512}\n",  # the worker takes only the upper case
        "env: {SCORER_LOG_LEVEL: {level: debug}}\n",  # a map would render as 'map[...]'
        "env: {LOG_LEVEL: debug}\n",  # not a setting of ours
        "model: {name: x}\n",  # a model is the file's text
        "redis: {url: 'http://cache:6379'}\n",
        "keda: {enabled: true, minReplicas: 9}\npartitions: 4\n",  # above the cap
    ],
)
def test_values_that_cannot_work_are_refused_at_render(tmp_path: Path, values: str) -> None:
    given = tmp_path / "values.yaml"
    given.write_text(values)
    done = subprocess.run(
        [str(HELM), "template", "scorer", str(CHART), f"--values={given}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0, f"rendered: {values}"
    assert "schema" in done.stderr or "keda.minReplicas" in done.stderr, done.stderr
