"""Workers on a real Redis Cluster: three primaries with a replica each, append-only.

Each contact's keys share a hash tag, so its compare-and-set is one script
call on one slot; the store groups a batch's contacts by slot and sends each
node its calls in one round trip. Indexes, progress and outboxes are keys of
their own. These tests run the worker processes against the cluster and
compare every contact with the engine's replay: a plain stream; three
workers on twelve partitions with one killed (SIGKILL) and one added
mid-stream; and a primary restarted mid-stream. The worker logs in as the
documented minimal ACL user, and no test may leave a denial in ACL LOG.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from stream_scorer.connections.redis import RedisClient, connect_settings
from stream_scorer.dev.cluster import RedisClusterProcesses, start_redis_cluster
from stream_scorer.dev.tls import make_certificates
from stream_scorer.events import Event, encode_event
from stream_scorer.scoring import load_model, replay
from stream_scorer.settings import Settings
from stream_scorer.worker.keys import contact_keys
from stream_scorer.worker.pipeline import Message
from stream_scorer.worker.store import RedisStore

from ..support.scenario import make_stream
from ..support.secured import (
    REDIS_ADMIN,
    REDIS_ADMIN_PASSWORD,
    acl_denials,
    acl_file,
    assert_scored_as_the_acl_user,
    cluster_settings,
    reset_acl_log,
)
from ..support.services import Services
from ..support.workers import (
    Worker,
    assert_scored_like_engine,
    encoded,
    make_worker,
    pipeline_on,
    produce,
    wait_until_scored,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def cluster_client(redis_cluster: RedisClusterProcesses) -> AsyncIterator[RedisClient]:
    """The cluster through the worker's own client, emptied on every primary."""
    client = connect_settings(Settings(**cluster_settings(redis_cluster, REDIS_ADMIN)))  # type: ignore[arg-type]
    await client.flushdb()
    await reset_acl_log(client)
    yield client
    denied = await acl_denials(client)
    await client.aclose()
    assert denied == [], "the documented ACL lacks what the worker used on the cluster"


def on_cluster(redis_cluster: RedisClusterProcesses, **overrides: object) -> dict[str, object]:
    """A worker's settings for the cluster, as the minimal ACL user."""
    return {**cluster_settings(redis_cluster), **overrides}


async def test_scores_and_alerts_on_a_redis_cluster(
    services: Services,
    tmp_path: Path,
    worker_factory: list[Worker],
    redis_cluster: RedisClusterProcesses,
    cluster_client: RedisClient,
) -> None:
    model = load_model("config/scoring.yaml")
    worker = make_worker(
        worker_factory, services, tmp_path, **on_cluster(redis_cluster, batch_max_events=200)
    )
    events = make_stream(model, contacts=300, events=3000, seed=21)
    worker.start()
    await produce(worker.settings, encoded(events))
    await assert_scored_like_engine(worker.settings, cluster_client, model, events)
    # Contacts spread over every primary: the test exercised more than one node.
    sizes = [
        int(await cluster_client.dbsize(target_nodes=node))  # type: ignore[call-arg]
        for node in cluster_client.get_primaries()  # type: ignore[union-attr]
    ]
    assert len(sizes) == 3
    assert all(size > 0 for size in sizes), sizes


async def test_three_workers_on_twelve_partitions_one_killed_one_added(
    services: Services,
    tmp_path: Path,
    worker_factory: list[Worker],
    redis_cluster: RedisClusterProcesses,
    cluster_client: RedisClient,
) -> None:
    model = load_model("config/scoring.yaml")
    worker = make_worker(
        worker_factory,
        services,
        tmp_path,
        **on_cluster(redis_cluster, topic_partitions=12, batch_max_events=100),
    )
    events = make_stream(model, contacts=400, events=6000, seed=22)
    thirds = [events[:2000], events[2000:4000], events[4000:]]
    procs = [worker.start() for _ in range(3)]

    await produce(worker.settings, encoded(thirds[0]))
    first, _ = replay([e for e in thirds[0] if e.type in model.event_types], model)
    store = RedisStore(cluster_client, model, 3600, namespace=worker.settings.events_topic)
    await wait_until_scored(store, cluster_client, first)
    held = owned(worker)
    assert all(held.get(p.pid) for p in procs), f"not all three at work: {held}"
    assert sorted(n for p in procs for n in held[p.pid]) == list(range(12)), held
    await produce(worker.settings, encoded(thirds[1][:1000]))
    os.kill(procs[1].pid, signal.SIGKILL)  # mid-stream: its partitions move to the others
    await produce(worker.settings, encoded(thirds[1][1000:]))
    fourth = worker.start()  # a fourth joins: partitions move again
    await produce(worker.settings, encoded(thirds[2]))

    await assert_scored_like_engine(
        worker.settings, cluster_client, model, events, exactly_once=False, wait_seconds=180
    )
    held = owned(worker)
    live = [procs[0], procs[2], fourth]
    assert all(held.get(p.pid) for p in live), f"the fourth never got partitions: {held}"
    assert sorted(n for p in live for n in held[p.pid]) == list(range(12)), held


