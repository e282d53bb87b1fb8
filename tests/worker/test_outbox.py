"""Outbox safety: every alert written is published, once in normal running.

Real Kafka and Redis. The crash tests stage exactly what a ``kill -9``
between the store's write and the relay leaves behind (states and outboxes
written, nothing published, positions not recorded), then start a real
worker on it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.partitioner import DefaultPartitioner
from redis.exceptions import ConnectionError as RedisConnectionError

from stream_scorer.events import Event
from stream_scorer.scoring import advance_in_place, alert_id, event_key, load_model, replay
from stream_scorer.settings import Settings
from stream_scorer.times import epoch_ms, from_epoch_ms, now_ms
from stream_scorer.worker import pipeline as pipeline_module
from stream_scorer.worker.keys import contact_keys, due_key, outbox_index_key, progress_key
from stream_scorer.worker.metrics import Metrics
from stream_scorer.worker.pipeline import Applied, Message, Pipeline
from stream_scorer.worker.relay import Relay
from stream_scorer.worker.store import Change, PendingAlert, RedisStore
from stream_scorer.worker.topics import ensure_topics

from ..support.scenario import make_stream
from ..support.services import Services
from ..support.workers import Worker, encoded, make_worker, produce, read_topic

pytestmark = pytest.mark.integration

MODEL = load_model("config/scoring.yaml")


def known(events: list[Event]) -> list[Event]:
    return [e for e in events if e.type in MODEL.event_types]


def partition_of(events: list[Event], partitions: int) -> dict[str, int]:
    """The partition each contact's events land on (the Java client's murmur2, as aiokafka)."""
    every = list(range(partitions))
    pick = DefaultPartitioner()
    return {e.contact_id: pick(e.contact_id.encode(), every, every) for e in events}


async def done(value: Any = None) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future


def collecting_relay(store: RedisStore, sent: list[bytes]) -> Relay:
    async def send(key: bytes, value: bytes) -> asyncio.Future[Any]:
        sent.append(value)
        return await done()

    return Relay(store, send, Metrics(), max_backoff=0.1)


def quiet_pipeline(settings: Settings, store: RedisStore, dead: list[dict[str, bytes]]) -> Pipeline:
    async def dead_letter(
        key: bytes | None, value: bytes | None, headers: dict[str, bytes]
    ) -> asyncio.Future[Any]:
        dead.append(headers)
        return await done()

    return Pipeline(settings, MODEL, store, dead_letter, Metrics())


@pytest.fixture
def settings(services: Services, tmp_path: Path) -> Settings:
    from ..support.workers import unique_settings

    return unique_settings(services, tmp_path)[0]


@pytest.fixture
async def store(settings: Settings, redis_client: aioredis.Redis) -> RedisStore:
    await redis_client.flushdb()  # other tests use the same contact ids
    return RedisStore(redis_client, MODEL, ttl_seconds=3600, namespace=settings.events_topic)


async def change_of(store: RedisStore, cid: str, alerts: list[bytes], partition: int) -> Change:
    """A change of one contact as read now, adding ``alerts`` (its clock moved on)."""
    ((version, state),) = await store.read([cid])
    state.clock = (state.clock or 0) + 1
    return Change(cid, version, state, True, alerts, partition)


async def test_a_write_hands_back_only_the_alerts_it_added(
    store: RedisStore, redis_client: aioredis.Redis
) -> None:
    # Alerts of the batch before, still being relayed, must not be handed back again.
    cid = "c-outbox"
    [first] = await store.write([await change_of(store, cid, [b'{"a":1}'], 0)])
    assert first == [PendingAlert(cid, b'{"a":1}')]
    [second] = await store.write([await change_of(store, cid, [b'{"a":2}'], 0)])
    assert second == [PendingAlert(cid, b'{"a":2}')]
    assert await redis_client.lrange(contact_keys(cid)[1], 0, -1) == [b'{"a":1}', b'{"a":2}']
    # Both are indexed before the write, under the contact's partition.
    assert await store.stranded(0, time.time_ns() // 1000 + 1, 10) != []


async def test_recovery_relays_outboxes_once_and_leaves_alerts_in_flight_alone(
    store: RedisStore, redis_client: aioredis.Redis
) -> None:
    cid, busy = "c-stranded", "c-in-flight"
    for contact, payload in ((cid, b'{"s":1}'), (busy, b'{"f":1}')):
        await store.write([await change_of(store, contact, [payload], 3)])
    sent: list[bytes] = []
    relay = collecting_relay(store, sent)
    held = relay.hold([PendingAlert(busy, b'{"f":1}')])  # its batch will publish it
    assert await relay.recover(3) == 1
    assert sent == [b'{"s":1}']
    assert await redis_client.llen(contact_keys(cid)[1]) == 0
    left = await redis_client.zrange(outbox_index_key(store.namespace, 3), 0, -1)
    assert left == [busy.encode()]  # still indexed: the recovery looks again
    assert await relay.recover(3, grace_seconds=3600) == 0  # too young for a sweep tick
    held.release()
    held.release()  # once, however often
    assert await relay.recover(3) == 1
    assert await relay.recover(3) == 0  # relayed: out of the index, not sent again
    assert sent == [b'{"s":1}', b'{"f":1}']


async def test_a_failed_batch_keeps_the_written_contacts_alerts_and_events(
    settings: Settings, store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = known(make_stream(MODEL, 6, 300, seed=3))
    _, crossings = replay(events, MODEL)
    assert crossings
    dead: list[dict[str, bytes]] = []
    pipeline = quiet_pipeline(settings, store, dead)
    real_write = store.write
    calls = 0

    async def write_then_fail(changes: list[Change]) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:  # the first half of the contacts is written...
            return await real_write(changes[: len(changes) // 2]) + [None] * (
                len(changes) - len(changes) // 2
            )
        raise RuntimeError("the store broke")  # ...then the batch fails

    monkeypatch.setattr(store, "write", write_then_fail)
    messages: list[Message] = [
        (e.contact_id.encode(), e.model_dump_json().encode(), settings.events_topic, 0, i, [])
        for i, e in enumerate(events)
    ]
    pending = await pipeline.run(messages)
    contacts = list(dict.fromkeys(e.contact_id for e in events))
    written = set(contacts[: len(contacts) // 2])
    want = [c for c in crossings if c.contact_id in written]
    assert want, "the written half must have crossed"
    assert sorted(json.loads(a.payload)["alert_id"] for a in pending) == sorted(
        alert_id(c, MODEL) for c in want
    )
    # Only the contacts not written are dead-lettered.
    lost = [e for e in events if e.contact_id not in written]
    assert len(dead) == len(lost)
    assert {h["reason"] for h in dead} == {b"internal_error"}


async def test_an_event_older_than_the_dedupe_window_is_refused_as_too_old(
    settings: Settings, store: RedisStore
) -> None:
    # An unsubscribe replayed after its id was forgotten must not count twice.
    dead: list[dict[str, bytes]] = []
    pipeline = quiet_pipeline(settings, store, dead)
    window = store.dedupe_ms
    cid = "c-old"

    def event(i: int, ms: int, kind: str = "email_open") -> Event:
        return Event(event_id=f"e-{i}", contact_id=cid, type=kind, occurred_at=from_epoch_ms(ms))

    start = epoch_ms(datetime(2026, 6, 1, tzinfo=UTC))
    unsubscribe = event(0, start, "unsubscribe")
    later = [event(i, start + window + i * 1000) for i in range(1, 80)]  # ids compacted
    messages: list[Message] = [
        (cid.encode(), e.model_dump_json().encode(), settings.events_topic, 0, i, [])
        for i, e in enumerate([unsubscribe, *later])
    ]
    await pipeline.run(messages)
    before = await store.read_state(cid)
    assert before is not None
    assert event_key("e-0") not in before.seen
    replayed: Message = (cid.encode(), unsubscribe.model_dump_json().encode(), "t", 0, 99, [])
    await pipeline.run([replayed])
    after = await store.read_state(cid)
    assert after is not None
    assert after.to_json() == before.to_json()
    assert [h["reason"] for h in dead] == [b"too_old"]
    # A late event inside the window is applied as usual.
    inside = event(200, start + window // 2 + 100_000)
    await pipeline.run([(cid.encode(), inside.model_dump_json().encode(), "t", 0, 100, [])])
    final = await store.read_state(cid)
    assert final is not None
    assert event_key("e-200") in final.seen
    assert len(dead) == 1


async def test_a_contact_remembers_at_most_the_configured_number_of_event_ids(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    # SCORER_DEDUPE_MAX_IDS bounds a busy contact's state; what it forgets is refused
    # as too old, so a replay of a forgotten event still never counts twice.
    store, pipeline, dead = forty_ids(settings, redis_client)
    cid = "c-busy"

    def event(i: int, kind: str = "page_visit") -> Event:
        return visit(f"b-{i}", cid, COUNTED_START + i * 60_000, kind)

    first = event(0, "unsubscribe")
    busy = [first, *(event(i) for i in range(1, 100))]
    for i in range(0, len(busy), 10):  # a write per ten events
        await pipeline.run(on_partition(settings, busy[i : i + 10], offset=i))
    state = await store.read_state(cid)
    assert state is not None
    assert len(state.seen) <= 40 + 40 // 4
    assert event_key("b-99") in state.seen
    assert event_key("b-0") not in state.seen
    forgot = state.forgot_until
    assert forgot is not None
    assert forgot >= COUNTED_START
    kept = min(state.seen.values())
    assert forgot < kept
    assert not dead

    # The forgotten unsubscribe, replayed: refused, not counted twice.
    await pipeline.run(on_partition(settings, [first], offset=200))
    assert [h["reason"] for h in dead] == [b"too_old"]
    assert b"SCORER_DEDUPE_MAX_IDS" in dead[0]["detail"]
    # A remembered event replayed is a duplicate; a new one, however late, past what
    # was forgotten is applied.
    remembered = next(e for e in busy if epoch_ms(e.occurred_at) == kept)
    late = visit("b-late", cid, kept + 1)
    await pipeline.run(on_partition(settings, [remembered, late], offset=201))
    after = await store.read_state(cid)
    assert after is not None
    assert event_key("b-late") in after.seen
    assert len(dead) == 1
    assert after.values == replay([*busy, late], MODEL)[0][cid].values


async def test_while_writing_an_older_format_no_id_is_forgotten_by_count(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    # The older release has no count bound and drops forgot_until: a worker writing its
    # format for a rolling upgrade must not forget what the older workers still rely on.
    store, pipeline, dead = forty_ids(settings, redis_client, state_format=2)
    events = [visit(f"o-{i}", "c-older", COUNTED_START + i * 60_000) for i in range(100)]
    for i in range(0, len(events), 10):
        await pipeline.run(on_partition(settings, events[i : i + 10], offset=i))
    state = await store.read_state("c-older")
    assert state is not None
    assert len(state.seen) == 100
    assert state.forgot_until is None
    assert not dead


async def test_one_event_dated_ahead_does_not_make_the_count_refuse_what_follows(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    # Ids are forgotten oldest first by event time, not by arrival: the first event here
    # is dated an hour ahead of the hundred that follow (clock skew, an import newest
    # first), and stays remembered while they are scored.
    store, pipeline, dead = forty_ids(settings, redis_client)
    cid = "c-ahead"
    start = COUNTED_START
    events = [
        visit("a-0", cid, start + 3_600_000),
        *(visit(f"a-{i}", cid, start + i * 10_000) for i in range(1, 101)),
    ]
    for i in range(0, len(events), 10):
        await pipeline.run(on_partition(settings, events[i : i + 10], offset=i))
    assert not dead, "nothing refused"
    state = await store.read_state(cid)
    assert state is not None
    assert event_key("a-0") in state.seen
    assert state.forgot_until is not None
    assert state.forgot_until < start + 100 * 10_000
    assert state.values == replay(events, MODEL)[0][cid].values


#: When the count-bound tests' events start.
COUNTED_START = epoch_ms(datetime(2026, 6, 1, tzinfo=UTC))


def forty_ids(
    settings: Settings, client: aioredis.Redis, state_format: int = 3
) -> tuple[RedisStore, Pipeline, list[dict[str, bytes]]]:
    """A store whose contacts remember at most 40 event ids, and a pipeline on it whose
    dead letters' headers are kept in the list returned."""
    store = RedisStore(
        client,
        MODEL,
        ttl_seconds=3600,
        namespace=settings.events_topic,
        dedupe_max_ids=40,
        state_format=state_format,
    )
    dead: list[dict[str, bytes]] = []
    return store, quiet_pipeline(settings, store, dead), dead


