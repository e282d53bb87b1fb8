"""A producer client: validate events here, publish them keyed by contact.

Keying by ``contact_id`` keeps each contact's events in one partition, in
order, which is what the scorer's per-contact state needs. Validating before
sending turns a bad event into an exception at the producer, where it can be
fixed, instead of a dead letter later::

    from stream_scorer.client import EventProducer

    async with EventProducer("localhost:9092") as producer:
        await producer.send({"event_id": "e-1", "contact_id": "c-42", "type": "demo_request",
                             "occurred_at": "2026-11-28T12:00:00Z"})
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stream_scorer.alerts import Alert
from stream_scorer.connections.kafka import kafka_options
from stream_scorer.events import Event, validate
from stream_scorer.settings import Settings

__all__ = ["DEFAULT_TOPIC", "EventProducer", "tail_alerts"]

DEFAULT_TOPIC = Settings.model_fields["events_topic"].default


class EventProducer:
    """Publishes validated events to the events topic, acks from all in-sync replicas."""

    def __init__(
        self, bootstrap_servers: str, topic: str = DEFAULT_TOPIC, **producer_options: Any
    ) -> None:
        """``producer_options`` go to aiokafka (``security_protocol``, ``ssl_context``, ...)."""
        self.topic = topic
        options: dict[str, Any] = {"acks": "all", "enable_idempotence": True, "linger_ms": 5}
        options.update(producer_options)
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, **options)

    @classmethod
    def from_settings(
        cls, settings: Settings, topic: str | None = None, **producer_options: Any
    ) -> EventProducer:
        """A producer connected as the worker is (``SCORER_KAFKA_*``: SASL, TLS)."""
        options = kafka_options(settings)
        servers = options.pop("bootstrap_servers")
        return cls(servers, topic or settings.events_topic, **{**options, **producer_options})

    async def __aenter__(self) -> EventProducer:
        try:
            await self._producer.start()
        except BaseException:
            await self._producer.stop()  # a failed start leaves its connections open
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._producer.stop()

    async def send(self, event: Event | Mapping[str, Any] | bytes | str) -> None:
        """Validate and publish one event; return when Kafka has acknowledged it."""
        await (await self.enqueue(event))

    async def enqueue(self, event: Event | Mapping[str, Any] | bytes | str) -> asyncio.Future[Any]:
        """Validate and queue one event; the future resolves when Kafka acknowledged it.

        Raises :class:`~stream_scorer.errors.InvalidEvent` (with a reason code)
        before anything is sent.
        """
        valid = validate(event)
        future: asyncio.Future[Any] = await self._producer.send(
            self.topic, valid.model_dump_json().encode(), key=valid.contact_id.encode()
        )
        return future

    async def flush(self) -> None:
        await self._producer.flush()


async def tail_alerts(settings: Settings, from_beginning: bool = True) -> AsyncIterator[Alert]:
    """Follow the alerts topic without a consumer group (no offsets are committed)."""
    consumer = AIOKafkaConsumer(
        settings.alerts_topic,
        **kafka_options(settings),
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
    )
    try:
        await consumer.start()
        async for record in consumer:
            if record.value is not None:
                yield Alert.model_validate_json(record.value)
    finally:
        await consumer.stop()
