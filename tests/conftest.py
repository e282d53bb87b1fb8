"""Fixtures every test directory shares: real Kafka and Redis for the session, workers.

How the services are found is in :mod:`tests.support.services`; worker
processes and the Kafka and Redis chores in :mod:`tests.support.workers`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from stream_scorer.connections.redis import connect, connect_settings
from stream_scorer.dev import services as devservices
from stream_scorer.dev.cluster import RedisClusterProcesses
from stream_scorer.scoring import native
from stream_scorer.settings import Settings

from .support.secured import (
    REDIS_ADMIN,
    RedisTarget,
    Secured,
    acl_denials,
    cluster_settings,
    reset_acl_log,
    start_cluster,
    start_secured,
)
from .support.services import (
    REDIS_IMAGE,
    Services,
    docker_answers,
    kafka_container,
)
from .support.workers import Worker


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to test old code: a compiled module shadows its edited source."""
    stale = native.stale()
    if stale:
        pytest.exit(
            f"compiled modules older than their sources: {', '.join(stale)}; "
            "run scripts/setup (or SCORER_MYPYC=0 scripts/setup for pure Python)",
            returncode=4,
        )


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    env_kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    env_redis = os.environ.get("REDIS_URL")
    stops: list[Callable[[], None]] = []
    root = Path(tempfile.mkdtemp(prefix="stream-scorer-test-"))
    docker = (not env_kafka or not env_redis) and docker_answers()
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
            kafka, stop = kafka_container()
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


@pytest.fixture(scope="session")
def secured() -> Iterator[Secured]:
    """SASL_SSL + mTLS Kafka and TLS + ACL Redis, started on first use."""
    root = Path(tempfile.mkdtemp(prefix="stream-scorer-secured-"))
    stops: list[object] = []
    try:
        found, stops = start_secured(root)
        _USED.append(
            f"secured: Kafka SASL_SSL pid {found.kafka.proc.pid}, "
            f"Redis TLS pid {found.redis.proc.pid}"
        )
        yield found
    finally:
        for service in reversed(stops):
            service.stop()  # type: ignore[attr-defined]
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterProcesses]:
    """A real Redis Cluster (3 primaries, 3 replicas, AOF), started on first use."""
    root = Path(tempfile.mkdtemp(prefix="stream-scorer-cluster-"))
    cluster = None
    try:
        cluster = start_cluster(root)
        _USED.append(f"Redis Cluster: ports {[n.port for n in cluster.nodes]}")
        yield cluster
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["redis", "cluster"])
async def redis_target(
    request: pytest.FixtureRequest, services: Services
) -> AsyncIterator[RedisTarget]:
    """Runs a test on one Redis, then again on the Redis Cluster (as the minimal ACL user)."""
    if request.param == "redis":
        target = RedisTarget("redis", {}, connect(services.redis_url))
    else:
        cluster: RedisClusterProcesses = request.getfixturevalue("redis_cluster")
        admin = Settings(**cluster_settings(cluster, REDIS_ADMIN))  # type: ignore[arg-type]
        target = RedisTarget("cluster", cluster_settings(cluster), connect_settings(admin))
    await target.client.flushdb()
    await reset_acl_log(target.client)
    yield target
    denied = await acl_denials(target.client) if target.name == "cluster" else []
    await target.client.aclose()
    assert denied == [], "the documented ACL lacks what the worker used on the cluster"


@pytest.fixture
def worker_factory(services: Services, tmp_path: Path) -> Iterator[list[Worker]]:
    made: list[Worker] = []
    yield made
    for w in made:
        w.stop_all()


@pytest.fixture
async def redis_client(services: Services) -> AsyncIterator[aioredis.Redis]:
    client = connect(services.redis_url)  # the worker's client
    yield client
    await client.aclose()
