"""A producer client: validate events here, publish them keyed by contact.

Keying by ``contact_id`` keeps each contact's events in one partition, in
order, which is what the scorer's per-contact state needs. Validating before
sending turns a bad event into an exception at the producer, where it can be
fixed, instead of a dead letter later::

    from stream_scorer.client import EventProducer

    async with EventProducer("localhost:9092") as producer:
        await producer.send({"event_id": "e-1", "contact_id": "c-42", "type": "demo_request",
                             "occurred_at": "2026-11-28T12:00:00Z"})
"""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer

from stream_scorer.errors import InvalidEvent
from stream_scorer.events import Event, decode_event, validate_mapping
from stream_scorer.settings import Settings

DEFAULT_TOPIC = Settings.model_fields["events_topic"].default


def validate(event: Event | Mapping[str, Any] | bytes | str) -> Event:
    """An :class:`Event` from a model, a mapping or JSON; :class:`InvalidEvent` if it is not one."""
    if isinstance(event, Event):
        return event
    if isinstance(event, bytes | str):
        return decode_event(event.encode() if isinstance(event, str) else event)
    return validate_mapping(event)


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
                yield number, decode_event(line.rstrip(b"\r\n"), max_bytes=1 << 30)
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


class EventProducer:
    """Publishes validated events to the events topic, acks from all in-sync replicas."""

    def __init__(
        self, bootstrap_servers: str, topic: str = DEFAULT_TOPIC, **producer_options: Any
    ) -> None:
        self.topic = topic
        options: dict[str, Any] = {"acks": "all", "enable_idempotence": True, "linger_ms": 5}
        options.update(producer_options)
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, **options)

    async def __aenter__(self) -> EventProducer:
        await self._producer.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._producer.stop()

    async def send(self, event: Event | Mapping[str, Any] | bytes | str) -> None:
        """Validate and publish one event; return when Kafka has acknowledged it."""
        await (await self.enqueue(event))

    async def enqueue(self, event: Event | Mapping[str, Any] | bytes | str) -> asyncio.Future[Any]:
        """Validate and queue one event; the future resolves when Kafka acknowledged it.

        Raises :class:`~stream_scorer.errors.InvalidEvent` (with a reason code)
        before anything is sent.
        """
        valid = validate(event)
        future: asyncio.Future[Any] = await self._producer.send(
            self.topic, valid.model_dump_json().encode(), key=valid.contact_id.encode()
        )
        return future

    async def flush(self) -> None:
        await self._producer.flush()
