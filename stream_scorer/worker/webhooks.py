"""The webhook sink: alerts POSTed to configured URLs, signed, retried, not repeated.

A service of the worker app. Each URL has its own consumer group on the
alerts topic (``<app id>-webhooks-<url digest>``, see :func:`hook_group`)
and its own task, which joins the group and then delivers, so webhook
delivery never slows scoring, and a URL that keeps failing, or whose group
is never placed, holds up only its own alerts: not another URL's, not the
worker's start. Each worker delivers, per URL, the alerts of the partitions
it owns in that URL's group.

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
the next alert is sent. Anything else (a 3xx, a 5xx, 408, 429, a timeout,
a refused connection) is retried with capped exponential backoff until it
succeeds, so a receiver that is away misses nothing. Redirects are not
followed (a client turns a redirected POST into a GET without the body):
the URL must be configured with its final location.

A delivery is recorded in Redis (``ss:{hook:<url digest>}:<alert id>``, kept
for ``SCORER_DEDUPE_DAYS``) before the offset is committed, and an alert
recorded as delivered to a URL is not sent to it again: not after a replay,
a rebalance or a restart. A crash between a receiver's 2xx and the record
can repeat that one alert, which the receiver recognises by its id. A
refusal is not a delivery: replaying the URL's group once the receiver is
fixed sends the refused alerts again, and only them.

A record that is not an alert (its ``alert_id`` is not what
:func:`~stream_scorer.scoring.crossings.alert_id` makes) is skipped and
counted; an unexpected error on one alert is recorded as a refusal with
reason ``internal_error``; a Redis error is retried. None of them stops
the sink or the worker.

Where a group has no committed offset (a new URL), it starts with the
alerts published after the sink started (``SCORER_WEBHOOK_START=latest``,
the ends of the alerts topic recorded before the worker reports ready) or
at the beginning of the topic (``earliest``). A committed offset that is
no longer on the topic (retention, truncation) goes on at the oldest alert
left, never at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

import aiohttp
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from mode import Service
from redis.exceptions import RedisError

from stream_scorer.connections.kafka import kafka_options
from stream_scorer.connections.redis import RedisClient
from stream_scorer.settings import Settings
from stream_scorer.times import format_ms, now_ms
from stream_scorer.worker.keys import delivered_key, hook_digest, hook_failed_key
from stream_scorer.worker.metrics import Metrics
from stream_scorer.worker.retry import TryAgain, retry

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Refusals kept per URL in Redis: enough to see what went wrong, bounded whatever happens.
FAILED_KEEP = 1000

#: A URL's group not placed for this long is logged as an error (and again as long as it lasts).
PLACE_TIMEOUT_SECONDS = 60.0

#: The longest the sink's start waits for Kafka: it must not hold up the worker's for long.
START_TIMEOUT_SECONDS = 15.0

#: 4xx answers that mean "not now" (timed out, too many requests), not "never".
_RETRIED_4XX = frozenset({408, 429})

#: What ``crossings.alert_id`` makes: a SHA-1 in lowercase hex.
_ALERT_ID_LENGTH = 40
_HEX = frozenset("0123456789abcdef")

Outcome = Literal["delivered", "failed", "skipped"]


def is_alert_id(value: object) -> bool:
    """An id the scorer makes: 40 lowercase hex digits, so no dot, CR or LF in a header."""
    return isinstance(value, str) and len(value) == _ALERT_ID_LENGTH and set(value) <= _HEX


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
    if not (len(alert_id) == 40 and set(alert_id) <= set("0123456789abcdef")):
        return False  # not a scorer id; with a dot, "<ts>.<id>.<body>" could be split elsewhere
    if not signature.isascii():
        return False  # the scorer's is: anything else was not signed by it
    if abs((time.time() if now is None else now) - int(stamp)) > tolerance_seconds:
        return False  # a replay of an old request, or a clock far off
    signed = f"{stamp}.{alert_id}.".encode() + body
    expected = "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def _alert_id(body: bytes | None) -> str | None:
    """The alert id of a record, or None if it is not a scorer alert (never raises)."""
    if body is None:
        return None
    try:
        alert = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep
        return None
    alert_id = alert.get("alert_id") if isinstance(alert, dict) else None
    return alert_id if is_alert_id(alert_id) else None


class _Refused(Exception):
    """A 4xx that means "never": the alert is recorded as failed, not retried."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"status {status}")
        self.status = status
        self.reason = reason


