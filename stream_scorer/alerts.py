"""The alert wire format: what sales tools receive on the alerts topic.

An alert is one threshold crossing. Its ``alert_id`` is a hash of
everything else the alert says (:mod:`stream_scorer.scoring.crossings`), so
a replay or a retry publishes the same id, consumers dedupe on it, and an
id never comes with two contents.
"""

from __future__ import annotations

from datetime import UTC
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

__all__ = ["Alert", "AlertReason", "format_alert"]


class AlertReason(BaseModel):
    """One live award behind a crossing (the largest few are listed)."""

    model_config = ConfigDict(frozen=True)

    rule: str
    points: int
    event_id: str
    awarded_at: AwareDatetime
    expires_at: AwareDatetime | None = None


class Alert(BaseModel):
    """A threshold crossing. ``alert_id`` is the same for the same crossing on every replay."""

    model_config = ConfigDict(frozen=True)

    alert_id: str = Field(description="A hash of everything else the alert says: dedupe on it.")
    contact_id: str
    score: str = Field(description="The named score that crossed.")
    tier: str = Field(description="The threshold's name, e.g. mql.")
    direction: Literal["up", "down"]
    value: int = Field(description="The score after the crossing.")
    previous: int = Field(description="The score before the event or expiry that crossed.")
    threshold: int = Field(description="The tier's 'at' level.")
    display: int = Field(description="The score with the class digit, e.g. 2089.")
    trigger: Literal["event", "expiry"]
    event_id: str | None = Field(description="The event that caused it; null for expiry.")
    occurred_at: AwareDatetime = Field(description="Event time of the cause.")
    model: str
    model_version: int
    reasons: list[AlertReason] = Field(default_factory=list)


def format_alert(alert: Alert) -> str:
    """One terminal line per alert, as ``alerts tail`` and the demo print it."""
    arrow = "▲" if alert.direction == "up" else "▼"
    word = "sales-ready" if alert.direction == "up" else "cooled off "
    when = alert.occurred_at.astimezone(UTC).strftime("%H:%M:%S")
    shown = f"{alert.value}" if alert.display == alert.value else f"{alert.display}"
    why = ", ".join(f"{r.rule} {r.points:+d}" for r in alert.reasons)
    cause = "points expired" if alert.trigger == "expiry" else f"top: {why}"
    return (
        f"{when}  {arrow} {alert.tier.upper():<4} {word}  {alert.contact_id:<8} "
        f"{alert.score} {shown} (was {alert.previous}, line {alert.threshold})  {cause}"
    )
