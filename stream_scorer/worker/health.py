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

import itertools
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
        # Per retry loop under way (a token), its operation and its first failure.
        self._failing: dict[int, tuple[str, float]] = {}
        self._tokens = itertools.count()
        # The consume loop's last round; None until it runs.
        self._beat: float | None = None
        if metrics is not None:
            metrics.stalled.set_function(lambda: 0.0 if self.problem() is None else 1.0)

    def beat(self) -> None:
        """The consume loop came round: it is not stuck."""
        self._beat = self._clock()
        if self._metrics is not None:
            self._metrics.last_progress.set(time.time())

    def failing(self, what: str, token: int | None = None) -> int:
        """``what`` failed and will be retried; returns the token of this retry loop.

        Pass the token back on each further failure of the same loop, and to
        :meth:`done` when the loop ends, however it ends.
        """
        if token is None:
            token = next(self._tokens)
            self._failing[token] = (what, self._clock())
        if self._metrics is not None:
            self._metrics.retries.labels(what).inc()
        return token

    def done(self, token: int) -> None:
        """A retry loop ended: it succeeded, gave up, or was cancelled."""
        self._failing.pop(token, None)

    def problem(self) -> str | None:
        """Why the worker is stalled, if it is."""
        now = self._clock()
        for what, since in sorted(self._failing.values(), key=lambda item: item[1]):
            if now - since > self.stall_seconds:
                return f"{what} has been failing for {now - since:.0f} s"
        if self._beat is not None and now - self._beat > self.stall_seconds:
            return f"the events consumer has not made progress for {now - self._beat:.0f} s"
        return None
