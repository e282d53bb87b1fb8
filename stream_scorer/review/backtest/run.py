"""The backtest proper: events replayed up to each contact's point-in-time cut-off."""

from __future__ import annotations

import gc
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass

from stream_scorer.events import Event
from stream_scorer.scoring import ContactState, Crossing, ScoringModel, advance_in_place, replay


@dataclass
class Backtest:
    """Each contact's state as of its cut-off, and every crossing up to it."""

    model: ScoringModel
    states: dict[str, ContactState]
    cutoffs: dict[str, int]
    crossings: list[Crossing]
    as_of: int
    point_in_time: str
    events: int


def run_backtest(
    model: ScoringModel,
    events: list[Event],
    times: list[int],
    *,
    as_of: int | None = None,
    conversions: Mapping[str, int] | None = None,
) -> Backtest:
    """Replay events (sorted by ``times``) up to each contact's cut-off.

    The cut-off is ``as_of`` (default: the last event's time), or for a contact
    in ``conversions`` the millisecond before it converted, if that is earlier.
    """
    if as_of is None:
        as_of = times[-1] if times else 0
    converted = conversions or {}

    def cutoff(contact: str) -> int:
        at = converted.get(contact)
        return as_of if at is None or at - 1 > as_of else at - 1

    if converted:
        kept = [e for e, t in zip(events, times, strict=True) if t <= cutoff(e.contact_id)]
    else:
        kept = events[: bisect_right(times, as_of)]  # the events at or before as_of
    collecting = gc.isenabled()
    gc.disable()  # as in replay: no cycles are made, and collections walk every state
    try:
        states, crossings = replay(kept, model)
        cutoffs: dict[str, int] = {}
        for contact, state in states.items():
            cutoffs[contact] = at = cutoff(contact)
            crossings.extend(advance_in_place(state, at, model, contact).crossings)
        crossings.sort(key=alert_order)
    finally:
        if collecting:
            gc.enable()
    return Backtest(
        model,
        states,
        cutoffs,
        crossings,
        as_of,
        "before_conversion" if converted else "as_of",
        len(kept),
    )


def alert_order(crossing: Crossing) -> tuple[int, str]:
    """Alerts in time order; a contact's alerts at one instant stay in the engine's order."""
    return crossing.at, crossing.contact_id
