"""Conversion files as CRMs export them: CSV (Excel's BOM too) or JSON Lines."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from stream_scorer.errors import ConversionsError
from stream_scorer.review.conversions import read_conversions
from stream_scorer.times import epoch_ms

MAY = epoch_ms(datetime(2026, 5, 14, 9, 30, tzinfo=UTC))


def test_csv_with_a_bom_spaces_blanks_and_repeats(tmp_path: Path) -> None:
    path = tmp_path / "conversions.csv"
    path.write_text(
        "\ufeffcontact_id,converted_at,owner\n"
        " c-1 , 2026-05-14T09:30:00Z ,ann\n"
        "c-2,,bob\n"  # a contact that did not convert
        "c-1,2026-06-01T00:00:00+02:00,ann\n",  # later: the earliest counts
        encoding="utf-8",
    )
    assert read_conversions(path) == {"c-1": MAY}


def test_json_lines_with_nulls(tmp_path: Path) -> None:
    path = tmp_path / "conversions.jsonl"
    path.write_text(
        '{"contact_id": "c-1", "converted_at": "2026-05-14T11:30:00+02:00"}\n'
        "\n"
        '{"contact_id": "c-2", "converted_at": null}\n'
    )
    assert read_conversions(path) == {"c-1": MAY}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("c.csv", "id,when\nc-1,2026-05-14T09:30:00Z\n", "no column contact_id, converted_at"),
        ("c.csv", "contact_id,converted_at\nc-1,soon\n", "c.csv:2: converted_at: 'soon'"),
        ("c.csv", "contact_id,converted_at\nc-1,2026-05-14T09:30:00\n", "has no UTC offset"),
        ("c.jsonl", '{"contact_id": 42, "converted_at": "2026-05-14T09:30:00Z"}\n',
         "c.jsonl:1: contact_id must be a string, not 42"),
        ("c.jsonl", '{"converted_at": "2026-05-14T09:30:00Z"}\n',
         "c.jsonl:1: contact_id is missing"),
        ("c.txt", "contact_id,converted_at\n", "a CSV file's name must end in .csv"),
        ("c.jsonl", "[1, 2]\n", "expected an object with contact_id and converted_at"),
    ],
)  # fmt: skip
def test_bad_files_name_the_line(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConversionsError) as info:
        read_conversions(path)
    assert message in str(info.value)
