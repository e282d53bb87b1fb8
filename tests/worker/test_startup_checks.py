"""What a worker checks at start: a Redis that may evict keys is refused, loudly.

Every key of a contact carries a TTL, so ``volatile-*`` policies evict them
as readily as ``allkeys-*``: with a ``maxmemory`` set, only ``noeviction`` is
safe (a full Redis then refuses writes, which the worker retries, instead of
deleting scores). A real redis-server, configured per case with CONFIG SET.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stream_scorer.connections.redis import check_redis, connect, connect_settings
from stream_scorer.dev import services as devservices
from stream_scorer.dev.cluster import RedisClusterProcesses
from stream_scorer.errors import ServiceRefused
from stream_scorer.settings import Settings

from ..support.secured import cluster_settings
from ..support.services import Services
from ..support.workers import Worker, make_worker, refused_start

pytestmark = pytest.mark.integration


@pytest.fixture
async def limited_redis(tmp_path: Path) -> AsyncIterator[devservices.RedisProcess]:
    proc = devservices.start_redis(
        tmp_path / "redis", extra_args=["--maxmemory", "64mb", "--maxmemory-policy", "volatile-lru"]
    )
    try:
        yield proc
    finally:
        proc.stop()


@pytest.mark.parametrize(
    ("maxmemory", "policy", "refused"),
    [
        ("64mb", "volatile-lru", True),
        ("64mb", "allkeys-lru", True),
        ("64mb", "volatile-ttl", True),
        ("64mb", "noeviction", False),
        ("0", "allkeys-lru", False),  # no limit: nothing is ever evicted
    ],
)
async def test_eviction_policy_is_checked_at_start(
    limited_redis: devservices.RedisProcess,
    caplog: pytest.LogCaptureFixture,
    maxmemory: str,
    policy: str,
    refused: bool,
) -> None:
    client = connect(limited_redis.url)
    try:
        await client.config_set("maxmemory", maxmemory)
        await client.config_set("maxmemory-policy", policy)
        settings = Settings(redis_url=limited_redis.url)
        if refused:
            with pytest.raises(ServiceRefused, match=f"maxmemory-policy {policy}"):
                await check_redis(client, settings)
            allowed = Settings(redis_url=limited_redis.url, redis_allow_eviction=True)
            with caplog.at_level(logging.WARNING):
                await check_redis(client, allowed)
            assert f"maxmemory-policy {policy}" in caplog.text
            assert "SCORER_REDIS_ALLOW_EVICTION=true" in caplog.text
        else:
            with caplog.at_level(logging.WARNING):
                await check_redis(client, settings)
            assert "maxmemory" not in caplog.text
    finally:
        await client.aclose()


def test_a_worker_refuses_a_redis_that_may_evict(
    limited_redis: devservices.RedisProcess,
    services: Services,
    tmp_path: Path,
    worker_factory: list[Worker],
) -> None:
    worker = make_worker(worker_factory, services, tmp_path, redis_url=limited_redis.url)
    code, output, took = refused_start(worker)
    assert code == 1, output[-3000:]
    assert "maxmemory-policy volatile-lru" in output
    assert "noeviction" in output
    assert took < 30, f"took {took:.1f}s"


async def test_the_cluster_setting_must_match_the_server(
    redis_cluster: RedisClusterProcesses, services: Services
) -> None:
    """A cluster node used as one Redis would fail batches with MOVED; the reverse, at once."""
    as_single = Settings(**{**cluster_settings(redis_cluster), "redis_cluster": False})  # type: ignore[arg-type]
    with pytest.raises(ServiceRefused, match="set SCORER_REDIS_CLUSTER=true"):
        await check_as(as_single)
    with pytest.raises(ServiceRefused, match="Redis is not a cluster"):
        await check_as(Settings(redis_url=services.redis_url, redis_cluster=True))
    await check_as(Settings(**cluster_settings(redis_cluster)))  # type: ignore[arg-type]
    # (the minimal user passes every check)


async def check_as(settings: Settings) -> None:
    """The start-up check of Redis, through the client the settings make."""
    client = connect_settings(settings)
    try:
        await check_redis(client, settings)
    finally:
        await client.aclose()
