"""Secured and clustered services for the production-connection tests.

Kafka with a SASL_SSL (SCRAM) and a mutual-TLS listener, and TLS Redis (one
that requires client certificates, one that does not) whose ACL file holds
an admin and the worker's documented minimal user
(:data:`~stream_scorer.connections.redis.WORKER_ACL_RULES`); a Redis Cluster
of three primaries with a replica each, append-only. All real processes,
started once per session and stopped by pid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio.cluster import RedisCluster

from stream_scorer.connections.redis import (
    DEFAULT_USER_ACL_RULES,
    WORKER_ACL_RULES,
    RedisClient,
)
from stream_scorer.dev import services as devservices
from stream_scorer.dev.cluster import RedisClusterProcesses, start_redis_cluster
from stream_scorer.dev.tls import Certificates, make_certificates
from stream_scorer.events import Event
from stream_scorer.scoring import ScoringModel
from stream_scorer.settings import Settings

from .workers import Worker, assert_scored_like_engine, encoded, produce

#: Kafka's SCRAM user for the worker and the tests' own clients.
KAFKA_USER, KAFKA_PASSWORD = "scorer", "kafka-scorer-secret"
#: Redis's admin (tests flush and inspect) and the worker's minimal user.
REDIS_ADMIN, REDIS_ADMIN_PASSWORD = "admin", "redis-admin-secret"
REDIS_USER, REDIS_PASSWORD = "scorer", "redis-scorer-secret"


def acl_file(folder: Path) -> Path:
    """The default user off (as documented); an admin; the worker's user with exactly the
    documented rules."""
    path = folder / "users.acl"
    path.write_text(
        f"user default {' '.join(DEFAULT_USER_ACL_RULES)}\n"
        f"user {REDIS_ADMIN} on >{REDIS_ADMIN_PASSWORD} ~* &* +@all\n"
        f"user {REDIS_USER} on >{REDIS_PASSWORD} {' '.join(WORKER_ACL_RULES)}\n"
    )
    return path


@dataclass
class RedisTarget:
    """The Redis a parametrized test runs on: the session's one, or the Redis Cluster."""

    name: str
    #: The worker's settings for it (none for the session's Redis).
    settings: dict[str, object]
    #: A client of it with every right (emptied before the test).
    client: RedisClient


@dataclass
class Secured:
    """A SASL_SSL + mTLS Kafka and a TLS + ACL Redis, with their certificates."""

    certs: Certificates
    kafka: devservices.SecureKafkaProcess
    redis: devservices.RedisProcess
    redis_mtls: devservices.RedisProcess
    """The same, but requiring a client certificate signed by the CA."""

    def worker_settings(self) -> dict[str, object]:
        """A worker's settings for SASL_SSL/SCRAM-SHA-512 Kafka and TLS Redis as the ACL user."""
        return {
            "kafka_bootstrap_servers": self.kafka.sasl_ssl_servers,
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "SCRAM-SHA-512",
            "kafka_sasl_username": KAFKA_USER,
            "kafka_sasl_password": KAFKA_PASSWORD,
            "kafka_ssl_cafile": str(self.certs.ca),
            "redis_url": self.redis.url,
            "redis_username": REDIS_USER,
            "redis_password": REDIS_PASSWORD,
            "redis_ssl_cafile": str(self.certs.ca),
        }

    def admin_settings(self) -> Settings:
        """Redis as its admin (flush, inspect), over the same TLS."""
        return Settings(
            redis_url=self.redis.url,
            redis_username=REDIS_ADMIN,
            redis_password=REDIS_ADMIN_PASSWORD,
            redis_ssl_cafile=self.certs.ca,
        )


def start_secured(root: Path) -> tuple[Secured, list[object]]:
    """Start both; the second value lists what to stop (in reverse)."""
    certs = make_certificates(root / "certs")
    stops: list[object] = []
    redis = devservices.start_redis(
        root / "redis-tls", appendonly=True, tls=certs, acl_file=acl_file(root)
    )
    stops.append(redis)
    redis_mtls = devservices.start_redis(
        root / "redis-mtls", tls=certs, tls_client_auth=True, acl_file=acl_file(root)
    )
    stops.append(redis_mtls)
    kafka = devservices.start_secure_kafka(
        root / "kafka-secure", certs, {KAFKA_USER: KAFKA_PASSWORD}, partitions=4
    )
    stops.append(kafka)
    return Secured(certs, kafka, redis, redis_mtls), stops


def start_cluster(root: Path) -> RedisClusterProcesses:
    """Three primaries with a replica each, append-only, with the ACL file of :func:`acl_file`.

    Failover after 15 s of silence:

    Long enough that a primary restarted by a test comes back as the primary:
    replication is asynchronous, so a failover may lose its latest writes
    (docs/deploying.md), which is not what the restart test is about.
    """
    return start_redis_cluster(
        root / "cluster",
        masters=3,
        replicas=1,
        appendonly=True,
        node_timeout_ms=15_000,
        acl_file=acl_file(root),
        auth=(REDIS_ADMIN, REDIS_ADMIN_PASSWORD),
    )


def cluster_settings(cluster: RedisClusterProcesses, user: str = REDIS_USER) -> dict[str, object]:
    """Settings for the cluster as the worker's minimal user (or the admin), with a client
    certificate when its nodes speak TLS."""
    password = REDIS_PASSWORD if user == REDIS_USER else REDIS_ADMIN_PASSWORD
    tls = cluster.tls
    return {
        "redis_url": cluster.url,
        "redis_cluster": True,
        "redis_username": user,
        "redis_password": password,
        **(
            {}
            if tls is None
            else {
                "redis_ssl_cafile": str(tls.ca),
                "redis_ssl_certfile": str(tls.client_cert),
                "redis_ssl_keyfile": str(tls.client_key),
            }
        ),
    }


def _servers(client: RedisClient) -> list[object]:
    """Every primary of a cluster (as target nodes), or the one server (None)."""
    if isinstance(client, RedisCluster):
        return list(client.get_primaries())
    return [None]


async def reset_acl_log(client: RedisClient) -> None:
    """Empty ``ACL LOG`` on the server, or on every primary of a cluster."""
    for node in _servers(client):
        kwargs = {} if node is None else {"target_nodes": node}
        await client.acl_log_reset(**kwargs)


async def acl_denials(client: RedisClient) -> list[str]:
    """What the ACL refused the worker's user since the last reset, as ``reason:object``."""
    found = []
    for node in _servers(client):
        kwargs = {} if node is None else {"target_nodes": node}
        entries: list[dict[str, Any]] = await client.acl_log(**kwargs)  # type: ignore[arg-type]
        found += [f"{e['reason']}:{e['object']}" for e in entries if e["username"] == REDIS_USER]
    return found


async def assert_scored_as_the_acl_user(
    worker: Worker, admin: RedisClient, model: ScoringModel, events: Sequence[Event]
) -> None:
    """Start ``worker`` (set up as the minimal ACL user), publish ``events``: every contact
    equals the engine's replay, every crossing is published, and Redis denied it nothing."""
    worker.start()
    await produce(worker.settings, encoded(events))
    await assert_scored_like_engine(worker.settings, admin, model, events)
    assert await acl_denials(admin) == [], "the documented ACL lacks what the worker used"
