"""The Faust app, built by :func:`create_app`: the worker's parts, wired together.

Nothing happens at import time, and nothing here does work: it connects the
parts, and Faust runs them. Data flows one way:

- :class:`~.consumer.EventsConsumer` (a service) reads the events topic in
  batches and hands each to
- :class:`~.pipeline.Pipeline`: decode and check (bad messages to the
  dead-letter topic), read the contacts from
- :class:`~.store.RedisStore`, run the engine, compare-and-set the new
  states and their alerts; then
- :class:`~.relay.Relay` publishes the alerts and clears them from the store.

A timer runs :class:`~.sweeper.Sweeper` (expiry of idle contacts' awards,
through the same pipeline and relay). Faust also runs the producer for
alerts and dead letters, the web server with :mod:`.api`, and the webhook
sink (:mod:`.webhooks`) when URLs are configured.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import faust

from stream_scorer.connections.kafka import ssl_context
from stream_scorer.connections.redis import connect_settings
from stream_scorer.events import Event, encode_event
from stream_scorer.scoring import ScoringModel, load_model
from stream_scorer.settings import Settings
from stream_scorer.worker import api
from stream_scorer.worker.consumer import EventsConsumer
from stream_scorer.worker.health import Health
from stream_scorer.worker.metrics import Metrics
from stream_scorer.worker.pipeline import Pipeline
from stream_scorer.worker.relay import RECOVERY_GRACE_SECONDS, Relay
from stream_scorer.worker.store import RedisStore
from stream_scorer.worker.sweeper import Sweeper
from stream_scorer.worker.webhooks import WebhookSink

log = logging.getLogger(__name__)

#: How often the lag of owned partitions is asked of Kafka, batches or not.
LAG_INTERVAL_SECONDS = 5.0
#: How often outboxes are relayed when there are no sweep ticks to do it.
RECOVERY_INTERVAL_SECONDS = 60.0


def faust_instance_id(settings: Settings) -> str | None:
    """Faust's own group membership: static with ``SCORER_INSTANCE_ID``, per web address.

    Faust's assignor refuses an assignment made for another web address, and a
    static member restarting gets its cached one: so the address is part of the
    id. A worker back at the same address rejoins at once; at another one it is
    a new member (the old one leaves after the session timeout).
    """
    if settings.instance_id is None:
        return None
    address = re.sub(r"[^A-Za-z0-9._-]", "_", f"{settings.web_host}-{settings.web_port}")
    return f"{settings.instance_id}.{settings.app_id}-faust.{address}"


def faust_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """The Faust app's SASL or TLS credentials: the same as every other Kafka client's."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl_context(settings)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    password = settings.kafka_sasl_password
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=None if password is None else password.get_secret_value(),
        ssl_context=context,  # None: SASL_PLAINTEXT
        mechanism=settings.kafka_sasl_mechanism,
    )


