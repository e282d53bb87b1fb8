"""The outbox relay: alerts to Kafka, acknowledged, then cleared from their outboxes.

The store records a contact's alerts in its outbox in the same atomic step
as its new state; the relay publishes them to the alerts topic (keyed by
contact), waits for Kafka's acks, and only then removes them. A crash in
between publishes them again after the restart (the same ``alert_id``, which
consumers drop): a duplicate, never a loss.

Two paths publish. A batch or a sweep relays the alerts its own writes
added (:meth:`Relay.publish`). Whatever a crash, a failed batch or a lost
partition left in outboxes is found through the outbox index and relayed
by :meth:`Relay.recover`: for a partition when it is assigned, and on every
sweep tick for entries older than a grace period (so that a batch's own
relay, still in flight, is not doubled).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from stream_scorer.worker.health import Health
from stream_scorer.worker.metrics import Metrics
from stream_scorer.worker.retry import retry
from stream_scorer.worker.store import PendingAlert, RedisStore

#: Publishes one alert ``(key, value)``; awaiting the result awaits Kafka's ack.
SendAlert = Callable[[bytes, bytes], Awaitable[Any]]

#: Contacts taken from an outbox index per round of a recovery.
RECOVER_LIMIT = 500
#: Rounds of a recovery per partition; the next sweep tick continues.
RECOVER_ROUNDS = 100
#: Outbox entries younger than this belong to a relay in flight, not to a periodic recovery.
RECOVERY_GRACE_SECONDS = 30.0


class Hold:
    """Alerts marked in flight until :meth:`release` (once, however often it is called)."""

    def __init__(self, in_flight: Counter[PendingAlert], pending: Sequence[PendingAlert]) -> None:
        self._in_flight = in_flight
        self._pending = list(pending)
        in_flight.update(self._pending)

    def release(self, *_done: object) -> None:
        """Unmark the alerts; also a task's done callback (hence the ignored argument)."""
        pending, self._pending = self._pending, []
        for alert in pending:
            self._in_flight[alert] -= 1
            if self._in_flight[alert] <= 0:
                del self._in_flight[alert]


class Relay:
    """Publishes pending alerts and clears them once Kafka has them."""

    def __init__(
        self,
        store: RedisStore,
        send_alert: SendAlert,
        metrics: Metrics,
        max_backoff: float,
        health: Health | None = None,
    ) -> None:
        self.store = store
        self.health = health
        self._send_alert = send_alert
        self.metrics = metrics
        self._max_backoff = max_backoff
        # Alerts this worker is publishing now: the recovery leaves them alone.
        self._in_flight: Counter[PendingAlert] = Counter()

    def hold(self, pending: Sequence[PendingAlert]) -> Hold:
        """Mark alerts as this worker's to publish: the recovery leaves them alone.

        The consumer holds a batch's alerts as soon as they are written, since
        they may wait for the batch before to finish; :meth:`publish` releases
        them, or the holder does if they are never published.
        """
        return Hold(self._in_flight, pending)

    async def publish(
        self, pending: Sequence[PendingAlert], path: str = "batch", hold: Hold | None = None
    ) -> None:
        """Publish pending alerts, wait for Kafka's ack, then clear them from the outbox."""
        if not pending:
            return
        held = hold if hold is not None else self.hold(pending)
        try:

            async def send_all() -> None:
                futures = [
                    await self._send_alert(a.contact_id.encode(), a.payload) for a in pending
                ]
                # Every ack awaited (no failure left unretrieved), the first failure raised.
                acks = await asyncio.gather(*futures, return_exceptions=True)
                for ack in acks:
                    if isinstance(ack, BaseException):
                        raise ack

            await retry("kafka.alerts", send_all, self._max_backoff, health=self.health)
            self.metrics.relayed.labels(path).inc(len(pending))
            self.metrics.activity.alerts([a.payload for a in pending])
            await retry(
                "redis.outbox",
                lambda: self.store.mark_relayed(pending),
                self._max_backoff,
                health=self.health,
            )
        finally:
            held.release()

    async def recover(self, partition: int, grace_seconds: float = 0) -> int:
        """Relay what outboxes of a partition still hold; return the alerts published.

        Looks only at contacts entered in the outbox index more than
        ``grace_seconds`` ago. A contact leaves the index once its outbox is
        relayed, unless it was written again meanwhile.
        """
        before = time.time_ns() // 1000 - int(grace_seconds * 1_000_000)
        total = 0
        for _ in range(RECOVER_ROUNDS):
            entries = await retry(
                "redis.outbox",
                lambda: self.store.stranded(partition, before, RECOVER_LIMIT),
                self._max_backoff,
                health=self.health,
            )
            if not entries:
                break
            contacts = [cid for cid, _ in entries]
            outboxes = await retry(
                "redis.outbox",
                partial(self.store.outboxes, contacts),
                self._max_backoff,
                health=self.health,
            )
            # A contact written since its entry was read may have alerts in the outbox
            # that its batch is about to relay: left for the next recovery.
            now_entries = await retry(
                "redis.outbox",
                partial(self.store.outbox_entries, partition, contacts),
                self._max_backoff,
                health=self.health,
            )
            pending: list[PendingAlert] = []
            done: list[tuple[str, float]] = []
            for entry, outbox, now_entry in zip(entries, outboxes, now_entries, strict=True):
                if now_entry != entry[1]:
                    continue
                alerts = [PendingAlert(entry[0], payload) for payload in outbox]
                if any(alert in self._in_flight for alert in alerts):
                    continue  # its batch's relay has it; the next recovery looks again
                pending.extend(alerts)
                done.append(entry)
            await self.publish(pending, "recovery")
            await retry(
                "redis.outbox",
                partial(self.store.unindex_outboxes, partition, done),
                self._max_backoff,
                health=self.health,
            )
            total += len(pending)
            if len(entries) < RECOVER_LIMIT or not done:
                break
        return total
