"""The webhook sink: alerts POSTed to configured URLs, signed, retried, not repeated.

A service of the worker app. Each URL has its own consumer group on the
alerts topic (``<app id>-webhooks-<url digest>``, see :func:`hook_group`)
and its own delivery loop, so webhook delivery never slows scoring, a URL
that keeps failing holds up only its own alerts, and each worker delivers,
per URL, the alerts of the partitions it owns in that URL's group.

Each alert is POSTed as its JSON bytes with the headers:

- ``X-Scorer-Alert-Id``: the alert id (dedupe on it);
- ``X-Scorer-Timestamp``: when this attempt was signed, in Unix seconds;
- ``X-Scorer-Signature: v1=<hex>``: HMAC-SHA256 with ``SCORER_WEBHOOK_SECRET``
  (when one is set) of ``<timestamp>.<alert id>.`` followed by the body.
  Receivers check it with :func:`verify_signature` (copied in
  docs/consuming-alerts.md): the signature binds the body to its alert id
  and goes stale, so a captured request cannot be replayed later.

A 2xx answer is a delivery. Another 4xx than 408 and 429 is a refusal: the
receiver will never take this alert, so retrying it would only halt the
alerts behind it. It is recorded in Redis (:func:`~.keys.hook_failed_key`,
the latest :data:`FAILED_KEEP` refusals per URL), logged and counted, and
the next alert is sent. Anything else (a 5xx, 408, 429, a timeout, a
refused connection) is retried with capped exponential backoff until it
succeeds, so a receiver that is away misses nothing.

A delivery is recorded in Redis (``ss:{hook:<url digest>}:<alert id>``, kept
for ``SCORER_DEDUPE_DAYS``) before the offset is committed, and an alert
recorded as delivered to a URL is not sent to it again: not after a replay,
a rebalance or a restart. A crash between a receiver's 2xx and the record
can repeat that one alert, which the receiver recognises by its id. A
refusal is not a delivery: replaying the URL's group once the receiver is
fixed sends the refused alerts again, and only them.

A new URL (its group has no committed offset) starts at the end of the
alerts topic, or at its beginning with ``SCORER_WEBHOOK_START=earliest``.
Each start is resolved and committed before the sink counts as started,
so before the worker reports ready: an alert published after that is
delivered, whatever restarts or rebalances come first.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from typing import Any, Literal

import aiohttp
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import ConsumerStoppedError, IllegalStateError, KafkaError
from mode import Service

from stream_scorer.settings import Settings
from stream_scorer.times import format_ms, now_ms
from stream_scorer.worker.keys import delivered_key, hook_digest, hook_failed_key
from stream_scorer.worker.metrics import Metrics
from stream_scorer.worker.retry import TryAgain, retry

log = logging.getLogger(__name__)

#: Refusals kept per URL in Redis: enough to see what went wrong, bounded whatever happens.
FAILED_KEEP = 1000

#: 4xx answers that mean "not now" (timed out, too many requests), not "never".
_RETRIED_4XX = frozenset({408, 429})


def hook_group(app_id: str, url: str) -> str:
    """The consumer group of one URL: its own offsets, so it waits for nobody else."""
    return f"{app_id}-webhooks-{hook_digest(url)}"


def signature(secret: str, timestamp: int, alert_id: str, body: bytes) -> str:
    """The ``X-Scorer-Signature`` value: binds the body to its alert id and a time."""
    signed = f"{timestamp}.{alert_id}.".encode() + body
    return "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    timestamp: str | int,
    alert_id: str,
    body: bytes,
    signature: str,
    tolerance_seconds: float = 300,
    now: float | None = None,
) -> bool:
    """A receiver's check: signed with ``secret``, for this alert, within the tolerance.

    The headers' values go in as received. Pure and standard library only, so
    that receivers can copy it (docs/consuming-alerts.md has the same code).
    """
    stamp = str(timestamp)
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
        return False
    if not (alert_id.isascii() and signature.isascii()):
        return False  # the scorer's are: anything else was not signed by it
    if abs((time.time() if now is None else now) - int(stamp)) > tolerance_seconds:
        return False  # a replay of an old request, or a clock far off
    signed = f"{stamp}.{alert_id}.".encode() + body
    expected = "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


class _Refused(Exception):
    """A 4xx that means "never": the alert is recorded as failed, not retried."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"status {status}")
        self.status = status
        self.reason = reason


