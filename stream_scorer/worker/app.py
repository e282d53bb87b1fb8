"""The Faust app, built by :func:`create_app`: the worker's services and its web server.

Nothing happens at import time. The events topic is read in batches by
:class:`~stream_scorer.worker.consumer.EventsConsumer`, a service of this app, and
each batch is handed to :class:`Scorer`, which never lets an exception drop
an event: bad events go to the dead-letter topic with a reason, Redis and
Kafka failures are retried with backoff, and anything else stops the
worker before the batch's position is recorded, so the batch is read again.
Faust runs the services, the expiry sweep timer, the producer for alerts
and dead letters, and the web server.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

import faust
import redis.asyncio as aioredis

from stream_scorer.errors import InvalidEvent
from stream_scorer.events import Event, check_event, decode_event
from stream_scorer.scoring.model import ScoringModel, load_model
from stream_scorer.settings import Settings
from stream_scorer.worker import api
from stream_scorer.worker.consumer import EventsConsumer, Message
from stream_scorer.worker.metrics import Metrics
from stream_scorer.worker.retry import retry
from stream_scorer.worker.store import PendingAlert, RedisStore
from stream_scorer.worker.webhooks import WebhookSink

log = logging.getLogger(__name__)

T = TypeVar("T")


class Scorer:
    """Scores one batch of raw events and relays its alerts; used by the events consumer."""

    def __init__(
        self,
        settings: Settings,
        model: ScoringModel,
        store: RedisStore,
        send_alert: Callable[[bytes, bytes], Awaitable[Any]],
        send_dead_letter: Callable[[bytes | None, bytes | None, dict[str, bytes]], Awaitable[Any]],
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics or Metrics()
        self.settings = settings
        self.model = model
        self.store = store
        self._send_alert = send_alert
        self._send_dead_letter = send_dead_letter
        self.stopping = False

    async def _retry(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        return await retry(what, op, self.settings.redis_retry_max_backoff)

    async def score(self, messages: Sequence[Message]) -> Sequence[PendingAlert]:
        """Dead-letter the bad messages, apply the good ones; return the alerts to relay."""
        start = time.perf_counter()
        self.metrics.consumed.inc(len(messages))
        self.metrics.activity.events(len(messages))
        good: list[Event] = []
        partition_of: dict[str, int] = {}
        bad: list[tuple[Message, InvalidEvent]] = []
        not_after = datetime.now(UTC) + timedelta(seconds=self.settings.max_clock_skew_seconds)
        known = None if self.settings.accept_unknown_types else self.model.event_types
        for msg in messages:
            try:
                event = decode_event(msg[1], self.settings.max_event_bytes, msg[5])
                check_event(event, known, not_after)
            except InvalidEvent as exc:
                bad.append((msg, exc))
            else:
                good.append(event)
                partition_of[event.contact_id] = msg[3]
        for msg, invalid in bad:
            await self._dead_letter(msg, invalid.reason, invalid.detail)
        if not good:
            return ()
        try:
            pending = await self._retry(
                "redis.apply", lambda: self.store.apply_batch(good, partition_of)
            )
        except Exception as exc:  # a bug or a refused script call: keep the events
            log.exception("batch failed, dead-lettering its events: error=%s", type(exc).__name__)
            for msg in messages:
                if msg[1] is not None and not any(m is msg for m, _ in bad):
                    await self._dead_letter(msg, "internal_error", type(exc).__name__)
            return ()
        self.metrics.scored.inc(len(good))
        self.metrics.batch_seconds.observe(time.perf_counter() - start)
        return pending

    async def sweep(self, partitions: Sequence[int]) -> int:
        """Expire due awards of idle contacts in our partitions; relay their alerts."""
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
        total = 0
        for partition in partitions:
            for _ in range(1000):  # a bounded catch-up; the next tick continues
                pending = await self._retry(
                    "redis.sweep", partial(self.store.sweep, partition, now_ms)
                )
                await self.relay(pending)
                total += len(pending)
                if not await self.store.has_due(partition, now_ms):
                    break
        return total

    async def relay(self, pending: Sequence[PendingAlert]) -> None:
        """Publish pending alerts, wait for Kafka's ack, then clear them from the outbox."""
        if not pending:
            return

        async def publish() -> None:
            futures = [await self._send_alert(a.contact_id.encode(), a.payload) for a in pending]
            await asyncio.gather(*futures)

        await self._retry("kafka.alerts", publish)
        self.metrics.activity.alerts([a.payload for a in pending])
        await self._retry("redis.outbox", lambda: self.store.mark_relayed(pending))

    async def _dead_letter(self, msg: Message, reason: str, detail: str) -> None:
        key, value, topic, partition, offset, original = msg
        self.metrics.rejected.labels(reason).inc()
        headers = {
            **dict(original),  # a binary CloudEvent keeps its ce_* attributes
            "reason": reason.encode(),
            "detail": detail[:1000].encode(),
            "source_topic": topic.encode(),
            "source_partition": str(partition).encode(),
            "source_offset": str(offset).encode(),
        }
        log.warning(
            "dead-lettered: reason=%s topic=%s partition=%d offset=%d",
            reason,
            topic,
            partition,
            offset,
        )

        async def send() -> None:
            await (await self._send_dead_letter(key, value, headers))

        await self._retry("kafka.dlq", send)


