"""Wire formats: the event producers send and the alert sales tools receive.

Events arrive as raw bytes and are validated here, not by Faust, so that a
bad event becomes an :class:`~stream_scorer.errors.InvalidEvent` with a
reason code for the dead-letter topic instead of a crashed agent.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from stream_scorer.errors import InvalidEvent

#: A contact id becomes part of a Redis key inside a ``{hash tag}``: braces
#: would move the tag and split a contact's keys across cluster slots.
CONTACT_ID_PATTERN = r"^[^{}\x00-\x1f\x7f]{1,200}$"
EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_.-]{0,63}$"
_RFC3339_START = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")

#: The event type that sets (or, with null, removes) contact attributes.
CONTACT_UPDATED = "contact_updated"


class Event(BaseModel):
    """One engagement event or attribute update, keyed by ``contact_id`` on the topic."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: str = Field(min_length=1, max_length=200)
    contact_id: str = Field(pattern=CONTACT_ID_PATTERN)
    type: str = Field(pattern=EVENT_TYPE_PATTERN)
    occurred_at: AwareDatetime
    properties: dict[str, Any] = Field(default_factory=dict)

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _rfc3339_only(cls, value: Any) -> Any:
        # pydantic also reads "1714557600" as a Unix time; producers must say what they mean.
        if isinstance(value, datetime):
            return value
        if not isinstance(value, str) or not _RFC3339_START.match(value):
            raise ValueError("must be an RFC 3339 time such as 2026-11-28T12:00:00Z")
        return value


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

    alert_id: str = Field(description="Deterministic id: dedupe on it.")
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


def decode_event(raw: bytes | None, max_bytes: int = 65_536) -> Event:
    """Validate one message value; raise :class:`InvalidEvent` with a reason code."""
    if raw is None:
        raise InvalidEvent("empty", "the message has no value")
    if len(raw) > max_bytes:
        raise InvalidEvent("oversized", f"{len(raw)} bytes is over the limit of {max_bytes}")
    try:
        return Event.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if any(e["type"] in {"json_invalid", "json_type"} for e in errors):
            raise InvalidEvent("malformed_json", errors[0]["msg"]) from None
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in errors
        )
        if all(e["type"] == "missing" for e in errors):
            raise InvalidEvent("missing_field", detail) from None
        raise InvalidEvent("invalid_field", detail) from None


def check_event(event: Event, known_types: Collection[str] | None, not_after: datetime) -> None:
    """Checks that need the model or a clock; raise :class:`InvalidEvent` with a reason code."""
    if known_types is not None and event.type not in known_types:
        raise InvalidEvent("unknown_type", f"no rule of the model scores {event.type!r}")
    if event.occurred_at > not_after:
        raise InvalidEvent(
            "future_timestamp",
            f"occurred_at {event.occurred_at.isoformat()} is after {not_after.isoformat()}",
        )


def encode_event(event: Event) -> bytes:
    return event.model_dump_json().encode()


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)


def epoch_ms(ts: datetime) -> int:
    """Milliseconds since the Unix epoch: the engine's integer clock."""
    return (ts - EPOCH) // ONE_MS


def from_epoch_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def utc(ts: datetime) -> datetime:
    """The same instant in UTC (events may carry any offset)."""
    return ts.astimezone(UTC)