def _undelivered(exc: BaseException) -> bool:
    """A refused connection, a timeout, a 5xx, 408 or 429: try the URL again."""
    return isinstance(exc, aiohttp.ClientError | TimeoutError | TryAgain)


class WebhookSink(Service):
    """Delivers every alert on the alerts topic to every configured URL, each on its own."""

    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        metrics: Metrics | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.redis = redis
        self.metrics = metrics
        self.urls = list(dict.fromkeys(settings.webhook_url_list))  # each URL once
        secret = settings.webhook_secret
        self.secret = secret.get_secret_value() if secret is not None else None
        self.keep_ms = int(settings.dedupe_days * 86_400_000)
        self.session: aiohttp.ClientSession | None = None
        self.hooks: list[_Hook] = []
        self._loops: list[asyncio.Future[None]] = []

    async def on_start(self) -> None:
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.settings.webhook_timeout_seconds)
        )
        self.hooks = [_Hook(self, url) for url in self.urls]
        # Every group placed before the worker reports ready: nothing published later is missed.
        await asyncio.gather(*(hook.start() for hook in self.hooks))
        self._loops = [self.add_future(hook.deliver_all()) for hook in self.hooks]
        log.info(
            "webhook sink started: urls=%d start=%s", len(self.hooks), self.settings.webhook_start
        )

    async def on_stop(self) -> None:
        for loop in self._loops:  # a URL retrying forever must not hold up the stop
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        await asyncio.gather(*(hook.stop() for hook in self.hooks), return_exceptions=True)
        if self.session is not None:
            await self.session.close()

    def count(self, outcome: Literal["delivered", "failed"]) -> None:
        if self.metrics is not None:
            self.metrics.webhook_deliveries.labels(outcome).inc()