def visit(event_id: str, cid: str, ms: int, kind: str = "page_visit") -> Event:
    return Event(
        event_id=event_id,
        contact_id=cid,
        type=kind,
        occurred_at=from_epoch_ms(ms),
        properties={"url": "/"},
    )


def on_partition(settings: Settings, events: list[Event], offset: int) -> list[Message]:
    """Events as the worker's raw messages of partition 0, from ``offset``."""
    return [
        (
            e.contact_id.encode(),
            e.model_dump_json().encode(),
            settings.events_topic,
            0,
            offset + i,
            [],
        )
        for i, e in enumerate(events)
    ]


async def stage_crash(
    worker: Worker, store: RedisStore, events: list[Event]
) -> tuple[Pipeline, dict[str, int]]:
    """The topics, the events on them, and Redis as a kill -9 after the write leaves it."""
    settings = worker.settings
    await ensure_topics(settings)
    await produce(settings, encoded(events))
    partitions = partition_of(events, settings.topic_partitions)
    dead: list[dict[str, bytes]] = []
    pipeline = quiet_pipeline(settings, store, dead)
    await pipeline.apply(events, partitions)  # written, alerts in outboxes, never relayed
    assert not dead
    return pipeline, partitions


async def published(settings: Settings, want: set[str], wait_seconds: float = 60) -> Counter[str]:
    deadline = time.monotonic() + wait_seconds
    while True:
        records = await read_topic(settings.kafka_bootstrap_servers, settings.alerts_topic)
        ids = Counter(json.loads(v)["alert_id"] for _, v, _ in records)
        if set(ids) >= want or time.monotonic() > deadline:
            return ids
        await asyncio.sleep(0.5)


