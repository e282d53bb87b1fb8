"""The Kafka and Redis a test session runs against, and how they were found.

Order of preference:
1. ``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` from the environment;
2. testcontainers (``apache/kafka``, ``redis``) when a Docker engine answers;
3. local processes from :mod:`stream_scorer.dev.services` (Kafka jars from Maven
   Central run by the machine's Java, Debian's redis-server), stopped by pid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from stream_scorer.dev import services as devservices

KAFKA_IMAGE = f"apache/kafka:{devservices.KAFKA_VERSION}"


REDIS_IMAGE = "redis:7.0"


@dataclass
class Services:
    kafka_bootstrap: str
    redis_url: str
    how: str
    redis_restart: Callable[[], None] | None = None


def docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


def kafka_container() -> tuple[str, Callable[[], None]]:
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
