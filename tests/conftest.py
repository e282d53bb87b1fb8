"""Session-scoped real services: external if given, else testcontainers, else local processes.

Order of preference:
1. ``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` from the environment;
2. testcontainers (``apache/kafka``, ``redis``) when a Docker engine answers;
3. local processes from :mod:`stream_scorer.dev.services` (Kafka jars from Maven
   Central run by the machine's Java, Debian's redis-server), stopped by pid.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stream_scorer.dev import services as devservices
from stream_scorer.scoring import native

KAFKA_IMAGE = f"apache/kafka:{devservices.KAFKA_VERSION}"


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to test old code: a compiled module shadows its edited source."""
    stale = native.stale()
    if stale:
        pytest.exit(
            f"compiled modules older than their sources: {', '.join(stale)}; "
            "run scripts/setup (or SCORER_MYPYC=0 scripts/setup for pure Python)",
            returncode=4,
        )


REDIS_IMAGE = "redis:7.0"


@dataclass
class Services:
    kafka_bootstrap: str
    redis_url: str
    how: str
    redis_restart: Callable[[], None] | None = None


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


def _kafka_container() -> tuple[str, Callable[[], None]]:
    from testcontainers.core.container import DockerContainer

    port = devservices.free_port()
    container = (
        DockerContainer(KAFKA_IMAGE)
        .with_bind_ports(9092, port)
        .with_env("KAFKA_NODE_ID", "1")
        .with_env("KAFKA_PROCESS_ROLES", "broker,controller")
        .with_env("KAFKA_LISTENERS", "PLAINTEXT://:9092,CONTROLLER://:9093")
        .with_env("KAFKA_ADVERTISED_LISTENERS", f"PLAINTEXT://127.0.0.1:{port}")
        .with_env("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
        .with_env(
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
        )
        .with_env("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9093")
        .with_env("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
    )
    container.start()
    from testcontainers.core.waiting_utils import wait_for_logs

    wait_for_logs(container, "Kafka Server started", timeout=120)
    return f"127.0.0.1:{port}", container.stop


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    env_kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    env_redis = os.environ.get("REDIS_URL")
    stops: list[Callable[[], None]] = []
    root = Path(tempfile.mkdtemp(prefix="stream-scorer-test-"))
    docker = (not env_kafka or not env_redis) and _docker_answers()
    restart: Callable[[], None] | None = None
    try:
        if env_redis:
            redis_url, how_redis = env_redis, "external"
        elif docker:
            from testcontainers.redis import RedisContainer

            rc = RedisContainer(REDIS_IMAGE).with_command("redis-server --appendonly yes")
            rc.start()
            stops.append(rc.stop)
            redis_url = f"redis://{rc.get_container_host_ip()}:{rc.get_exposed_port(6379)}/0"
            how_redis = "testcontainers"
        else:
            proc = devservices.start_redis(root / "redis", appendonly=True)
            stops.append(proc.stop)
            redis_url, how_redis, restart = (
                proc.url,
                f"local redis-server pid {proc.proc.pid}",
                proc.restart,
            )
        if env_kafka:
            kafka, how_kafka = env_kafka, "external"
        elif docker:
            kafka, stop = _kafka_container()
            stops.append(stop)
            how_kafka = "testcontainers"
        else:
            kp = devservices.start_kafka(root / "kafka")
            stops.append(kp.stop)
            kafka, how_kafka = (
                kp.bootstrap_servers,
                f"local Apache Kafka {devservices.KAFKA_VERSION} pid {kp.proc.pid}",
            )
        found = Services(kafka, redis_url, f"kafka: {how_kafka}; redis: {how_redis}", restart)
        _USED.append(found.how)
        yield found
    finally:
        for stop in reversed(stops):
            stop()
        shutil.rmtree(root, ignore_errors=True)


_USED: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for how in _USED:
        terminalreporter.write_line(f"integration services used: {how}")


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        f"stream-scorer engine: {native.describe()}",
        "services: KAFKA_BOOTSTRAP_SERVERS/REDIS_URL if set, else testcontainers, else local "
        f"processes (Kafka {devservices.KAFKA_VERSION} jars, redis-server)",
    ]
