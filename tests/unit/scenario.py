"""Building blocks shared by the engine tests: events at offsets, feeding a model."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from stream_scorer.engine import ContactState, Effects, apply
from stream_scorer.events import Event
from stream_scorer.model import ScoringModel


def event_at(
    t0: datetime, eid: str, type_: str, at: int = 0, contact: str = "c1", **props: Any
) -> Event:
    """An event ``at`` milliseconds after ``t0``."""
    return Event(
        event_id=eid,
        contact_id=contact,
        type=type_,
        occurred_at=t0 + timedelta(milliseconds=at),
        properties=props,
    )


def feed(
    model: ScoringModel, events: list[Event], state: ContactState | None = None
) -> tuple[ContactState, list[Effects]]:
    """Apply events in order with the pure API; the final state and each event's effects."""
    current = state if state is not None else ContactState()
    out = []
    for event in events:
        current, effects = apply(current, event, model)
        out.append(effects)
    return current, out