class _Hook(ConsumerRebalanceListener):  # type: ignore[misc]
    """One URL: its consumer group on the alerts topic, its delivery loop, its refusals."""

    def __init__(self, sink: WebhookSink, url: str) -> None:
        self.sink = sink
        self.url = url
        self.digest = hook_digest(url)  # in logs: a URL can carry a token
        self.group = hook_group(sink.settings.app_id, url)
        self.consumer: AIOKafkaConsumer | None = None
        # Set once the first assignment's start positions are resolved and committed.
        self.placed = asyncio.Event()
        # Start positions the rebalance could not commit: the loop commits them.
        self.uncommitted = False
        # Why the first placement failed (not authorized, say): the start fails with it.
        self.failure: BaseException | None = None

    async def start(self) -> None:
        settings = self.sink.settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=self.group,
            client_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset=settings.webhook_start,  # only where the group has no offset
            max_poll_records=200,
        )
        await consumer.start()
        self.consumer = consumer
        consumer.subscribe([settings.alerts_topic], listener=self)
        await self.placed.wait()
        if self.failure is not None:
            raise self.failure

    async def stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Nothing to finish: deliveries are recorded in Redis as they happen."""

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Resolve where each partition starts, and commit it so that it stays there.

        aiokafka resolves ``auto_offset_reset`` lazily, at its first fetch:
        "latest" would be wherever the end is by then, past alerts published
        once the worker reported ready. And a start left uncommitted is
        resolved again, later still, by the next owner or after a restart.
        """
        assert self.consumer is not None
        try:
            starts = {tp: await self.consumer.position(tp) for tp in assigned}
        except IllegalStateError:  # revoked meanwhile: the next assignment places them
            return
        except Exception as exc:  # aiokafka would only log it, and the start wait forever
            log.warning("webhook start positions unknown: hook=%s error=%r", self.digest, exc)
            self.failure = exc
            self.placed.set()
            return
        if starts:
            try:
                await self.consumer.commit(starts)
            except KafkaError as exc:
                self.uncommitted = True
                log.info(
                    "webhook start positions not committed yet: hook=%s error=%s",
                    self.digest,
                    type(exc).__name__,
                )
        self.placed.set()

    async def deliver_all(self) -> None:
        consumer = self.consumer
        assert consumer is not None
        while not self.sink.should_stop:
            try:
                batch = await consumer.getmany(timeout_ms=500)
            except ConsumerStoppedError:
                return
            for records in batch.values():
                for record in records:
                    await self.deliver(record.value)
            if batch or self.uncommitted:
                try:
                    await consumer.commit()
                    self.uncommitted = False
                except KafkaError as exc:  # deliveries are recorded: a replay skips them
                    log.info(
                        "webhook commit skipped: hook=%s error=%s", self.digest, type(exc).__name__
                    )

    async def deliver(self, body: bytes | None) -> None:
        """Send one alert unless it was delivered here before; a refusal is recorded."""
        try:
            if body is None:
                raise ValueError("no value")
            alert_id = str(json.loads(body)["alert_id"])
        except (ValueError, KeyError, TypeError):
            log.warning("not an alert on the alerts topic; not delivered: hook=%s", self.digest)
            return
        sink = self.sink
        key = delivered_key(self.url, alert_id)
        backoff = sink.settings.redis_retry_max_backoff
        if await retry("redis.webhook", lambda: sink.redis.exists(key), backoff):
            return
        refused = await self._post(alert_id, body)
        if refused is None:
            await retry("redis.webhook", lambda: sink.redis.set(key, 1, px=sink.keep_ms), backoff)
            sink.count("delivered")
        else:
            await self._record_refusal(alert_id, refused)
            sink.count("failed")

    async def _post(self, alert_id: str, body: bytes) -> _Refused | None:
        """POST until the receiver takes the alert (None) or refuses it for good."""
        sink = self.sink
        session = sink.session
        assert session is not None

        async def post() -> None:
            # Signed at each attempt: a retry hours later carries a fresh timestamp.
            stamp = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "X-Scorer-Alert-Id": alert_id,
                "X-Scorer-Timestamp": str(stamp),
            }
            if sink.secret is not None:
                headers["X-Scorer-Signature"] = signature(sink.secret, stamp, alert_id, body)
            async with session.post(self.url, data=body, headers=headers) as response:
                status = response.status
                if 200 <= status < 300:
                    return
                if 400 <= status < 500 and status not in _RETRIED_4XX:
                    raise _Refused(status, (response.reason or "")[:200])
                raise TryAgain(f"status {status}")

        try:
            await retry(
                f"webhook.post hook={self.digest}",
                post,
                sink.settings.webhook_max_backoff,
                first_delay=0.1,
                transient=_undelivered,
            )
        except _Refused as refused:
            return refused
        return None

    async def _record_refusal(self, alert_id: str, refused: _Refused) -> None:
        """Into the URL's capped list of refusals, then the log (no URL, no contact)."""
        key = hook_failed_key(self.url)
        record = json.dumps(
            {
                "alert_id": alert_id,
                "url": self.url,
                "status": refused.status,
                "reason": refused.reason,
                "failed_at": format_ms(now_ms()),
            }
        )

        async def push() -> None:
            async with self.sink.redis.pipeline(transaction=True) as pipe:
                pipe.lpush(key, record)
                pipe.ltrim(key, 0, FAILED_KEEP - 1)
                await pipe.execute()

        await retry("redis.webhook", push, self.sink.settings.redis_retry_max_backoff)
        log.warning(
            "webhook refused an alert for good; recorded, not retried: "
            "hook=%s status=%d alert_id=%s",
            self.digest,
            refused.status,
            alert_id,
        )
