"""The webhook sink: alerts POSTed to configured URLs, signed, retried, not repeated.

A service of the worker app with its own consumer group
(``<app id>-webhooks``) on the alerts topic, so webhook delivery never slows
scoring and each worker delivers the alerts of the partitions it owns.

Each alert is POSTed as its JSON bytes with the headers:

- ``X-Scorer-Alert-Id``: the alert id (dedupe on it);
- ``X-Scorer-Signature: sha256=<hex>``: HMAC-SHA256 of the body with
  ``SCORER_WEBHOOK_SECRET``, when one is set.

A 2xx answer is a delivery. Anything else (a 5xx, 408, 429, a timeout, a
refused connection) is retried with capped exponential backoff until it
succeeds, so an alert is never skipped; a URL that keeps failing holds up
only the alerts behind it. A delivery is recorded in Redis
(``ss:{hook:<url hash>}:<alert id>``, kept for ``SCORER_DEDUPE_DAYS``)
before the offset is committed, and an alert recorded as delivered to a URL
is not sent to it again: not after a replay, a rebalance or a restart. A
crash between a receiver's 2xx and the record can repeat that one alert,
which the receiver recognises by its id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import ConsumerStoppedError, KafkaError
from mode import Service

from stream_scorer.settings import Settings
from stream_scorer.worker.keys import delivered_key
from stream_scorer.worker.retry import TryAgain, retry

log = logging.getLogger(__name__)


def signature(secret: str, body: bytes) -> str:
    """The ``X-Scorer-Signature`` header value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _undelivered(exc: BaseException) -> bool:
    """A refused connection, a timeout or an answer other than 2xx: try the URL again."""
    return isinstance(exc, aiohttp.ClientError | TimeoutError | TryAgain)


class WebhookSink(Service):
    """Delivers every alert on the alerts topic to every configured URL."""

    def __init__(self, settings: Settings, redis: aioredis.Redis, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.redis = redis
        self.urls = settings.webhook_url_list
        secret = settings.webhook_secret
        self.secret = secret.get_secret_value() if secret is not None else None
        self.keep_ms = int(settings.dedupe_days * 86_400_000)
        self.consumer: AIOKafkaConsumer | None = None
        self.session: aiohttp.ClientSession | None = None

    async def on_start(self) -> None:
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.settings.webhook_timeout_seconds)
        )
        self.consumer = AIOKafkaConsumer(
            self.settings.alerts_topic,
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=f"{self.settings.app_id}-webhooks",
            client_id=f"{self.settings.app_id}-webhooks",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=200,
        )
        await self.consumer.start()

    async def on_stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
        if self.session is not None:
            await self.session.close()

    @Service.task
    async def _deliver_all(self) -> None:
        assert self.consumer is not None
        while not self.should_stop:
            try:
                batch = await self.consumer.getmany(timeout_ms=500)
            except ConsumerStoppedError:
                return
            for records in batch.values():
                for record in records:
                    await self._deliver(record.value)
            if batch:
                try:
                    await self.consumer.commit()
                except KafkaError as exc:  # deliveries are recorded: a replay skips them
                    log.info("webhook commit skipped: error=%s", type(exc).__name__)

    async def _deliver(self, body: bytes) -> None:
        try:
            alert_id = str(json.loads(body)["alert_id"])
        except (ValueError, KeyError, TypeError):
            log.warning("not an alert on the alerts topic; not delivered")
            return
        for url in self.urls:
            key = delivered_key(url, alert_id)
            backoff = self.settings.redis_retry_max_backoff
            if await retry("redis.webhook", lambda k=key: self.redis.exists(k), backoff):  # type: ignore[misc]
                continue
            await self._post(url, alert_id, body)
            await retry(
                "redis.webhook",
                lambda k=key: self.redis.set(k, 1, px=self.keep_ms),  # type: ignore[misc]
                backoff,
            )

    async def _post(self, url: str, alert_id: str, body: bytes) -> None:
        assert self.session is not None
        headers = {"Content-Type": "application/json", "X-Scorer-Alert-Id": alert_id}
        if self.secret is not None:
            headers["X-Scorer-Signature"] = signature(self.secret, body)

        async def post() -> None:
            assert self.session is not None
            async with self.session.post(url, data=body, headers=headers) as response:
                if not 200 <= response.status < 300:
                    raise TryAgain(f"status {response.status}")

        await retry(
            "webhook.post",
            post,
            self.settings.webhook_max_backoff,
            first_delay=0.1,
            transient=_undelivered,
        )
