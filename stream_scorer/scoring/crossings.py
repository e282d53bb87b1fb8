"""Crossings and their alerts: a tier crossed, its alert's payload and content-derived id.

An alert's id is a hash of everything the alert says: the crossing (contact,
score, tier, direction, cause, values, time, reasons) and the model's name
and version. A retry or a replay makes the same crossing, so the same id,
which consumers dedupe on; and one id is never published with two contents,
whatever the order events were applied in, the number of workers or the
replays. The payload is built only from the crossing and the model, so the
same crossing always serialises to the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from stream_scorer.alerts import Alert, AlertReason
from stream_scorer.scoring.model import ScoringModel
from stream_scorer.scoring.state import Award
from stream_scorer.times import from_epoch_ms


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
    def event_id(self) -> str | None:
        return None if self.cause.startswith("expired@") else self.cause


def alert_id(crossing: Crossing, model: ScoringModel) -> str:
    """Deterministic id of the alert ``crossing`` makes: a hash of all the alert says."""
    parts = [
        crossing.contact_id,
        crossing.score,
        crossing.tier,
        crossing.direction,
        crossing.cause,
        str(crossing.value),
        str(crossing.previous),
        str(crossing.threshold),
        str(crossing.at),
        str(crossing.display),
        model.name,
        str(model.version),
    ]
    for award in crossing.reasons:
        expires = "" if award.expires_at is None else str(award.expires_at)
        parts.extend((award.rule, str(award.points), award.event_id, str(award.at), expires))
    # A JSON list: unambiguous whatever the names hold.
    return hashlib.sha1(json.dumps(parts).encode()).hexdigest()  # an id, not a secret


def alert_payload(crossing: Crossing, model: ScoringModel) -> bytes:
    """The JSON published to the alerts topic for one crossing."""
    alert = Alert(
        alert_id=alert_id(crossing, model),
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
