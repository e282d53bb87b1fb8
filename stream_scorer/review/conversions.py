"""Conversions: which contacts became customers, and when.

The outcome that backtests, evaluations and tuning measure a model against.
A conversions file is CSV (``contact_id,converted_at`` columns, others
ignored) or JSON Lines (objects with those two keys). ``converted_at`` is an
RFC 3339 time; contacts absent from the file, or with an empty
``converted_at`` (as CRM exports of every contact have), did not convert. A
contact listed twice converted at its earliest time.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stream_scorer.errors import ConversionsError
from stream_scorer.times import parse_time


def _rows(path: Path) -> Iterator[tuple[int, Any]]:
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as handle:  # Excel writes a BOM
            reader = csv.DictReader(handle)
            missing = {"contact_id", "converted_at"} - set(reader.fieldnames or ())
            if missing:
                raise ConversionsError(f"{path}: no column {', '.join(sorted(missing))}")
            for row in reader:
                yield reader.line_num, row
        return
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except ValueError as exc:
                raise ConversionsError(
                    f"{path}:{number}: not JSON Lines ({exc}); a CSV file's name must end in .csv"
                ) from None


def read_conversions(path: Path) -> dict[str, int]:
    """Contact id to conversion time (epoch ms) from a CSV or JSON Lines file."""
    out: dict[str, int] = {}
    for number, row in _rows(path):
        place = f"{path}:{number}"
        if not isinstance(row, dict):
            raise ConversionsError(f"{place}: expected an object with contact_id and converted_at")
        contact = row.get("contact_id")
        if contact is None or contact == "":
            raise ConversionsError(f"{place}: contact_id is missing")
        if not isinstance(contact, str):
            raise ConversionsError(f"{place}: contact_id must be a string, not {contact!r}")
        contact = contact.strip()
        converted = row.get("converted_at")
        if converted is None or (isinstance(converted, str) and not converted.strip()):
            continue  # listed, but not converted
        if isinstance(converted, str):
            converted = converted.strip()
        at = parse_time(converted, f"{place}: converted_at")
        if contact not in out or at < out[contact]:
            out[contact] = at
    return out