def owned(worker: Worker) -> dict[int, list[int]]:
    """The partitions each worker process (by pid) last said it owns, from the shared log."""
    found: dict[int, list[int]] = {}
    for pid, numbers in re.findall(
        r"\[(\d+)\] \[INFO\] partitions started: started=\S* owned=(\S*)",
        worker.tail(10_000_000),
    ):
        found[int(pid)] = [int(n) for n in numbers.split(",") if n]
    return found


async def test_scores_on_a_tls_only_cluster_that_requires_client_certificates(
    services: Services, tmp_path: Path, worker_factory: list[Worker]
) -> None:
    """``rediss://`` to a cluster: the slot map names TLS ports, every node asks for a
    client certificate, and the worker logs in as the minimal ACL user."""
    model = load_model("config/scoring.yaml")
    cluster = start_redis_cluster(
        tmp_path / "cluster",
        acl_file=acl_file(tmp_path),
        auth=(REDIS_ADMIN, REDIS_ADMIN_PASSWORD),
        tls=make_certificates(tmp_path / "certs"),
    )
    try:
        assert cluster.url.startswith("rediss://")
        admin = connect_settings(Settings(**cluster_settings(cluster, REDIS_ADMIN)))  # type: ignore[arg-type]
        worker = make_worker(worker_factory, services, tmp_path, **cluster_settings(cluster))
        events = make_stream(model, contacts=100, events=1500, seed=25)
        try:
            await assert_scored_as_the_acl_user(worker, admin, model, events)
            filled = [len(cluster.keys(i)) for i in range(len(cluster.nodes))]
            assert all(filled), f"every primary holds contacts: {filled}"
        finally:
            await admin.aclose()
    finally:
        cluster.stop()


async def test_a_primary_killed_and_restarted_mid_stream_loses_nothing(
    services: Services,
    tmp_path: Path,
    worker_factory: list[Worker],
    redis_cluster: RedisClusterProcesses,
    cluster_client: RedisClient,
) -> None:
    """A primary crashes (SIGKILL) with the worker's writes on it, and is back before the
    cluster's node timeout (no failover): its append-only file gives back every key.

    Every node has the documented ACL file: the default user off, keeping its
    permissions, which Redis needs to replay the worker's MULTI/EXEC writes.
    """
    model = load_model("config/scoring.yaml")
    worker = make_worker(
        worker_factory, services, tmp_path, **on_cluster(redis_cluster, batch_max_events=50)
    )
    events = make_stream(model, contacts=300, events=4000, seed=23)
    worker.start()
    await produce(worker.settings, encoded(events[:2000]))
    primary = redis_cluster.index(redis_cluster.primaries()[0])
    held: set[str] = set()
    deadline = time.monotonic() + 60
    while len(held) < 20:  # the worker has written contacts on it
        assert time.monotonic() < deadline, "the worker wrote nothing to the primary"
        await asyncio.sleep(0.01)
        held = redis_cluster.keys(primary)
    redis_cluster.kill(primary)
    await produce(worker.settings, encoded(events[2000:3000]))
    await asyncio.sleep(3)  # the worker meets the node away, well within the node timeout
    redis_cluster.start(primary)
    assert held <= redis_cluster.keys(primary), "the restarted primary lost keys"
    await produce(worker.settings, encoded(events[3000:]))
    await assert_scored_like_engine(
        worker.settings, cluster_client, model, events, exactly_once=False, wait_seconds=120
    )
    log = worker.tail(10_000_000)
    assert "transient failure, retrying" in log, "the node was never missed"
    assert "Redis lost writes" not in log


