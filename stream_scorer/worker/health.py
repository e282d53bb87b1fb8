"""Whether the worker makes progress: what ``/readyz`` and ``scorer_stalled`` report.

Transient failures are retried (:mod:`.retry`), for as long as they last:
Redis restarting or Kafka electing a leader must not lose events. But a
worker that retries for minutes is not serving, and must say so: a retried
operation failing for longer than ``SCORER_STALL_SECONDS``, or a consume
loop that has not come round for that long, makes the worker stalled until
it recovers. Orchestrators stop routing to it (``/readyz`` answers 503) and
alert rules can fire on ``scorer_stalled``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from stream_scorer.worker.metrics import Metrics


class Health:
    """Failing operations and the consume loop's heartbeat."""

    def __init__(
        self,
        stall_seconds: float,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stall_seconds = stall_seconds
        self._clock = clock
        self._metrics = metrics
        # Per operation, when it started failing (cleared by its next success).
        self._failing: dict[str, float] = {}
        # The consume loop's last round; None until it runs.
        self._beat: float | None = None
        if metrics is not None:
            metrics.stalled.set_function(lambda: 0.0 if self.problem() is None else 1.0)

    def beat(self) -> None:
        """The consume loop came round: it is not stuck."""
        self._beat = self._clock()
        if self._metrics is not None:
            self._metrics.last_progress.set(time.time())

    def failing(self, what: str) -> None:
        """``what`` failed and will be retried."""
        self._failing.setdefault(what, self._clock())
        if self._metrics is not None:
            self._metrics.retries.labels(what).inc()

    def recovered(self, what: str) -> None:
        """``what`` succeeded."""
        self._failing.pop(what, None)

    def problem(self) -> str | None:
        """Why the worker is stalled, if it is."""
        now = self._clock()
        for what, since in sorted(self._failing.items()):
            if now - since > self.stall_seconds:
                return f"{what} has been failing for {now - since:.0f} s"
        if self._beat is not None and now - self._beat > self.stall_seconds:
            return f"the events consumer has not made progress for {now - self._beat:.0f} s"
        return None