def create_app(settings: Settings, model: ScoringModel | None = None) -> faust.App:
    """Build the worker app; no connection is opened until the worker starts."""
    model = model if model is not None else load_model(settings.model_path)
    membership = settings.group_membership(f"{settings.app_id}-faust")
    app = faust.App(
        # Faust's own group reads only its assignor-leader topic; the events
        # consumer's group is app_id.
        f"{settings.app_id}-faust",
        # Faust keeps table state there; this app has none, so not the working directory.
        datadir=str(Path(tempfile.gettempdir()) / f"stream-scorer-{settings.app_id}"),
        broker=settings.kafka_url,
        broker_credentials=faust_credentials(settings),
        store="memory://",
        autodiscover=False,
        web_enabled=True,
        # Faust's own views expose topology and internals; api.install also
        # answers 404 for them whatever Faust's APP_* variables turn on.
        web_router_enabled=False,
        web_tables_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_interval=1.0,
        # A dead worker leaves Faust's own group after this, not after Faust's default
        # minute; the events consumer starts only once this group is joined.
        broker_session_timeout=membership["session_timeout_ms"] / 1000,
        broker_heartbeat_interval=membership["heartbeat_interval_ms"] / 1000,
        consumer_group_instance_id=faust_instance_id(settings),
    )
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    events_topic = app.topic(settings.events_topic, partitions=settings.topic_partitions, **raw)
    alerts_topic = app.topic(settings.alerts_topic, partitions=settings.topic_partitions, **raw)
    dlq_topic = app.topic(settings.dlq_topic, partitions=settings.topic_partitions, **raw)
    redis_client = connect_settings(settings, socket_timeout=10, socket_connect_timeout=5)
    metrics = Metrics()
    store = RedisStore(
        redis_client,
        model,
        settings.contact_ttl_seconds,
        dedupe_seconds=int(settings.dedupe_days * 86_400),
        dedupe_max_ids=settings.dedupe_max_ids,
        namespace=settings.events_topic,
        cache_contacts=settings.state_cache_contacts,
        state_format=settings.state_format,
        on_lost=metrics.states_lost.inc,
    )

    async def send_alert(key: bytes, value: bytes) -> Any:
        return await alerts_topic.send(key=key, value=value, force=True)

    async def send_dead_letter(
        key: bytes | None, value: bytes | None, headers: dict[str, bytes]
    ) -> Any:
        return await dlq_topic.send(key=key, value=value, headers=headers, force=True)

    async def send_forward(
        key: bytes, value: bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> Any:
        # No partition given: Kafka's default partitioner on the producer's own
        # metadata picks the contact's home.
        return await events_topic.send(key=key, value=value, headers=list(headers), force=True)

    backoff = settings.redis_retry_max_backoff
    health = Health(settings.stall_seconds, metrics)
    pipeline = Pipeline(settings, model, store, send_dead_letter, metrics, health, send_forward)
    relay = Relay(store, send_alert, metrics, backoff, health)

    if settings.webhook_url_list:

        @app.service
        class Webhooks(WebhookSink):
            def __init__(self, **kwargs: Any) -> None:
                super().__init__(settings, redis_client, metrics=metrics, **kwargs)

    started: list[EventsConsumer] = []

    @app.service
    class Events(EventsConsumer):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(settings, store, pipeline, relay, metrics, health, **kwargs)
            started.append(self)

    async def measure_lag() -> None:
        if started:
            await started[-1].measure_lag()

    app.timer(LAG_INTERVAL_SECONDS, name="measure_lag")(measure_lag)

    def owned_partitions() -> list[int]:
        return started[-1].owned() if started else []

    async def send_event(event: Event) -> Any:
        return await events_topic.send(
            key=event.contact_id.encode(), value=encode_event(event), force=True
        )

    api.install(app, settings, model, store, send_event, owned_partitions, metrics, health)

    if settings.sweep_interval_seconds > 0:
        sweeper = Sweeper(store, pipeline, relay, backoff)

        async def sweep_owned_partitions() -> None:
            # Only the partitions this worker owns: two workers never sweep the same contacts.
            owned = owned_partitions()
            try:
                swept = await sweeper.sweep(owned)
            except Exception as exc:  # the next tick tries again; nothing is lost meanwhile
                log.warning("sweep failed: error=%s", type(exc).__name__)
                metrics.sweep_failures.labels("tick").inc()
                return
            if swept:
                log.info("sweep relayed alerts: count=%d partitions=%d", swept, len(owned))

        app.timer(settings.sweep_interval_seconds, name="sweep_expiry")(sweep_owned_partitions)

    else:  # no sweep ticks: outboxes are still relayed periodically

        async def relay_outboxes() -> None:
            for partition in owned_partitions():
                try:
                    await relay.recover(partition, RECOVERY_GRACE_SECONDS)
                except Exception as exc:  # the next tick tries again; the others go on
                    log.warning(
                        "outbox recovery failed: partition=%d error=%s",
                        partition,
                        type(exc).__name__,
                    )

        app.timer(RECOVERY_INTERVAL_SECONDS, name="relay_outboxes")(relay_outboxes)

    async def _close_redis(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        await redis_client.aclose()

    # mode's stub for connect() rejects coroutine functions it accepts at run time.
    app.on_before_shutdown.connect(cast(Any, _close_redis))

    return app