async def settled(
    settings: Settings, redis_client: aioredis.Redis, contacts: set[str], want: set[str]
) -> Counter[str]:
    """The alerts published once the outboxes are empty (and a little after)."""
    await published(settings, want)
    deadline = time.monotonic() + 30
    while any([await redis_client.llen(contact_keys(c)[1]) for c in contacts]):
        assert time.monotonic() < deadline, "outboxes not relayed"
        await asyncio.sleep(0.25)
    await asyncio.sleep(2)
    return await published(settings, want)


async def test_kill_9_between_write_and_relay_of_an_event_crossing(
    services: Services,
    tmp_path: Path,
    worker_factory: list[Worker],
    store: RedisStore,
    redis_client: aioredis.Redis,
) -> None:
    worker = make_worker(worker_factory, services, tmp_path)
    store.namespace = worker.settings.events_topic
    events = known(make_stream(MODEL, 30, 600, seed=21))
    _, crossings = replay(events, MODEL)
    want = {alert_id(c, MODEL) for c in crossings}
    assert want
    await stage_crash(worker, store, events)
    worker.start()  # replays the events (duplicates now) and finds the outboxes
    ids = await settled(worker.settings, redis_client, {e.contact_id for e in events}, want)
    assert set(ids) == want
    assert max(ids.values()) == 1, "an alert was published twice"


