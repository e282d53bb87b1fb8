"""Prometheus metrics of one worker, served at ``GET /metrics``.

Names follow Prometheus conventions: a ``scorer_`` prefix, ``_total`` for
counters, base units (seconds). Labels are bounded by the model and the
topic (reason codes, rules, scores, tiers, partitions), never contact ids.
Each app gets its own registry, so several apps in one process (tests) do
not collide.
"""

from __future__ import annotations

import collections
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: Seconds: from a cached contact (about a millisecond) to a slow batch.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

if TYPE_CHECKING:
    from stream_scorer.scoring import Crossing

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.consumed = Counter(
            "scorer_events_consumed", "Messages read from the events topic.", registry=r
        )
        self.scored = Counter(
            "scorer_events_scored",
            "Valid events applied to contacts (duplicates included: they change nothing).",
            registry=r,
        )
        self.rejected = Counter(
            "scorer_events_rejected",
            "Messages sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=r,
        )
        self.awards = Counter(
            "scorer_awards", "Points awarded, by rule (counts of awards).", ["rule"], registry=r
        )
        self.alerts = Counter(
            "scorer_alerts",
            "Threshold crossings recorded, by score, tier and direction.",
            ["score", "tier", "direction"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "scorer_batch_duration_seconds",
            "Time to validate and score one batch of events.",
            buckets=_BUCKETS,
            registry=r,
        )
        self.redis_seconds = Histogram(
            "scorer_redis_duration_seconds",
            "Time of one store operation (read, score and compare-and-set) on Redis.",
            ["operation"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.activity = Activity()
        self.lag = Gauge(
            "scorer_consumer_lag",
            "Messages of the events topic not yet read, per owned partition.",
            ["partition"],
            registry=r,
        )
        self.states_lost = Counter(
            "scorer_contact_states_lost",
            "Contacts this worker had written that Redis no longer held, before their expiry, "
            "or held in an older version: writes Redis acknowledged and then lost (a failover, "
            "a restart that did not reload them, eviction, a flush).",
            registry=r,
        )
        self.position_resets = Counter(
            "scorer_position_resets",
            "Recorded positions found beyond the end of their partition and reset.",
            registry=r,
        )
        self.forwarded = Counter(
            "scorer_events_forwarded",
            "Events found away from their contact's home partition and forwarded there "
            "(a producer that does not partition by Kafka's default murmur2 hash).",
            registry=r,
        )
        self.relayed = Counter(
            "scorer_alerts_relayed",
            "Alerts published to the alerts topic, by path (batch, sweep, recovery).",
            ["path"],
            registry=r,
        )
        self.retries = Counter(
            "scorer_retries",
            "Transient failures retried, by operation.",
            ["operation"],
            registry=r,
        )
        self.sweep_failures = Counter(
            "scorer_sweep_failures",
            "Sweep failures: a tick or a partition's sweep that failed (the next tries "
            "again), or one contact's.",
            ["scope"],
            registry=r,
        )
        self.stalled = Gauge(
            "scorer_stalled",
            "1 while the worker has made no progress for longer than SCORER_STALL_SECONDS.",
            registry=r,
        )
        self.last_progress = Gauge(
            "scorer_last_progress_timestamp_seconds",
            "When the worker last finished a batch or found nothing to do (Unix time).",
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "scorer_webhook_deliveries",
            "Webhook deliveries: delivered, failed (refused for good), skipped (not an alert).",
            ["outcome"],
            registry=r,
        )

    def count(self, crossings: Sequence[Crossing], rules: Sequence[str]) -> None:
        """Awards and crossings of written changes (a label's lookup costs more than its count)."""
        for rule, n in collections.Counter(rules).items():
            self.awards.labels(rule).inc(n)
        for (score, tier, direction), n in collections.Counter(
            (c.score, c.tier, c.direction) for c in crossings
        ).items():
            self.alerts.labels(score, tier, direction).inc(n)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class Activity:
    """Recent activity for the dashboard: rates over a sliding window, the latest alerts."""

    def __init__(self, window_seconds: float = 60, keep_alerts: int = 20) -> None:
        self.window = window_seconds
        self._events: deque[tuple[float, int]] = deque()
        self._alerts: deque[float] = deque()
        self.latest_alerts: deque[bytes] = deque(maxlen=keep_alerts)

    def events(self, count: int) -> None:
        self._events.append((time.monotonic(), count))
        self._trim()

    def alerts(self, payloads: Sequence[bytes]) -> None:
        now = time.monotonic()
        self._alerts.extend(now for _ in payloads)
        self.latest_alerts.extend(payloads)
        self._trim()

    def _trim(self) -> None:
        horizon = time.monotonic() - self.window
        while self._events and self._events[0][0] < horizon:
            self._events.popleft()
        while self._alerts and self._alerts[0] < horizon:
            self._alerts.popleft()

    def events_per_second(self, over: float = 10) -> float:
        self._trim()
        since = time.monotonic() - over
        return sum(n for t, n in self._events if t >= since) / over

    def alerts_per_minute(self) -> float:
        self._trim()
        return len(self._alerts) * 60 / self.window
