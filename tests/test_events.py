"""Unit tests for stream_scorer.events: decoding events and every InvalidEvent reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stream_scorer.errors import InvalidEvent, ScorerError
from stream_scorer.events import Event, Limits, decode_event, encode_event

GOOD: dict[str, Any] = {
    "event_id": "ev-1",
    "contact_id": "contact-42",
    "type": "email_open",
    "occurred_at": "2024-05-01T12:00:00+02:00",
    "properties": {"campaign": "spring"},
}


def raw(**changes: Any) -> bytes:
    """GOOD with fields changed; a value of ``...`` drops the field."""
    data = {**GOOD, **changes}
    return json.dumps({k: v for k, v in data.items() if v is not ...}).encode()


def reason_of(payload: bytes | None, max_bytes: int = 65_536) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as info:
        decode_event(payload, Limits(max_bytes=max_bytes))
    return info.value


def test_decode_good_event() -> None:
    event = decode_event(raw())
    assert event.event_id == "ev-1"
    assert event.contact_id == "contact-42"
    assert event.type == "email_open"
    assert event.properties == {"campaign": "spring"}


def test_offset_is_kept_as_the_same_instant() -> None:
    event = decode_event(raw())
    assert event.occurred_at.utcoffset() == timedelta(hours=2)
    assert event.occurred_at == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    converted = event.occurred_at.astimezone(UTC)
    assert converted.utcoffset() == timedelta(0)
    assert (converted.year, converted.month, converted.day, converted.hour) == (2024, 5, 1, 10)


def test_different_offsets_same_instant_are_equal() -> None:
    a = decode_event(raw(occurred_at="2024-05-01T10:00:00Z"))
    b = decode_event(raw(occurred_at="2024-05-01T05:30:00-04:30"))
    c = decode_event(raw(occurred_at="2024-05-01T19:00:00+09:00"))
    assert a.occurred_at == b.occurred_at == c.occurred_at
    assert (
        a.occurred_at.astimezone(UTC)
        == b.occurred_at.astimezone(UTC)
        == c.occurred_at.astimezone(UTC)
    )


def test_properties_default_to_empty() -> None:
    event = decode_event(raw(properties=...))
    assert event.properties == {}


def test_unknown_top_level_keys_are_ignored() -> None:
    event = decode_event(raw(source="web", nested={"a": 1}, priority=3))
    assert event == decode_event(raw())
    assert not hasattr(event, "source")
    assert "source" not in event.model_dump()


def test_event_is_frozen() -> None:
    event = decode_event(raw())
    with pytest.raises(ValueError, match="frozen"):
        event.type = "other"  # type: ignore[misc]


def test_encode_decode_round_trip() -> None:
    event = decode_event(raw())
    again = decode_event(encode_event(event))
    assert again == event
    assert isinstance(again, Event)


def test_size_limit_is_inclusive() -> None:
    payload = raw()
    assert decode_event(payload, Limits(max_bytes=len(payload))).event_id == "ev-1"
    err = reason_of(payload, max_bytes=len(payload) - 1)
    assert err.reason == "oversized"
    assert str(len(payload)) in err.detail


def test_none_is_empty() -> None:
    err = reason_of(None)
    assert err.reason == "empty"
    assert isinstance(err, ScorerError)
    assert str(err).startswith("empty: ")


def test_oversized_checked_before_parsing() -> None:
    err = reason_of(b"{" * 300, max_bytes=256)
    assert err.reason == "oversized"
    assert "300" in err.detail
    assert "256" in err.detail


@pytest.mark.parametrize("payload", [b"{not json", b"", b'{"event_id": "x",', b"\xff\xfe"])
def test_malformed_json(payload: bytes) -> None:
    assert reason_of(payload).reason == "malformed_json"


@pytest.mark.parametrize("field", ["event_id", "contact_id", "type", "occurred_at"])
def test_missing_field(field: str) -> None:
    err = reason_of(raw(**{field: ...}))
    assert err.reason == "missing_field"
    assert field in err.detail


def test_all_fields_missing() -> None:
    err = reason_of(b"{}")
    assert err.reason == "missing_field"
    for field in ("event_id", "contact_id", "type", "occurred_at"):
        assert field in err.detail


def test_missing_and_invalid_together_is_invalid_field() -> None:
    err = reason_of(raw(event_id=..., type="Email Open"))
    assert err.reason == "invalid_field"
    assert "event_id" in err.detail
    assert "type" in err.detail


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"event_id": 123}, "event_id"),
        ({"contact_id": ["c1"]}, "contact_id"),
        ({"properties": [1, 2]}, "properties"),
        ({"event_id": ""}, "event_id"),
        ({"occurred_at": "2024-05-01T10:00:00"}, "occurred_at"),  # naive
        ({"occurred_at": 1714557600}, "occurred_at"),  # numeric
        ({"occurred_at": 1714557600.5}, "occurred_at"),  # numeric
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"contact_id": "{c1}"}, "contact_id"),
        ({"contact_id": "a{b"}, "contact_id"),
        ({"contact_id": "a}b"}, "contact_id"),
        ({"contact_id": ""}, "contact_id"),
        ({"contact_id": "x" * 201}, "contact_id"),
        ({"contact_id": "a\nb"}, "contact_id"),
        ({"contact_id": "a\x1fb"}, "contact_id"),
        ({"type": "Email Open"}, "type"),
        ({"type": "email open"}, "type"),
        ({"type": "1email"}, "type"),
        ({"type": ""}, "type"),
    ],
)
def test_invalid_field(changes: dict[str, Any], field: str) -> None:
    err = reason_of(raw(**changes))
    assert err.reason == "invalid_field"
    assert err.detail.startswith(f"{field}: ")


def test_contact_id_at_max_length_accepted() -> None:
    assert decode_event(raw(contact_id="x" * 200)).contact_id == "x" * 200


def test_non_object_json_is_rejected() -> None:
    err = reason_of(b"[1, 2]")
    assert err.reason == "invalid_field"
    assert "(root)" in err.detail


def test_numeric_string_timestamp_is_invalid() -> None:
    assert reason_of(raw(occurred_at="1714557600")).reason == "invalid_field"