async def test_kill_9_between_write_and_relay_of_a_sweep_crossing(
    services: Services,
    tmp_path: Path,
    worker_factory: list[Worker],
    store: RedisStore,
    redis_client: aioredis.Redis,
) -> None:
    worker = make_worker(worker_factory, services, tmp_path)
    settings = worker.settings
    store.namespace = settings.events_topic
    events = known(make_stream(MODEL, 30, 600, seed=22))
    _, crossings = replay(events, MODEL)
    pipeline, partitions = await stage_crash(worker, store, events)
    # The batch finished before the crash: its alerts published, its positions recorded.
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:

        async def send(key: bytes, value: bytes) -> Any:
            return await producer.send(settings.alerts_topic, value, key=key)

        relay = Relay(store, send, Metrics(), max_backoff=0.1)
        for partition in set(partitions.values()):
            await relay.recover(partition)
    finally:
        await producer.stop()
    ends = {p: n for p, n in Counter(partitions[e.contact_id] for e in events).items()}
    await redis_client.hset(
        progress_key(settings.app_id, settings.events_topic),
        mapping=ends,  # type: ignore[arg-type]
    )
    # Then a sweep far in the future expires every award: the tiers cross down.
    later = max(epoch_ms(e.occurred_at) for e in events) + 400 * 86_400_000
    swept: Applied = Applied()
    for partition in set(partitions.values()):
        due = await store.due(partition, later, 1000)
        swept.pending.extend((await pipeline.advance(due, later, partition)).pending)
    sweep_ids = {json.loads(a.payload)["alert_id"] for a in swept.pending}
    assert sweep_ids, "the sweep must cross"
    # kill -9 here: the sweep's alerts are in outboxes, and their contacts are no longer due.
    worker.start()
    want = {alert_id(c, MODEL) for c in crossings} | sweep_ids
    ids = await settled(settings, redis_client, {e.contact_id for e in events}, want)
    assert set(ids) == want
    assert max(ids.values()) == 1, "an alert was published twice"


