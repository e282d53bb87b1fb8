"""The events consumer never moves its group's committed offset backwards.

A batch fetched before the seek to Redis's applied position ends below that
start position: it must neither cancel the start position's commit nor, when
it finishes after it, commit its lower position. Either would leave the
group's offset behind for good on an idle partition (lag that never clears,
a replay on the next restart).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition

from stream_scorer.events import Event
from stream_scorer.scoring import load_model
from stream_scorer.settings import Settings
from stream_scorer.worker.consumer import EventsConsumer
from stream_scorer.worker.metrics import Metrics
from stream_scorer.worker.pipeline import Pipeline
from stream_scorer.worker.relay import Relay
from stream_scorer.worker.store import RedisStore
from stream_scorer.worker.topics import ensure_topics

from ..support.services import Services
from ..support.workers import pipeline_on, produce, unique_settings

pytestmark = pytest.mark.integration

MODEL = load_model("config/scoring.yaml")


async def no_sends(*args: object) -> None:
    raise AssertionError("nothing is sent: the batch has no alerts")


def events_consumer(settings: Settings, store: RedisStore) -> EventsConsumer:
    metrics = Metrics()
    return EventsConsumer(
        settings,
        store,
        Pipeline(settings, MODEL, store, no_sends, metrics),
        Relay(store, no_sends, metrics, 1.0),
        metrics,
    )


def test_only_a_batch_past_a_start_position_supersedes_it(
    services: Services, tmp_path: Path, redis_client: aioredis.Redis
) -> None:
    settings, _ = unique_settings(services, tmp_path, topic_partitions=1)
    events = events_consumer(settings, RedisStore(redis_client, MODEL, ttl_seconds=3600))
    tp = TopicPartition(settings.events_topic, 0)
    events._starts = {tp: 10}
    events._supersede({tp: 4})  # fetched before the seek to 10: 10 is still to commit
    assert events._starts == {tp: 10}
    events._supersede({tp: 12})  # past it: the batch's own commit covers it
    assert events._starts == {}


async def test_a_batch_finishing_after_the_start_commit_leaves_the_offset_ahead(
    services: Services, tmp_path: Path, redis_client: aioredis.Redis
) -> None:
    settings, _ = unique_settings(services, tmp_path, topic_partitions=1)
    await ensure_topics(settings)
    await produce(settings, [(b"c-1", b"{}")] * 10)
    store = RedisStore(redis_client, MODEL, ttl_seconds=3600)
    events = events_consumer(settings, store)
    tp = TopicPartition(settings.events_topic, 0)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=settings.app_id,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        events.consumer = consumer
        events._starts = {tp: 10}  # the applied position Redis gave at assignment
        await events._commit_starts()
        assert await consumer.committed(tp) == 10
        await events._finish(
            [], {tp: 4}, events.relay.hold([])
        )  # scored from records fetched before the seek
        assert await consumer.committed(tp) == 10, "the group's offset went backwards"
        assert await store.applied(settings.app_id, settings.events_topic) == {0: 4}

        await pipeline_on(store).apply([_held_event()])
        assert store._cache, "the contact written is held in memory"
        events.forget({tp})  # revoked: another member's commits count from now on
        assert not store._cache, "a rebalance drops what the worker holds"
        await events._finish([], {tp: 6}, events.relay.hold([]))
        assert await consumer.committed(tp) == 6
    finally:
        await consumer.stop()


def _held_event() -> Event:
    return Event(
        event_id=f"held-{uuid.uuid4().hex}",
        contact_id=f"held-{uuid.uuid4().hex[:8]}",
        type="email_reply",
        occurred_at=datetime(2026, 3, 1, tzinfo=UTC),
        properties={},
    )
