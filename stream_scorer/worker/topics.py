"""Creating the scorer's topics before the worker subscribes to them.

The worker (and the demo) call it at start, so that the topics exist with
the partitions and replication the settings ask for before anyone
subscribes or publishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from stream_scorer.connections.kafka import diagnose, kafka_options
from stream_scorer.errors import ServiceRefused, ServiceUnavailable
from stream_scorer.settings import Settings
from stream_scorer.worker.retry import retry

log = logging.getLogger(__name__)


async def ensure_topics(settings: Settings, wait_seconds: float = 60.0) -> None:
    """Create the events, alerts and dead-letter topics if missing (waits for Kafka)."""
    names = [settings.events_topic, settings.alerts_topic, settings.dlq_topic]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds

    async def create_and_wait_for_leaders() -> None:
        admin = AIOKafkaAdminClient(**kafka_options(settings), request_timeout_ms=10_000)
        try:
            try:
                await admin.start()
            except Exception:
                # aiokafka says only that it could not bootstrap: one plain connection
                # tells a refusal (a login, a certificate), which no wait will cure.
                problem = await diagnose(settings)
                if problem is not None and problem.refused:
                    raise ServiceRefused(problem.message) from None
                raise
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
            while not await _all_led(admin, names):  # new topics take a moment
                if loop.time() > deadline:
                    raise ServiceUnavailable(f"topics {names} have partitions without a leader")
                await asyncio.sleep(0.2)
        finally:
            await admin.close()

    try:
        # Kafka may still be starting: quietly, once a second, until the deadline.
        await retry(
            "kafka.topics",
            create_and_wait_for_leaders,
            1.0,
            first_delay=1.0,
            give_up_at=deadline,
            log_level=logging.DEBUG,
        )
    except (KafkaConnectionError, KafkaError, OSError) as exc:
        problem = await diagnose(settings)
        why = problem.message if problem is not None else repr(exc)
        raise ServiceUnavailable(
            f"Kafka at {settings.kafka_bootstrap_servers} did not answer: {why}"
        ) from exc


async def _all_led(admin: AIOKafkaAdminClient, names: list[str]) -> bool:
    """True once every partition of every topic has a leader (new topics take a moment)."""
    described = await admin.describe_topics(names)
    found = {d["topic"] for d in described if d["error_code"] == 0}
    return found == set(names) and all(
        p["error_code"] == 0 and p["leader"] >= 0 for d in described for p in d["partitions"]
    )
