"""The simulated span: one random generator, the time in it, the calendar everyone shares.

Every draw of a simulation comes from one ``random.Random(seed)`` in a fixed
order, so the same arguments give the same history byte for byte; code that
draws must keep that order. :class:`Timeline` holds the generator, the
events emitted so far, the helpers that place an event at a plausible local
hour, and the campaigns and webinars sent to every contact.
"""

from __future__ import annotations

import math
import random
from datetime import datetime
from typing import Any

from stream_scorer.times import epoch_ms

SEC = 1_000
MIN = 60 * SEC
HOUR = 60 * MIN
DAY = 24 * HOUR

#: Local hours people are online, weighted: mostly office hours, some evenings.
_HOUR_WEIGHTS = (0, 0, 0, 0, 0, 0, 1, 2, 4, 6, 7, 7, 5, 6, 7, 7, 6, 4, 3, 2, 2, 2, 1, 1)
_HOURS = tuple(h for h, w in enumerate(_HOUR_WEIGHTS) for _ in range(w))

#: An event before it is numbered: (epoch ms, sequence, contact, type, properties).
Raw = tuple[int, int, str, str, dict[str, Any]]


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson count (Knuth's method; a normal approximation for large means)."""
    if lam <= 0:
        return 0
    if lam > 40:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit = math.exp(-lam)
    k = 0
    product = rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def weekday_of(ms: int) -> int:
    """Monday is 0; 1970-01-01 was a Thursday."""
    return (ms // DAY + 3) % 7


class Timeline:
    """The span ``[start, start + days)``, its random draws and the events emitted in it."""

    def __init__(self, days: int, seed: int, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("start must carry a UTC offset")
        self.rng = random.Random(seed)
        self.rand = self.rng.random
        self.days = days
        self.start = epoch_ms(start)
        self.end = self.start + days * DAY
        self.events: list[Raw] = []
        self.seq = 0
        self.campaigns = self._campaigns()
        self.webinars = self._webinars()

    # --- calendar ------------------------------------------------------------------

    def _campaigns(self) -> list[tuple[int, dict[str, Any]]]:
        """A newsletter or campaign most weeks, a second one some weeks; sent to everyone."""
        rng, out = self.rng, []
        week = self.start - (weekday_of(self.start) * DAY) - self.start % DAY
        n = 0
        while week < self.end:
            for extra in (False, True):
                if extra and rng.random() > 0.25:
                    continue
                if not extra and rng.random() < 0.1:
                    continue  # a quiet week
                send = week + rng.choice((1, 2, 3)) * DAY + rng.choice((13, 14, 15)) * HOUR
                send += self.below(4) * 15 * MIN
                if self.start <= send < self.end:
                    n += 1
                    out.append((send, {"campaign_id": f"cmp-{n:03d}"}))
            week += 7 * DAY
        out.sort(key=lambda c: c[0])
        return out

    def _webinars(self) -> list[tuple[int, dict[str, Any]]]:
        out: list[tuple[int, dict[str, Any]]] = []
        t = self.start + self.between(7, 21) * DAY
        n = 0
        while t < self.end:
            day = t - t % DAY
            day += ((2 - weekday_of(day)) % 7) * DAY  # Wednesdays
            at = day + 16 * HOUR
            if at < self.end:
                n += 1
                out.append((at, {"webinar_id": f"webinar-{n:02d}"}))
            t = day + self.between(14, 29) * DAY
        return out

    # --- emitting ------------------------------------------------------------------

    def emit(self, t: int, contact: str, type_: str, props: dict[str, Any]) -> None:
        """Record an event; one outside the simulated span is dropped, never clamped."""
        if self.start <= t < self.end:
            self.events.append((t, self.seq, contact, type_, props))
            self.seq += 1

    def at(self, t: int, lo: int, hi: int, tz: int) -> int:
        """``t`` moved to a plausible local hour of its day (weekends mostly to Monday).

        The result stays in ``[lo, hi)``: an event of a journey never lands after
        the conversion that ends it.
        """
        rng = self.rng
        local_day = (t + tz) // DAY
        weekday = (local_day + 3) % 7
        if weekday >= 5 and rng.random() < 0.75:
            local_day += 7 - weekday
        moved = local_day * DAY - tz + _HOURS[self.below(len(_HOURS))] * HOUR + self.below(HOUR)
        return moved if lo <= moved < hi else t

    def uniform(self, lo: int, hi: int) -> int:
        """A time in ``[lo, hi)``, or ``lo`` when that is empty."""
        return lo + int(self.rand() * max(1, hi - lo))

    def between(self, lo: int, hi: int) -> int:
        """``randrange(lo, hi)``, five times faster (this is most of the drawing)."""
        return lo + int(self.rand() * (hi - lo))

    def below(self, n: int) -> int:
        return int(self.rand() * n)
