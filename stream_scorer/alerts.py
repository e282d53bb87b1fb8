"""Alerts: their identities and payloads, and reading them back off the topic.

An alert id is a hash of what makes a crossing unique (contact, score, tier,
direction and its cause: the event id, or ``expired@<ms>`` for a fall caused
by expiring points), so a replay or a retry produces the same id and
consumers dedupe on it. The payload is built only from the crossing, so the
same crossing always serialises to the same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer

from stream_scorer.events import Alert, AlertReason, from_epoch_ms
from stream_scorer.settings import Settings

if TYPE_CHECKING:
    from stream_scorer.scoring.engine import Crossing
    from stream_scorer.scoring.model import ScoringModel

#: ASCII unit separator: cannot appear in ids that pass validation.
SEPARATOR = "\x1f"


def alert_id(contact_id: str, score: str, tier: str, direction: str, cause: str) -> str:
    """Deterministic id of one crossing."""
    raw = SEPARATOR.join((contact_id, score, tier, direction, cause))
    return hashlib.sha1(raw.encode()).hexdigest()  # an id, not a secret


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


async def tail_alerts(settings: Settings, from_beginning: bool = True) -> AsyncIterator[Alert]:
    """Follow the alerts topic without a consumer group (no offsets are committed)."""
    consumer = AIOKafkaConsumer(
        settings.alerts_topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        async for record in consumer:
            if record.value is not None:
                yield Alert.model_validate_json(record.value)
    finally:
        await consumer.stop()


def format_alert(alert: Alert) -> str:
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
