"""Creating the scorer's topics before the worker subscribes to them."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from stream_scorer.errors import ServiceUnavailable
from stream_scorer.settings import Settings

log = logging.getLogger(__name__)


async def ensure_topics(settings: Settings, wait_seconds: float = 60.0) -> None:
    """Create the events, alerts and dead-letter topics if missing (waits for Kafka)."""
    names = [settings.events_topic, settings.alerts_topic, settings.dlq_topic]
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while True:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap_servers, request_timeout_ms=10_000
        )
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [n for n in names if n not in existing]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(
                        [
                            NewTopic(
                                n, settings.topic_partitions, settings.topic_replication_factor
                            )
                            for n in missing
                        ]
                    )
                log.info("created topics: %s", ",".join(missing))
            if await _all_led(admin, names):
                return
        except (KafkaConnectionError, KafkaError, OSError) as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise ServiceUnavailable(
                    f"Kafka at {settings.kafka_bootstrap_servers} did not answer: {exc!r}"
                ) from exc
            await asyncio.sleep(1.0)
            continue
        finally:
            await admin.close()
        if asyncio.get_running_loop().time() > deadline:
            raise ServiceUnavailable(f"topics {names} have partitions without a leader")
        await asyncio.sleep(0.2)


async def _all_led(admin: AIOKafkaAdminClient, names: list[str]) -> bool:
    """True once every partition of every topic has a leader (new topics take a moment)."""
    described = await admin.describe_topics(names)
    found = {d["topic"] for d in described if d["error_code"] == 0}
    return found == set(names) and all(
        p["error_code"] == 0 and p["leader"] >= 0 for d in described for p in d["partitions"]
    )
