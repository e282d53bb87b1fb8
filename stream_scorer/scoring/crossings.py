"""Crossings and their alerts: a tier crossed, its deterministic id, its published payload.

An alert id is a hash of what makes a crossing unique (contact, score, tier,
direction and its cause: the event id, or ``expired@<ms>`` for a fall caused
by expiring points), so a replay or a retry produces the same id and
consumers dedupe on it. The payload is built only from the crossing, so the
same crossing always serialises to the same bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from stream_scorer.alerts import Alert, AlertReason
from stream_scorer.scoring.model import ScoringModel
from stream_scorer.scoring.state import Award
from stream_scorer.times import from_epoch_ms

#: ASCII unit separator: cannot appear in ids that pass validation.
SEPARATOR = "\x1f"


def alert_id(contact_id: str, score: str, tier: str, direction: str, cause: str) -> str:
    """Deterministic id of one crossing."""
    raw = SEPARATOR.join((contact_id, score, tier, direction, cause))
    return hashlib.sha1(raw.encode()).hexdigest()  # an id, not a secret


@dataclass(frozen=True, slots=True, init=False)
class Crossing:
    """A tier crossed up or down; ``cause`` is an event id or ``expired@<ms>``."""

    contact_id: str
    score: str
    tier: str
    direction: str
    value: int
    previous: int
    threshold: int
    cause: str
    at: int
    display: int
    reasons: tuple[Award, ...]

    def __init__(
        self,
        contact_id: str,
        score: str,
        tier: str,
        direction: str,
        value: int,
        previous: int,
        threshold: int,
        cause: str,
        at: int,
        display: int,
        reasons: tuple[Award, ...] = (),
    ) -> None:
        # Written out: compiled, the generated one ran as interpreted Python.
        put = object.__setattr__  # frozen: the class's own __setattr__ refuses
        put(self, "contact_id", contact_id)
        put(self, "score", score)
        put(self, "tier", tier)
        put(self, "direction", direction)
        put(self, "value", value)
        put(self, "previous", previous)
        put(self, "threshold", threshold)
        put(self, "cause", cause)
        put(self, "at", at)
        put(self, "display", display)
        put(self, "reasons", reasons)

    @property
    def alert_id(self) -> str:
        return alert_id(self.contact_id, self.score, self.tier, self.direction, self.cause)

    @property
    def event_id(self) -> str | None:
        return None if self.cause.startswith("expired@") else self.cause


def alert_payload(crossing: Crossing, model: ScoringModel) -> bytes:
    """The JSON published to the alerts topic for one crossing."""
    alert = Alert(
        alert_id=crossing.alert_id,
        contact_id=crossing.contact_id,
        score=crossing.score,
        tier=crossing.tier,
        direction="up" if crossing.direction == "up" else "down",
        value=crossing.value,
        previous=crossing.previous,
        threshold=crossing.threshold,
        display=crossing.display,
        trigger="expiry" if crossing.event_id is None else "event",
        event_id=crossing.event_id,
        occurred_at=from_epoch_ms(crossing.at),
        model=model.name,
        model_version=model.version,
        reasons=[
            AlertReason(
                rule=a.rule,
                points=a.points,
                event_id=a.event_id,
                awarded_at=from_epoch_ms(a.at),
                expires_at=None if a.expires_at is None else from_epoch_ms(a.expires_at),
            )
            for a in crossing.reasons
        ],
    )
    return alert.model_dump_json().encode()
