"""How live awards add up to a score: per-category tallies, category limits, the score's range.

A contact keeps, for each score, the points of its live awards per category
and the sum of what those categories count. Counting one award in or out
changes one category, so the score moves by that category's change instead of
being summed again over every award. :func:`held` is the one place a
category's ``min``/``max`` apply; the score's own range is
:meth:`CompiledScore.clamp`. Nothing here knows about contacts or awards
beyond a category and its points, so the contact state can build on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from stream_scorer.scoring.model import CompiledScore


def held(raw: int, low: int | None, high: int | None) -> int:
    """The points a category counts: its ``raw`` sum within the category's ``min``/``max``."""
    if high is not None and raw > high:
        raw = high
    if low is not None and raw < low:
        raw = low
    return raw


@dataclass(slots=True, init=False)
class _Category:
    """One category of one score: its live awards' points and how many there are.

    Native ints on a compiled object: updated without dict writes or boxing.
    """

    raw: int
    live: int
    low: int | None
    high: int | None

    def __init__(self, low: int | None, high: int | None, raw: int = 0, live: int = 0) -> None:
        # Written out: compiled, the generated one ran as interpreted Python.
        self.raw = raw
        self.live = live
        self.low = low
        self.high = high


@dataclass(slots=True, init=False)
class _Tally:
    """One score of one contact: its categories and the sum of what they count.

    ``counted`` is kept up to date by the change of one category, so a score's
    value is not recomputed over all its categories for each award.
    """

    counted: int
    categories: dict[str, _Category]

    def __init__(self, counted: int = 0, categories: dict[str, _Category] | None = None) -> None:
        self.counted = counted
        self.categories = {} if categories is None else categories

    def copy(self) -> _Tally:
        return _Tally(
            self.counted,
            {k: _Category(c.low, c.high, c.raw, c.live) for k, c in self.categories.items()},
        )


def _add(
    tallies: dict[str, _Tally],
    values: dict[str, int],
    score: CompiledScore,
    category: str | None,
    points: int,
    sign: int,
) -> None:
    """Count an award of ``points`` in (``sign`` +1) or out (-1) of ``score``; update its value.

    Only the award's category changes, so the value moves by the change of what
    that category counts: the same as summing what every category counts.
    """
    name = score.name
    tally = tallies.get(name)
    if tally is None:
        tally = tallies[name] = _Tally()
    cats = tally.categories
    key = category or ""
    cat = cats.get(key)
    if cat is None:
        if key:
            low, high = score.categories[key]
            cat = cats[key] = _Category(low, high)
        else:
            cat = cats[key] = _Category(None, None)
        before = 0
    else:
        before = held(cat.raw, cat.low, cat.high)
    live = cat.live + sign
    cat.live = live
    if live:  # a category counts (its min included) while it has live awards
        raw = cat.raw + sign * points
        cat.raw = raw
        after = held(raw, cat.low, cat.high)
    else:  # none left: as a rebuild from the awards would have it
        after = 0
        del cats[key]
        if not cats:
            del tallies[name]
    total = tally.counted + after - before
    tally.counted = total
    values[name] = score.clamp(total)
