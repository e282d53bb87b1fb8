"""Files of events: JSON Lines (one wire event per line) or CSV, read with line numbers.

``stream-scorer produce`` publishes them and backtests replay them; a bad
line comes back as an :class:`~stream_scorer.errors.InvalidEvent` with the
same reason codes as the dead-letter topic, next to its line number.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from stream_scorer.errors import InvalidEvent
from stream_scorer.events import DEFAULT_LIMITS, Event, decode_event, validate

__all__ = ["CSV_FIELDS", "FILE_LIMITS", "read_events"]

#: A file's lines have no broker's size limit; every other limit is the worker's,
#: so a backtest refuses what the live path would.
FILE_LIMITS = replace(DEFAULT_LIMITS, max_bytes=1 << 30)

#: Columns of an event CSV that are not properties.
CSV_FIELDS = ("event_id", "contact_id", "type", "occurred_at")


def read_events(path: Path) -> Iterator[tuple[int, Event | InvalidEvent]]:
    """Events of a JSON Lines or CSV file (by extension), with line numbers; bad ones as errors.

    In a CSV, the columns other than ``event_id, contact_id, type, occurred_at``
    are properties (a ``properties.`` prefix is dropped; empty cells are left
    out), and a ``properties`` column may hold a JSON object.
    """
    if path.suffix.lower() == ".csv":
        yield from _read_csv(path)
        return
    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield number, decode_event(line.rstrip(b"\r\n"), FILE_LIMITS)
            except InvalidEvent as exc:
                yield number, exc


def _read_csv(path: Path) -> Iterator[tuple[int, Event | InvalidEvent]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            number = reader.line_num
            record: dict[str, Any] = {k: row.get(k) for k in CSV_FIELDS if row.get(k)}
            properties: dict[str, Any] = {}
            try:
                if row.get("properties"):
                    loaded = json.loads(row["properties"] or "{}")
                    if not isinstance(loaded, dict):
                        raise InvalidEvent("invalid_field", "properties: must be a JSON object")
                    properties.update(loaded)
                for column, value in row.items():
                    if column in CSV_FIELDS or column == "properties" or value in (None, ""):
                        continue
                    properties[column.removeprefix("properties.")] = value
                record["properties"] = properties
                yield number, validate(record)
            except json.JSONDecodeError as exc:
                yield number, InvalidEvent("malformed_json", f"properties: {exc}")
            except InvalidEvent as exc:
                yield number, exc
