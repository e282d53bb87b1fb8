"""Building blocks shared by the engine tests: events at offsets, feeding a model."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from stream_scorer.events import Event
from stream_scorer.scoring import ContactState, Effects, ScoringModel, apply


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


ATTRIBUTES: dict[str, list[object]] = {
    "country": ["US", "DE", "GB", "BR", "IN"],
    "job_title": ["VP Sales", "Marketing Manager", "Engineer", "Head of Growth", "Student"],
    "seniority": ["executive", "manager", "individual"],
    "company_size": [10, 120, 800, 5000],
    "industry": ["saas", "retail", "software"],
}
URLS = ["https://acme.io/pricing", "https://acme.io/blog/a", "https://acme.io/careers", "/"]


def make_stream(model: ScoringModel, contacts: int, events: int, seed: int) -> list[Event]:
    """A realistic stream: attribute updates, behaviour over weeks, retries (duplicates)."""
    rng = random.Random(seed)
    types = [*sorted(model.by_type), "page_scroll"]
    start = datetime(2026, 9, 1, tzinfo=UTC)
    out: list[Event] = []
    for i in range(events):
        if out and rng.random() < 0.03:
            out.append(rng.choice(out))  # a producer retry: same event id again
            continue
        contact = f"c-{rng.randrange(contacts):03d}"
        # Spread over 60 days, ending well before today: times are history, not future.
        when = start + timedelta(seconds=i * 60 * 86_400 // events + rng.randrange(3600))
        if rng.random() < 0.15:
            props: dict[str, object] = {
                k: rng.choice(v) for k, v in ATTRIBUTES.items() if rng.random() < 0.6
            }
            if rng.random() < 0.1:
                props["country"] = None
            kind = "contact_updated"
        else:
            kind = rng.choice(types)
            props = {
                "url": rng.choice(URLS),
                "form_id": rng.choice(["newsletter", "x"]),
                "kind": rng.choice(["hard", "soft"]),
            }
        out.append(
            Event(
                event_id=f"e-{seed}-{i}",
                contact_id=contact,
                type=kind,
                occurred_at=when,
                properties=props,
            )
        )
    return out
