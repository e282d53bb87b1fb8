"""Creating the scorer's topics before the worker subscribes to them."""

from __future__ import annotations

import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from stream_scorer.errors import ServiceUnavailable
from stream_scorer.settings import Settings

log = logging.getLogger("stream_scorer.topics")


async def ensure_topics(settings: Settings, timeout: float = 60.0) -> None:
    """Create the events, alerts and dead-letter topics if missing (waits for Kafka)."""
    names = [settings.events_topic, settings.alerts_topic, settings.dlq_topic]
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap_servers, request_timeout_ms=10_000
        )
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [n for n in names if n not in existing]
            if missing:
                try:
                    await admin.create_topics(
                        [NewTopic(n, settings.topic_partitions, settings.topic_replication_factor) for n in missing]
                    )
                except TopicAlreadyExistsError:
                    pass
                log.info("created topics: %s", ",".join(missing))
            return
        except (KafkaConnectionError, KafkaError, OSError) as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise ServiceUnavailable(
                    f"Kafka at {settings.kafka_bootstrap_servers} did not answer: {exc!r}"
                ) from exc
            await asyncio.sleep(1.0)
        finally:
            await admin.close()
