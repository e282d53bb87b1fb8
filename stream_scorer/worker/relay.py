"""The outbox relay: alerts to Kafka, acknowledged, then cleared from their outboxes.

The store records a contact's alerts in its outbox in the same atomic step
as its new state; the relay publishes them to the alerts topic (keyed by
contact), waits for Kafka's acks, and only then removes them. A crash in
between publishes them again after the restart (the same ``alert_id``, which
consumers drop): a duplicate, never a loss.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from stream_scorer.worker.metrics import Metrics
from stream_scorer.worker.retry import retry
from stream_scorer.worker.store import PendingAlert, RedisStore

#: Publishes one alert ``(key, value)``; awaiting the result awaits Kafka's ack.
SendAlert = Callable[[bytes, bytes], Awaitable[Any]]


class Relay:
    """Publishes pending alerts and clears them once Kafka has them."""

    def __init__(
        self, store: RedisStore, send_alert: SendAlert, metrics: Metrics, max_backoff: float
    ) -> None:
        self.store = store
        self._send_alert = send_alert
        self.metrics = metrics
        self._max_backoff = max_backoff

    async def publish(self, pending: Sequence[PendingAlert]) -> None:
        """Publish pending alerts, wait for Kafka's ack, then clear them from the outbox."""
        if not pending:
            return

        async def send_all() -> None:
            futures = [await self._send_alert(a.contact_id.encode(), a.payload) for a in pending]
            await asyncio.gather(*futures)

        await retry("kafka.alerts", send_all, self._max_backoff)
        self.metrics.activity.alerts([a.payload for a in pending])
        await retry("redis.outbox", lambda: self.store.mark_relayed(pending), self._max_backoff)