def _undelivered(exc: BaseException) -> bool:
    """A refused connection, a timeout, a 3xx, 5xx, 408 or 429: try the URL again."""
    return isinstance(exc, aiohttp.ClientError | TimeoutError | TryAgain)


class WebhookSink(Service):
    """Delivers every alert on the alerts topic to every configured URL, each on its own."""

    def __init__(
        self,
        settings: Settings,
        redis: RedisClient,
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
        # With "latest": where the alerts topic ended when the sink started; None if unknown.
        self.start_ends: dict[TopicPartition, int] | None = None
        self._loops: list[asyncio.Future[None]] = []

    async def on_start(self) -> None:
        """Record where new groups start, then let each URL join and deliver on its own.

        Only the recording waits (bounded): it fixes "latest" at this
        moment, before the worker reports ready, however late a group is placed.
        """
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.settings.webhook_timeout_seconds)
        )
        self.hooks = [_Hook(self, url) for url in self.urls]
        if self.settings.webhook_start == "latest" and self.hooks:
            self.start_ends = await self._record_ends()
            if self.start_ends:
                await self._keep_starts(self.start_ends)
        self._loops = [self.add_future(hook.run()) for hook in self.hooks]
        log.info(
            "webhook sink started: urls=%d start=%s", len(self.hooks), self.settings.webhook_start
        )

    async def _record_ends(self) -> dict[TopicPartition, int] | None:
        """The alerts topic's end per partition now: "latest" means after this."""
        settings = self.settings
        topic = settings.alerts_topic

        async def ends() -> dict[TopicPartition, int]:
            admin = AIOKafkaAdminClient(
                **kafka_options(settings),
                client_id=f"{settings.app_id}-webhooks",
            )
            await admin.start()
            try:
                described = await admin.describe_topics()  # all: naming it could create it
            finally:
                await admin.close()
            found = [d for d in described if d["topic"] == topic and d["error_code"] == 0]
            if not found or not found[0]["partitions"]:
                raise TryAgain("the alerts topic is not there yet")
            tps = [TopicPartition(topic, p["partition"]) for p in found[0]["partitions"]]
            consumer = AIOKafkaConsumer(
                **kafka_options(settings),
                client_id=f"{settings.app_id}-webhooks",
                enable_auto_commit=False,
            )
            await consumer.start()
            try:
                return {tp: int(end) for tp, end in (await consumer.end_offsets(tps)).items()}
            finally:
                await consumer.stop()

        try:
            async with asyncio.timeout(START_TIMEOUT_SECONDS):
                return await retry("kafka.webhook_start", ends, 1.0)
        except Exception as exc:
            log.error(
                "webhook start unknown: new URLs will start at the end of the alerts topic "
                "when placed, and can miss alerts published before that: error=%s",
                type(exc).__name__,
            )
            return None

    async def _keep_starts(self, ends: dict[TopicPartition, int]) -> None:
        """Each new group's start committed now if Kafka takes it, bounded."""
        tasks = [asyncio.ensure_future(hook.keep_start(ends)) for hook in self.hooks]
        _, pending = await asyncio.wait(tasks, timeout=START_TIMEOUT_SECONDS)
        for task in pending:  # the placement commits these starts instead
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def on_stop(self) -> None:
        for loop in self._loops:  # a URL retrying forever must not hold up the stop
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        await asyncio.gather(*(hook.stop() for hook in self.hooks), return_exceptions=True)
        if self.session is not None:
            await self.session.close()

    def count(self, outcome: Outcome) -> None:
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
        # An assignment arrived since the last revocation (or since the consumer started).
        self.assigned = False
        # Assigned partitions, paused until their start is resolved.
        self.unplaced: set[TopicPartition] = set()
        # Partitions put at their start by this worker: only their records are delivered.
        self.ready: set[TopicPartition] = set()
        # The next offset to commit per partition: deliveries and starts not committed yet.
        self.progress: dict[TopicPartition, int] = {}

    @property
    def placed(self) -> bool:
        """The group gave this worker its partitions, and each knows where it starts."""
        return self.consumer is not None and self.assigned and not self.unplaced

    def _consumer(self, **kwargs: Any) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            **kafka_options(self.sink.settings),
            group_id=self.group,
            client_id=self.group,
            enable_auto_commit=False,
            **self.sink.settings.group_membership(self.group),
            **kwargs,
        )

    async def keep_start(self, ends: dict[TopicPartition, int]) -> None:
        """Commit the sink's start where the group has no offset, before joining it.

        Kafka takes such a commit only while the group has no member, and a
        worker stopped before its group is placed then still keeps its start.
        Otherwise, or on any error, the placement resolves it from ``ends``.
        """
        consumer = self._consumer()
        try:
            await consumer.start()
            consumer.assign(list(ends))
            new = {tp: end for tp, end in ends.items() if await consumer.committed(tp) is None}
            if new:
                await consumer.commit(new)
        except Exception as exc:
            log.info(
                "webhook start not committed before joining (placement will): hook=%s error=%s",
                self.digest,
                type(exc).__name__,
            )
        finally:
            await consumer.stop()

    async def run(self) -> None:
        """Join the group, place and deliver until stopped; any failure here is this URL's alone."""
        sink = self.sink
        loop = asyncio.get_running_loop()
        waiting_since: float | None = loop.time()  # since when this worker saw it not placed
        delay = 0.1
        while not sink.should_stop:
            try:
                if self.consumer is None:
                    await self._subscribe()
                await self._step()
                delay = 0.1
            except Exception as exc:
                # Not authorized, an inconsistent group, Kafka away: a new consumer, later.
                log.warning(
                    "webhook consumer failed; restarting it: hook=%s error=%s delay=%.2f",
                    self.digest,
                    type(exc).__name__,
                    delay,
                )
                with contextlib.suppress(Exception):
                    await self.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, sink.settings.webhook_max_backoff)
            if self.placed:
                waiting_since = None
            elif waiting_since is None:
                waiting_since = loop.time()
            elif loop.time() - waiting_since >= PLACE_TIMEOUT_SECONDS:
                log.error(
                    "webhook group not placed for %.0f s; its alerts wait, other URLs go on: "
                    "hook=%s",
                    loop.time() - waiting_since,
                    self.digest,
                )
                waiting_since = loop.time()

    async def _subscribe(self) -> None:
        # "earliest" is only for offsets Kafka has not got (never committed, or
        # no longer on the topic): the placement puts new groups where they start.
        consumer = self._consumer(auto_offset_reset="earliest", max_poll_records=200)
        self.consumer = consumer
        self.assigned = False
        self.unplaced.clear()
        self.ready.clear()
        self.progress.clear()
        await consumer.start()
        consumer.subscribe([self.sink.settings.alerts_topic], listener=self)

    async def stop(self) -> None:
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            await consumer.stop()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Commit what was delivered from them (a new owner would skip it anyway, via Redis)."""
        self.assigned = False
        self.ready -= revoked
        await self._commit()
        self.unplaced -= revoked
        for tp in revoked:
            self.progress.pop(tp, None)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Hold the partitions until :meth:`_place` has resolved where each starts."""
        self.ready &= assigned
        self.unplaced = assigned - self.ready
        if self.consumer is not None and self.unplaced:
            self.consumer.pause(*self.unplaced)
        self.assigned = True

    async def _place(self) -> None:
        """Seek each assigned partition to its committed offset, or where a new group starts.

        Every one, explicitly: aiokafka may have fetched from elsewhere
        before the rebalance callback paused it. A new start is committed at
        once, so that it stays. Not in the callback, where aiokafka would
        only log an error: here a failure is retried, the partition held.
        """
        consumer = self.consumer
        assert consumer is not None
        for tp in sorted(self.unplaced):
            committed = await consumer.committed(tp)
            start = await self._start_of(tp) if committed is None else committed
            if tp not in self.unplaced:
                continue  # revoked meanwhile
            consumer.seek(tp, start)
            if committed is None:
                self.progress[tp] = start  # committed below: a restart starts there again
            self.unplaced.discard(tp)
            self.ready.add(tp)
            consumer.resume(tp)
        await self._commit()

    async def _start_of(self, tp: TopicPartition) -> int:
        """Where a group with no offset starts on ``tp``."""
        consumer = self.consumer
        assert consumer is not None
        ends = self.sink.start_ends
        if self.sink.settings.webhook_start == "earliest":
            return int((await consumer.beginning_offsets([tp]))[tp])
        if ends is None:  # not recorded at the start (logged then): the end now
            return int((await consumer.end_offsets([tp]))[tp])
        if tp in ends:
            return ends[tp]
        # A partition added since the sink started: all of it is newer.
        return int((await consumer.beginning_offsets([tp]))[tp])

    async def _step(self) -> None:
        consumer = self.consumer
        assert consumer is not None
        if self.unplaced:
            await self._place()
        batch = await consumer.getmany(timeout_ms=500)
        for tp, records in batch.items():
            for record in records:
                if tp not in self.ready:
                    break  # fetched before it was placed (or revoked since): its owner sends it
                await self.deliver(record.value)
                if tp in self.ready:
                    self.progress[tp] = record.offset + 1
        await self._commit()

    async def _commit(self) -> None:
        """Commit the progress on partitions still owned; a failure is retried next round."""
        consumer = self.consumer
        if consumer is None or not self.progress:
            return
        owned = consumer.assignment()
        offsets = {tp: o for tp, o in self.progress.items() if tp in owned}
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except KafkaError as exc:  # deliveries are recorded: a replay skips them
            log.info("webhook commit skipped: hook=%s error=%s", self.digest, type(exc).__name__)
            return
        for tp, offset in offsets.items():
            if self.progress.get(tp) == offset:
                del self.progress[tp]

    async def deliver(self, body: bytes | None) -> None:
        """Send one alert unless it was delivered here before; never raises.

        One record must not stop a URL's delivery, nor crash the worker.
        """
        sink = self.sink
        alert_id = _alert_id(body)
        if body is None or alert_id is None:
            log.warning("not an alert on the alerts topic; skipped: hook=%s", self.digest)
            sink.count("skipped")
            return
        try:
            await self._deliver(alert_id, body)
        except Exception as exc:
            log.error(
                "webhook delivery failed in the sink; recorded, not retried: "
                "hook=%s alert_id=%s error=%s",
                self.digest,
                alert_id,
                type(exc).__name__,
            )
            await self._record_refusal(alert_id, None, "internal_error")
            sink.count("failed")

    async def _deliver(self, alert_id: str, body: bytes) -> None:
        sink = self.sink
        key = delivered_key(self.url, alert_id)
        if await self._redis(lambda: sink.redis.exists(key)):
            return
        refused = await self._post(alert_id, body)
        if refused is None:
            await self._redis(lambda: sink.redis.set(key, 1, px=sink.keep_ms))
            sink.count("delivered")
        else:
            await self._record_refusal(alert_id, refused.status, refused.reason)
            log.warning(
                "webhook refused an alert for good; recorded, not retried: "
                "hook=%s status=%d alert_id=%s",
                self.digest,
                refused.status,
                alert_id,
            )
            sink.count("failed")

    async def _redis(self, op: Callable[[], Awaitable[T]]) -> T:
        """``op`` until Redis takes it: an error that is not transient waits here too, logged.

        A Redis that refuses a command (a key of the wrong type, say) holds
        up this URL until it is fixed, rather than skipping or crashing.
        """
        backoff = self.sink.settings.redis_retry_max_backoff
        delay = 0.1
        while True:
            try:
                return await retry("redis.webhook", op, backoff)
            except RedisError as exc:
                log.error(
                    "redis refused a webhook record; retrying: hook=%s error=%s delay=%.2f",
                    self.digest,
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, backoff)

    async def _post(self, alert_id: str, body: bytes) -> _Refused | None:
        """POST until the receiver takes the alert (None) or refuses it for good."""
        sink = self.sink
        session = sink.session
        assert session is not None
        redirected = False

        async def post() -> None:
            nonlocal redirected
            # Signed at each attempt: a retry hours later carries a fresh timestamp.
            stamp = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "X-Scorer-Alert-Id": alert_id,
                "X-Scorer-Timestamp": str(stamp),
            }
            if sink.secret is not None:
                headers["X-Scorer-Signature"] = signature(sink.secret, stamp, alert_id, body)
            # A redirect followed would be a GET without the alert: its answer says nothing.
            async with session.post(
                self.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                if 200 <= status < 300:
                    return
                if 300 <= status < 400:
                    if not redirected:
                        redirected = True
                        log.error(
                            "webhook URL redirects; not delivered, retried until it takes "
                            "the POST: configure its final location in SCORER_WEBHOOK_URLS: "
                            "hook=%s status=%d",
                            self.digest,
                            status,
                        )
                    raise TryAgain(f"status {status} (a redirect, not followed)")
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

    async def _record_refusal(self, alert_id: str, status: int | None, reason: str) -> None:
        """Into the URL's capped list of refusals, named by its digest: a URL can carry a token."""
        key = hook_failed_key(self.url)
        record = json.dumps(
            {
                "alert_id": alert_id,
                "hook": self.digest,
                "status": status,
                "reason": reason,
                "failed_at": format_ms(now_ms()),
            }
        )

        async def push() -> None:
            async with self.sink.redis.pipeline(transaction=True) as pipe:
                pipe.lpush(key, record)
                pipe.ltrim(key, 0, FAILED_KEEP - 1)
                await pipe.execute()

        await self._redis(push)