async def test_a_write_whose_indexing_failed_is_indexed_by_the_retry(
    settings: Settings,
    store: RedisStore,
    redis_client: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The script ran, the indexes' round trip failed: the retried batch must still index.
    events = known(make_stream(MODEL, 6, 200, seed=4))
    pipeline = quiet_pipeline(settings, store, [])
    real_index = store.index
    calls = 0

    async def index_fails_once(*args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RedisConnectionError("connection lost after the script")
        await real_index(*args)

    monkeypatch.setattr(store, "index", index_fails_once)
    messages: list[Message] = [
        (e.contact_id.encode(), e.model_dump_json().encode(), settings.events_topic, 0, i, [])
        for i, e in enumerate(events)
    ]
    await pipeline.run(messages)
    states, _ = replay(events, MODEL)
    due = {c.decode() for c in await redis_client.zrange(due_key(store.namespace, 0), 0, -1)}
    assert due == {cid for cid, s in states.items() if s.next_expiry() is not None}
    assert due


async def test_a_failing_contact_with_a_refused_event_is_dead_lettered_once(
    settings: Settings, store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead: list[dict[str, bytes]] = []
    pipeline = quiet_pipeline(settings, store, dead)
    cid = "c-twice"
    start = epoch_ms(datetime(2026, 6, 1, tzinfo=UTC))
    new = Event(event_id="n", contact_id=cid, type="email_open", occurred_at=from_epoch_ms(start))
    await pipeline.run([(cid.encode(), new.model_dump_json().encode(), "t", 0, 0, [])])
    old = from_epoch_ms(start - store.dedupe_ms - 1000)
    batch = [
        Event(event_id="old", contact_id=cid, type="email_open", occurred_at=old),
        Event(
            event_id="boom", contact_id=cid, type="unsubscribe", occurred_at=from_epoch_ms(start)
        ),
    ]
    real = pipeline_module.apply_in_place

    def failing(state: Any, event: Event, model: Any) -> Any:
        if event.event_id == "boom":
            raise OverflowError("injected")
        return real(state, event, model)

    monkeypatch.setattr(pipeline_module, "apply_in_place", failing)
    before = pipeline.metrics.scored._value.get()
    await pipeline.run(
        [
            (cid.encode(), e.model_dump_json().encode(), "t", 0, i + 1, [])
            for i, e in enumerate(batch)
        ]
    )
    assert [h["reason"] for h in dead] == [b"internal_error", b"internal_error"]
    assert pipeline.metrics.scored._value.get() == before  # nothing scored, never negative


async def test_an_index_entry_taken_out_before_the_write_is_put_back_after_it(
    store: RedisStore, redis_client: aioredis.Redis
) -> None:
    # A recovery read the entry made before the write, found the outbox empty and
    # removed the entry; then the script pushed the alert. The alert must stay findable.
    cid = "c-race"
    change = await change_of(store, cid, [b'{"r":1}'], 5)
    key = outbox_index_key(store.namespace, 5)
    real_script = store._script

    async def recovery_first(**kwargs: Any) -> Any:
        await redis_client.zrem(key, cid)  # what the recovery's unindex did
        return await real_script(**kwargs)

    store._script = recovery_first  # type: ignore[assignment]
    outcomes = await store.write([change])
    assert await redis_client.zscore(key, cid) is None
    await store.index([change], outcomes)
    assert await redis_client.zscore(key, cid) is not None


async def test_recovery_leaves_a_contact_written_while_it_looked(
    store: RedisStore, redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Between the recovery's index read and its outbox read, the contact's batch wrote
    # a new alert: that alert is the batch's to publish, not the recovery's.
    cid = "c-busy"
    await store.write([await change_of(store, cid, [b'{"old":1}'], 6)])
    sent: list[bytes] = []
    relay = collecting_relay(store, sent)
    real_outboxes = store.outboxes

    async def written_meanwhile(contacts: Any) -> Any:
        await store.write([await change_of(store, cid, [b'{"new":1}'], 6)])
        return await real_outboxes(contacts)

    monkeypatch.setattr(store, "outboxes", written_meanwhile)
    assert await relay.recover(6) == 0
    assert sent == []
    monkeypatch.setattr(store, "outboxes", real_outboxes)
    assert await relay.recover(6) == 2  # nobody relayed them: the next recovery does
    assert sent == [b'{"old":1}', b'{"new":1}']


async def set_max_message_bytes(settings: Settings, topic: str, size: int) -> None:
    """Make a topic refuse (``MessageSizeTooLarge``) or accept alerts again."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        resource = ConfigResource(
            ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": str(size)}
        )
        await admin.alter_configs([resource])
    finally:
        await admin.close()


REFUSE, ACCEPT = 16, 1_048_588


def expiring_soon(seed: int, lead_ms: int) -> tuple[list[Event], str]:
    """One contact's events, moved in time so that an award of theirs expires ``lead_ms``
    from now and takes the contact down a tier: a crossing only a sweep can find."""
    events = known(make_stream(MODEL, 30, 600, seed=seed))
    states, _ = replay(events, MODEL)
    found: list[tuple[int, str]] = []
    for cid, state in states.items():
        for crossing in advance_in_place(state.copy(), 2**52, MODEL, cid).crossings:
            found.append((crossing.at, cid))
    at, cid = min(found)
    shift = now_ms() + lead_ms - at
    mine = [e for e in events if e.contact_id == cid]
    moved = [
        e.model_copy(update={"occurred_at": from_epoch_ms(epoch_ms(e.occurred_at) + shift)})
        for e in mine
    ]
    return moved, cid


async def outbox_ids(redis_client: aioredis.Redis, cid: str) -> set[str]:
    payloads = await redis_client.lrange(contact_keys(cid)[1], 0, -1)
    return {json.loads(p)["alert_id"] for p in payloads}


async def test_a_worker_dying_between_the_write_and_the_relay_of_event_crossings(
    services: Services,
    tmp_path: Path,
    worker_factory: list[Worker],
    store: RedisStore,
    redis_client: aioredis.Redis,
) -> None:
    # A real crash between the store's write and the relay: the alerts topic refuses
    # every alert (too large for it), which no retry can fix, so the worker stops with
    # the batch's alerts in their outboxes and its positions not recorded.
    worker = make_worker(worker_factory, services, tmp_path)
    settings = worker.settings
    events = known(make_stream(MODEL, 30, 600, seed=23))
    _, crossings = replay(events, MODEL)
    want = {alert_id(c, MODEL) for c in crossings}
    assert want
    await ensure_topics(settings)
    await set_max_message_bytes(settings, settings.alerts_topic, REFUSE)
    first = worker.start()
    await produce(settings, encoded(events))
    assert await asyncio.get_running_loop().run_in_executor(None, first.wait, 90) != 0
    assert "stopping the worker: an error that retrying cannot fix" in worker.tail(400_000)
    contacts = {e.contact_id for e in events}
    stuck = set().union(*[await outbox_ids(redis_client, c) for c in contacts])
    assert stuck, "the crash should leave alerts in outboxes"
    await set_max_message_bytes(settings, settings.alerts_topic, ACCEPT)
    worker.start()
    got = await settled(settings, redis_client, contacts, want)
    assert set(got) == want
    assert max(got.values()) == 1, "an alert was published twice"


async def test_kill_9_while_a_sweep_crossing_waits_for_its_relay(
    services: Services,
    tmp_path: Path,
    worker_factory: list[Worker],
    store: RedisStore,
    redis_client: aioredis.Redis,
) -> None:
    # The events' alerts go out; then the alerts topic refuses everything, a sweep
    # finds an award expired (the contact drops a tier), writes the crossing and
    # cannot relay it; kill -9. The contact is no longer due: only the outbox index
    # leads the next worker to the alert.
    worker = make_worker(worker_factory, services, tmp_path, sweep_interval_seconds=1)
    settings = worker.settings
    events, cid = expiring_soon(seed=22, lead_ms=30_000)
    _, crossings = replay(events, MODEL)
    event_ids = {alert_id(c, MODEL) for c in crossings}
    assert event_ids
    first = worker.start()
    await produce(settings, encoded(events))
    assert set(await published(settings, event_ids)) == event_ids
    await set_max_message_bytes(settings, settings.alerts_topic, REFUSE)
    deadline = time.monotonic() + 90
    while not (swept := await outbox_ids(redis_client, cid)):
        assert time.monotonic() < deadline, "no sweep crossing written"
        await asyncio.sleep(0.25)
    assert not swept & event_ids
    os.kill(first.pid, signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    await set_max_message_bytes(settings, settings.alerts_topic, ACCEPT)
    worker.start()
    got = await settled(settings, redis_client, {cid}, event_ids | swept)
    assert set(got) == event_ids | swept
    assert max(got.values()) == 1, "an alert was published twice"