async def test_slots_moved_mid_stream_by_a_reshard_lose_nothing(
    services: Services,
    tmp_path: Path,
    worker_factory: list[Worker],
    redis_cluster: RedisClusterProcesses,
    cluster_client: RedisClient,
) -> None:
    """An operator moves a thousand slots (keys and all) while the worker writes.

    The per-slot calls follow MOVED and ASK; a contact whose keys are split
    while its slot moves gets TRYAGAIN, which ran nothing and is retried.
    """
    model = load_model("config/scoring.yaml")
    worker = make_worker(
        worker_factory, services, tmp_path, **on_cluster(redis_cluster, batch_max_events=50)
    )
    events = make_stream(model, contacts=400, events=5000, seed=24)
    worker.start()
    await produce(worker.settings, encoded(events[:1500]))
    source, target = redis_cluster.primaries()[:2]
    moving = asyncio.create_task(asyncio.to_thread(redis_cluster.reshard, source, target, 1000))
    await asyncio.sleep(0.5)
    for start in range(1500, 5000, 500):  # events keep coming while the slots move
        await produce(worker.settings, encoded(events[start : start + 500]))
        if start == 1500:
            assert not moving.done(), "the slots moved before the stream went on"
        await asyncio.sleep(0.3)
    await moving
    await assert_scored_like_engine(
        worker.settings, cluster_client, model, events, exactly_once=False, wait_seconds=180
    )


async def test_a_contact_whose_keys_are_split_by_a_slot_move_waits_for_it(
    redis_cluster: RedisClusterProcesses, cluster_client: RedisClient
) -> None:
    """Half a contact's keys moved to another node: its writes wait, nothing half-applied.

    The slot is set migrating by hand and one of the contact's keys moved, as
    ``redis-cli --cluster reshard`` does key by key. Redis answers TRYAGAIN to a
    call whose keys are split (it runs nothing): the worker retries, and once
    the slot has moved it writes there. The worker's dead-letter callback
    fails the test, so a retry given up would show.
    """
    admin: RedisCluster = cluster_client  # type: ignore[assignment]
    model = load_model("config/scoring.yaml")
    client = connect_settings(Settings(**cluster_settings(redis_cluster)))  # type: ignore[arg-type]
    store = RedisStore(client, model, ttl_seconds=3600, namespace="moving")
    pipeline = pipeline_on(store)
    events = [
        e
        for e in make_stream(model, contacts=20, events=300, seed=26)
        if e.type in model.event_types
    ]

    def messages(batch: list[Event], first: int) -> list[Message]:
        return [
            (e.contact_id.encode(), encode_event(e), "moving", 0, first + i, [])
            for i, e in enumerate(batch)
        ]

    try:
        await pipeline.run(messages(events[:150], 0))
        later = {e.contact_id for e in events[150:]}
        cid = next(e.contact_id for e in events[:150] if e.contact_id in later)
        state_key = contact_keys(cid)[0]
        slot = key_slot(state_key.encode())
        owner = admin.get_node_from_key(state_key)
        assert owner is not None
        target = next(n for n in admin.get_primaries() if n.name != owner.name)
        ids = {
            n.name: await admin.execute_command("CLUSTER", "MYID", target_nodes=n)
            for n in (owner, target)
        }
        await admin.execute_command(
            "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[owner.name], target_nodes=target
        )
        await admin.execute_command(
            "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target.name], target_nodes=owner
        )

        async def migrate(*keys: str | bytes) -> None:
            await admin.execute_command(
                "MIGRATE",
                target.host,
                target.port,
                "",
                0,
                5000,
                "AUTH2",
                REDIS_ADMIN,
                REDIS_ADMIN_PASSWORD,
                "KEYS",
                *keys,
                target_nodes=owner,
            )

        await migrate(state_key)
        writing = asyncio.create_task(pipeline.run(messages(events[150:], 150)))
        await asyncio.sleep(2)
        assert not writing.done(), "a contact with its keys split was written"

        rest = await admin.execute_command(
            "CLUSTER", "GETKEYSINSLOT", slot, 1000, target_nodes=owner
        )
        if rest:
            await migrate(*rest)
        for node in admin.get_primaries():
            await admin.execute_command(
                "CLUSTER", "SETSLOT", slot, "NODE", ids[target.name], target_nodes=node
            )
        await asyncio.wait_for(writing, 60)

        expected, _ = replay(events, model)
        for contact, state in expected.items():
            got = await store.read_state(contact)
            assert got is not None
            assert got.to_json() == state.to_json(), contact
        for node, keys in ((owner, 0), (target, len(contact_keys(cid)))):
            held = await admin.execute_command(
                "CLUSTER", "COUNTKEYSINSLOT", slot, target_nodes=node
            )
            assert (held > 0) == (keys > 0), "the contact's keys now live on the target"
    finally:
        await client.aclose()
