"""Event files and validation for producers: no broker needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_scorer.errors import InvalidEvent
from stream_scorer.event_files import read_events
from stream_scorer.events import Event, validate

GOOD = {
    "event_id": "e-1",
    "contact_id": "c-1",
    "type": "page_visit",
    "occurred_at": "2026-11-28T12:00:00Z",
    "properties": {"url": "/pricing"},
}


def test_validate_accepts_a_model_a_mapping_and_json() -> None:
    event = Event.model_validate(GOOD)
    assert validate(event) is event
    assert validate(GOOD) == event
    assert validate(event.model_dump_json()) == event
    assert validate(event.model_dump_json().encode()) == event


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({k: v for k, v in GOOD.items() if k != "occurred_at"}, "missing_field"),
        ({**GOOD, "occurred_at": "yesterday"}, "invalid_field"),
        ({**GOOD, "contact_id": "{c-1}"}, "invalid_field"),
        ('{"event_id": ', "malformed_json"),
    ],
)
def test_validate_names_the_reason(bad: object, reason: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        validate(bad)  # type: ignore[arg-type]
    assert info.value.reason == reason


def test_csv_columns_become_properties(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "event_id,contact_id,type,occurred_at,properties.url,form_id,properties\n"
        'e-1,c-1,page_visit,2026-11-28T12:00:00Z,/pricing,,"{""utm"": {""source"": ""ads""}}"\n'
        "e-2,c-2,form_submit,2026-11-28T12:01:00Z,,newsletter,\n"
        'e-3,c-3,page_visit,2026-11-28T12:02:00Z,/x,,"[1]"\n'
        "e-4,,page_visit,2026-11-28T12:03:00Z,/x,,\n"
    )
    rows = list(read_events(path))
    assert [n for n, _ in rows] == [2, 3, 4, 5]
    first, second = rows[0][1], rows[1][1]
    assert isinstance(first, Event)
    assert first.properties == {"url": "/pricing", "utm": {"source": "ads"}}
    assert isinstance(second, Event)
    assert second.properties == {"form_id": "newsletter"}
    assert isinstance(rows[2][1], InvalidEvent)
    assert rows[2][1].reason == "invalid_field"
    assert isinstance(rows[3][1], InvalidEvent)
    assert rows[3][1].reason == "missing_field"


def test_json_lines_keep_line_numbers_and_skip_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(Event.model_validate(GOOD).model_dump_json() + "\n\n{oops\n")
    rows = list(read_events(path))
    assert [n for n, _ in rows] == [1, 3]
    assert isinstance(rows[0][1], Event)
    assert isinstance(rows[1][1], InvalidEvent)
    assert rows[1][1].reason == "malformed_json"
