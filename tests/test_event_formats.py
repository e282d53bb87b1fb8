"""Segment calls and CloudEvents are read as native events."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from stream_scorer.errors import InvalidEvent
from stream_scorer.events import (
    CONTACT_UPDATED,
    SEGMENT_TRACK_CONTACT_UPDATED,
    decode_event,
    snake_case,
    validate,
)
from stream_scorer.scoring import load_model, replay

WHEN = "2026-11-28T12:00:00Z"
AT = datetime(2026, 11, 28, 12, tzinfo=UTC)
MODEL = load_model("config/scoring.yaml")


def _decode(document: dict[str, object]) -> object:
    return decode_event(json.dumps(document).encode())


def test_segment_track_becomes_an_event_of_its_snake_cased_name() -> None:
    event = _decode(
        {
            "type": "track",
            "event": "Email Opened",
            "userId": "c-42",
            "messageId": "m-1",
            "timestamp": WHEN,
            "properties": {"email_id": "welcome"},
        }
    )
    assert event.model_dump() == {  # type: ignore[attr-defined]
        "event_id": "m-1",
        "contact_id": "c-42",
        "type": "email_opened",
        "occurred_at": AT,
        "properties": {"email_id": "welcome"},
    }


def test_segment_identify_sets_attributes_and_page_is_a_page_visit() -> None:
    identify = _decode(
        {
            "type": "identify",
            "anonymousId": "anon-7",
            "messageId": "m-2",
            "timestamp": WHEN,
            "traits": {"job_title": "VP Sales"},
        }
    )
    assert identify.type == CONTACT_UPDATED  # type: ignore[attr-defined]
    assert identify.contact_id == "anon-7"  # type: ignore[attr-defined]
    assert identify.properties == {"job_title": "VP Sales"}  # type: ignore[attr-defined]
    page = _decode(
        {
            "type": "page",
            "name": "Pricing",
            "userId": "c-1",
            "messageId": "m-3",
            "timestamp": WHEN,
            "properties": {"url": "https://a.io/pricing"},
        }
    )
    assert page.type == "page_visit"  # type: ignore[attr-defined]
    assert page.properties == {"url": "https://a.io/pricing", "name": "Pricing"}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "name", ["Contact Updated", "contact_updated", "ContactUpdated", "CONTACT-UPDATED"]
)
def test_only_identify_updates_attributes_never_a_segment_track(name: str) -> None:
    """A track named like the attribute update is an ordinary event; its properties stay data."""
    call = {
        "type": "track",
        "event": name,
        "userId": "c-42",
        "messageId": "m-9",
        "timestamp": WHEN,
        "properties": {"job_title": "CEO", "country": "US"},
    }
    for event in (_decode(call), validate(call)):  # from Kafka bytes, and as POST /events reads
        assert event.type == "track_contact_updated" == SEGMENT_TRACK_CONTACT_UPDATED  # type: ignore[attr-defined]
        assert event.properties == {"job_title": "CEO", "country": "US"}  # type: ignore[attr-defined]
        states, _ = replay([event], MODEL)  # type: ignore[list-item]
        assert states["c-42"].attributes == {}, "a track set attributes"


def test_native_and_cloudevent_attribute_updates_are_unchanged() -> None:
    """Only the Segment mapping moved: the native type still sets attributes, as before."""
    native = {
        "event_id": "e-1",
        "contact_id": "c-1",
        "type": CONTACT_UPDATED,
        "occurred_at": WHEN,
        "properties": {"country": "US"},
    }
    cloudevent = {
        "specversion": "1.0",
        "id": "e-2",
        "source": "/crm",
        "type": CONTACT_UPDATED,
        "subject": "c-1",
        "time": WHEN,
        "data": {"country": "US"},
    }
    for document in (native, cloudevent):
        event = validate(document)
        assert event.type == CONTACT_UPDATED
        states, _ = replay([event], MODEL)
        assert states["c-1"].attributes == {"country": "US"}


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        ({"type": "group", "userId": "c", "messageId": "m", "timestamp": WHEN}, "invalid_field"),
        ({"type": "track", "userId": "c", "messageId": "m", "timestamp": WHEN}, "missing_field"),
        ({"type": "track", "event": "X", "messageId": "m", "timestamp": WHEN}, "missing_field"),
    ],
)
def test_segment_calls_that_cannot_be_scored(call: dict[str, object], reason: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        _decode(call)
    assert info.value.reason == reason


def test_snake_case() -> None:
    assert snake_case("Email Opened") == "email_opened"
    assert snake_case("webinarAttended") == "webinar_attended"
    assert snake_case("Demo-Request!") == "demo_request"


def test_structured_cloudevent() -> None:
    event = _decode(
        {
            "specversion": "1.0",
            "id": "ce-1",
            "source": "/crm",
            "type": "demo_request",
            "time": WHEN,
            "subject": "c-9",
            "data": {"plan": "pro"},
        }
    )
    assert (event.event_id, event.contact_id, event.type) == ("ce-1", "c-9", "demo_request")  # type: ignore[attr-defined]
    assert event.properties == {"plan": "pro"}  # type: ignore[attr-defined]
    no_subject = validate(
        {
            "specversion": "1.0",
            "id": "ce-2",
            "source": "/crm",
            "type": "email_open",
            "time": WHEN,
            "data": {"contact_id": "c-3", "email_id": "e"},
        }
    )
    assert no_subject.contact_id == "c-3"
    assert no_subject.properties == {"email_id": "e"}


def test_binary_cloudevent_on_kafka_headers() -> None:
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"ce-3"),
        ("ce_source", b"/web"),
        ("ce_type", b"page_visit"),
        ("ce_time", WHEN.encode()),
        ("ce_subject", b"c-5"),
        ("content-type", b"application/json"),
    ]
    event = decode_event(b'{"url": "/pricing"}', headers=headers)
    assert (event.event_id, event.contact_id, event.type) == ("ce-3", "c-5", "page_visit")
    assert event.properties == {"url": "/pricing"}
    assert event.occurred_at == AT
    with pytest.raises(InvalidEvent) as info:
        decode_event(b'{"url": ', headers=headers)
    assert info.value.reason == "malformed_json"
    with pytest.raises(InvalidEvent) as missing:
        decode_event(b"{}", headers=[h for h in headers if h[0] != "ce_subject"])
    assert missing.value.reason == "missing_field"