def create_app(settings: Settings, model: ScoringModel | None = None) -> faust.App:
    """Build the worker app; no connection is opened until the worker starts."""
    model = model if model is not None else load_model(settings.model_path)
    app = faust.App(
        # Faust's own group reads only its assignor-leader topic; the events
        # consumer's group is app_id.
        f"{settings.app_id}-faust",
        # Faust keeps table state there; this app has none, so not the working directory.
        datadir=str(Path(tempfile.gettempdir()) / f"stream-scorer-{settings.app_id}"),
        broker=settings.kafka_url,
        store="memory://",
        autodiscover=False,
        web_enabled=True,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_interval=1.0,
    )
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    events_topic = app.topic(settings.events_topic, partitions=settings.topic_partitions, **raw)
    alerts_topic = app.topic(settings.alerts_topic, partitions=settings.topic_partitions, **raw)
    dlq_topic = app.topic(settings.dlq_topic, partitions=settings.topic_partitions, **raw)
    redis_client = aioredis.from_url(
        settings.redis_url, socket_timeout=10, socket_connect_timeout=5
    )
    metrics = Metrics()
    store = RedisStore(
        redis_client,
        model,
        settings.contact_ttl_seconds,
        dedupe_seconds=int(settings.dedupe_days * 86_400),
        namespace=settings.events_topic,
        cache_contacts=settings.state_cache_contacts,
        metrics=metrics,
    )

    async def send_alert(key: bytes, value: bytes) -> Any:
        return await alerts_topic.send(key=key, value=value, force=True)

    async def send_dead_letter(
        key: bytes | None, value: bytes | None, headers: dict[str, bytes]
    ) -> Any:
        return await dlq_topic.send(key=key, value=value, headers=headers, force=True)

    scorer = Scorer(settings, model, store, send_alert, send_dead_letter, metrics)

    started: list[EventsConsumer] = []

    @app.service
    class Events(EventsConsumer):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(settings, store, scorer.score, scorer.relay, metrics, **kwargs)
            started.append(self)

    def owned_partitions() -> list[int]:
        return started[-1].owned() if started else []

    async def send_event(event: Event) -> Any:
        return await events_topic.send(
            key=event.contact_id.encode(), value=event.model_dump_json().encode(), force=True
        )

    api.install(app, settings, store, send_event, owned_partitions, metrics)

    if settings.webhook_url_list:

        @app.service
        class Webhooks(WebhookSink):
            def __init__(self, **kwargs: Any) -> None:
                super().__init__(settings, redis_client, **kwargs)

    if settings.sweep_interval_seconds > 0:

        async def sweep_owned_partitions() -> None:
            # Only the partitions this worker owns: two workers never sweep the same contacts.
            owned = owned_partitions()
            try:
                swept = await scorer.sweep(owned)
            except Exception as exc:  # the next tick tries again; nothing is lost meanwhile
                log.warning("sweep failed: error=%s", type(exc).__name__)
                return
            if swept:
                log.info("sweep relayed alerts: count=%d partitions=%d", swept, len(owned))

        app.timer(settings.sweep_interval_seconds, name="sweep_expiry")(sweep_owned_partitions)

    async def _close_redis(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        await redis_client.aclose()

    # mode's stub for connect() rejects coroutine functions it accepts at run time.
    app.on_before_shutdown.connect(cast(Any, _close_redis))

    app.scorer = scorer  # type: ignore[attr-defined]
    return app
