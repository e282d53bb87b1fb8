"""deploy/compose.yaml: every service healthy before what needs it, real settings only,
ports on loopback, Grafana provisioned with the shipped dashboard; its producer runs."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaConsumer

from stream_scorer.settings import ENV_PREFIX, Settings

from ..support.services import Services
from ..support.workers import unique_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
SETTINGS = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}


def test_every_service_has_a_healthcheck() -> None:
    assert {"kafka", "redis", "scorer", "producer", "prometheus", "grafana"} <= set(SERVICES)
    for name, service in SERVICES.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_the_worker_waits_for_healthy_kafka_and_redis() -> None:
    needs = SERVICES["scorer"]["depends_on"]
    assert needs["kafka"]["condition"] == "service_healthy"
    assert needs["redis"]["condition"] == "service_healthy"
    for name, service in SERVICES.items():
        for other, how in service.get("depends_on", {}).items():
            assert how["condition"] == "service_healthy", f"{name} -> {other}"


def test_the_worker_wants_a_token_and_keeps_kafkas_data_in_its_volume() -> None:
    """Even on loopback: a page whose name resolves to 127.0.0.1 reaches a published port."""
    worker = SERVICES["scorer"]["environment"]
    assert worker["SCORER_API_TOKEN"].startswith("${SCORER_API_TOKEN:?"), "required"
    assert "SCORER_WEB_ALLOW_NO_TOKEN" not in worker
    for name in ("scorer", "producer"):  # Python as PID 1 would ignore SIGTERM
        assert SERVICES[name]["init"] is True, name
    kafka = SERVICES["kafka"]
    data = kafka["environment"]["KAFKA_LOG_DIRS"]
    assert any(v.endswith(f":{data}") for v in kafka["volumes"]), "Kafka's data is not kept"


def test_only_real_settings_and_a_redis_that_never_evicts() -> None:
    for name, service in SERVICES.items():
        named = {k for k in service.get("environment", {}) if k.startswith("SCORER_")}
        assert named <= SETTINGS, f"{name}: {sorted(named - SETTINGS)}"
    assert SERVICES["scorer"]["environment"]["SCORER_REDIS_URL"] == "redis://redis:6379/0"
    command = SERVICES["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert SERVICES["scorer"]["read_only"] is True


def test_every_port_is_published_on_loopback_only() -> None:
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond this machine"


def test_grafana_is_provisioned_with_the_shipped_dashboard_from_prometheus() -> None:
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in SERVICES["grafana"]["volumes"])
    shipped = "./grafana/stream-scorer.json"
    assert shipped in mounts, "the shipped dashboard is not mounted"
    assert (DEPLOY / shipped).resolve() == (DEPLOY / "grafana" / "stream-scorer.json").resolve()
    provisioning = DEPLOY / "grafana" / "provisioning"
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    providers = yaml.safe_load((provisioning / "dashboards" / "stream-scorer.yaml").read_text())
    folder = providers["providers"][0]["options"]["path"]
    assert Path(mounts["./grafana/stream-scorer.json"]).parent == Path(folder)
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())
    assert sources["datasources"][0]["url"] == "http://prometheus:9090"
    prometheus = {v.split(":")[0]: v.split(":")[1] for v in SERVICES["prometheus"]["volumes"]}
    assert prometheus["./compose/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    config = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())
    port = SERVICES["scorer"]["environment"]["SCORER_WEB_PORT"]
    assert config["scrape_configs"][0]["static_configs"][0]["targets"] == [f"scorer:{port}"]
    assert (DEPLOY / "alerts.rules.yml").exists()


@pytest.mark.integration
async def test_its_producer_publishes_the_demo_stream(services: Services, tmp_path: Path) -> None:
    """The producer service's command, run here against the session's Kafka for 5 s, from
    a folder without the project's files (the image's is /tmp): the model comes from
    SCORER_MODEL_PATH, as the image sets it."""
    settings, env = unique_settings(services, tmp_path)
    command = SERVICES["producer"]["command"]
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "stream_scorer", *command, "--duration", "5"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    consumer = AIOKafkaConsumer(
        settings.events_topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=10_000)
    finally:
        await consumer.stop()
    count = sum(len(records) for records in batch.values())
    assert count > 50, f"{count} events in 5 s at 50/s"
