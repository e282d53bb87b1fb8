"""The expiry sweep: idle contacts' awards expire with no new event.

An award that expires can take a contact below a tier, and that crossing
must be alerted even if the contact never sends another event. The store
indexes contacts by next expiry per events-topic partition; on each tick of
the app's timer, the sweeper takes the due contacts of the partitions this
worker owns (two workers never sweep the same contacts), advances them to
now through the pipeline, and relays the alerts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial

from stream_scorer.times import now_ms
from stream_scorer.worker.pipeline import Pipeline
from stream_scorer.worker.relay import RECOVERY_GRACE_SECONDS, Relay
from stream_scorer.worker.retry import retry
from stream_scorer.worker.store import PendingAlert, RedisStore

log = logging.getLogger(__name__)

#: Contacts advanced per round, and rounds per partition in one tick (the next continues).
SWEEP_LIMIT = 500
MAX_ROUNDS = 1000


class Sweeper:
    """Advances the due contacts of owned partitions to now; relays their alerts."""

    def __init__(
        self, store: RedisStore, pipeline: Pipeline, relay: Relay, max_backoff: float
    ) -> None:
        self.store = store
        self.pipeline = pipeline
        self.relay = relay
        self._max_backoff = max_backoff

    async def sweep(self, partitions: Sequence[int]) -> int:
        """Expire due awards of idle contacts in ``partitions``; return the alerts relayed."""
        now = now_ms()
        total = 0
        for partition in partitions:
            try:
                total += await self._sweep_one(partition, now)
            except Exception as exc:  # that partition's alone: the others are swept
                log.warning(
                    "sweep of a partition failed: partition=%d error=%s",
                    partition,
                    type(exc).__name__,
                )
                self.pipeline.metrics.sweep_failures.labels("partition").inc()
        return total

    async def _sweep_one(self, partition: int, now: int) -> int:
        total = await self.relay.recover(partition, RECOVERY_GRACE_SECONDS)
        for _ in range(MAX_ROUNDS):  # a bounded catch-up; the next tick continues
            pending = await retry(
                "redis.sweep",
                partial(self.sweep_partition, partition, now),
                self._max_backoff,
                health=self.pipeline.health,
            )
            await self.relay.publish(pending, "sweep")
            total += len(pending)
            if not await self.store.has_due(partition, now):
                break
        return total

    async def sweep_partition(
        self, partition: int, now: int, limit: int = SWEEP_LIMIT
    ) -> list[PendingAlert]:
        """Advance up to ``limit`` contacts of a partition whose next expiry is due."""
        due = await self.store.due(partition, now, limit)
        if not due:
            return []
        applied = await self.pipeline.advance(due, now, partition)
        if applied.failed:
            # Out of the index until the contact's next write, so that one contact
            # failing does not stop the sweep of the others, tick after tick.
            log.error(
                "sweep failed for some contacts, taken out of the expiry index: contacts=%d "
                "errors=%s",
                len(applied.failed),
                ",".join(sorted(set(applied.failed.values()))),
            )
            self.pipeline.metrics.sweep_failures.labels("contact").inc(len(applied.failed))
            await self.store.forget_due(partition, list(applied.failed))
        return applied.pending
