"""The secured local services: Kafka over SASL_SSL and mutual TLS, Redis over TLS with
ACL users, and a real Redis Cluster that keeps its keys across a primary restart.

Every test starts its own processes in ``tmp_path`` and stops them, pass or fail.
Services are started from sync fixtures, in the main thread: their children are
told to die with the thread that started them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from aiokafka.helpers import create_ssl_context
from redis.asyncio.cluster import RedisCluster
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from stream_scorer.dev.cluster import RedisClusterProcesses, start_redis_cluster
from stream_scorer.dev.services import SecureKafkaProcess, start_redis, start_secure_kafka
from stream_scorer.dev.tls import Certificates, make_certificates

pytestmark = pytest.mark.integration

USERS = {"alice": "alice-secret", "bob": 'b=b"pw'}


@pytest.fixture
def certs(tmp_path: Path) -> Certificates:
    return make_certificates(tmp_path / "certs")


@pytest.fixture
def secure_kafka(tmp_path: Path, certs: Certificates) -> Iterator[SecureKafkaProcess]:
    kafka = start_secure_kafka(tmp_path / "kafka", certs, USERS)
    try:
        yield kafka
    finally:
        kafka.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RedisClusterProcesses]:
    started = start_redis_cluster(tmp_path / "cluster")
    try:
        yield started
    finally:
        started.stop()


async def round_trip(topic: str, **options: object) -> bytes | None:
    """Produce one record with ``options`` and read it back with the same options."""
    producer = AIOKafkaProducer(**options)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, group_id=None, auto_offset_reset="earliest", **options)
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 30)
    finally:
        await consumer.stop()
    value: bytes | None = record.value
    return value


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256"])
async def test_scram_users_produce_and_consume_over_sasl_ssl(
    secure_kafka: SecureKafkaProcess, certs: Certificates, mechanism: str
) -> None:
    def options(user: str, password: str) -> dict[str, object]:
        return {
            "bootstrap_servers": secure_kafka.sasl_ssl_servers,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": mechanism,
            "sasl_plain_username": user,
            "sasl_plain_password": password,
            "ssl_context": create_ssl_context(cafile=str(certs.ca)),
        }

    for user, password in USERS.items():
        assert await round_trip(f"scram-{user}", **options(user, password)) == b"hello"

    refused = AIOKafkaProducer(**options("alice", "wrong"))
    with pytest.raises(KafkaConnectionError):
        await refused.start()
    await refused.stop()


async def test_mutual_tls_listener_takes_a_client_certificate(
    secure_kafka: SecureKafkaProcess, certs: Certificates
) -> None:
    context = create_ssl_context(
        cafile=str(certs.ca), certfile=str(certs.client_cert), keyfile=str(certs.client_key)
    )
    value = await round_trip(
        "mtls",
        bootstrap_servers=secure_kafka.mtls_servers,
        security_protocol="SSL",
        ssl_context=context,
    )
    assert value == b"hello"


async def test_redis_over_tls_answers_an_acl_user(tmp_path: Path, certs: Certificates) -> None:
    acl = tmp_path / "users.acl"
    acl.write_text("user default off\nuser alice on >pw ~* &* +@all\n")
    server = start_redis(tmp_path / "redis", tls=certs, acl_file=acl)
    try:
        assert server.url.startswith("rediss://")
        client = aioredis.Redis.from_url(
            server.url, username="alice", password="pw", ssl_ca_certs=str(certs.ca)
        )
        try:
            assert await client.ping()
        finally:
            await client.aclose()
        anonymous = aioredis.Redis.from_url(server.url, ssl_ca_certs=str(certs.ca))
        try:
            with pytest.raises(aioredis.AuthenticationError):
                await anonymous.ping()
        finally:
            await anonymous.aclose()
    finally:
        server.stop()


async def test_redis_tls_client_auth_takes_the_client_certificate(
    tmp_path: Path, certs: Certificates
) -> None:
    server = start_redis(tmp_path / "redis", tls=certs, tls_client_auth=True)
    try:
        client = aioredis.Redis.from_url(
            server.url,
            ssl_ca_certs=str(certs.ca),
            ssl_certfile=str(certs.client_cert),
            ssl_keyfile=str(certs.client_key),
        )
        try:
            assert await client.ping()
        finally:
            await client.aclose()
    finally:
        server.stop()


def one_key_per_slot() -> list[str]:
    keys: dict[int, str] = {}
    n = 0
    while len(keys) < REDIS_CLUSTER_HASH_SLOTS:
        keys.setdefault(key_slot(f"k{n}".encode()), f"k{n}")
        n += 1
    return list(keys.values())


async def test_cluster_serves_every_slot_and_keeps_keys_across_a_primary_restart(
    cluster: RedisClusterProcesses,
) -> None:
    keys = one_key_per_slot()
    client = RedisCluster.from_url(cluster.url)
    try:
        pipe = client.pipeline()
        for key in keys:
            pipe.set(key, key)
        assert all(await pipe.execute())

        primary = cluster.primaries()[0]
        cluster.restart(cluster.index(primary))
        assert primary in cluster.primaries()

        pipe = client.pipeline()
        for key in keys:
            pipe.get(key)
        assert await pipe.execute() == [key.encode() for key in keys]
    finally:
        await client.aclose()


async def test_cluster_with_replicas_starts_six_nodes(tmp_path: Path) -> None:
    cluster = start_redis_cluster(tmp_path / "cluster", replicas=1)
    try:
        roles = []
        for node in cluster.nodes:
            async with aioredis.Redis(port=node.port) as client:
                roles.append((await client.execute_command("ROLE"))[0])
        assert sorted(roles) == [b"master"] * 3 + [b"slave"] * 3
        assert len(cluster.primaries()) == 3
        client = RedisCluster.from_url(cluster.url)
        try:
            await client.set("a", "1")
            assert await client.get("a") == b"1"
        finally:
            await client.aclose()
    finally:
        cluster.stop()
