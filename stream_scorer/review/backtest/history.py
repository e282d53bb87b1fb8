"""Reading a history: the valid events of an event file in event-time order.

JSON Lines are read by :func:`stream_scorer.events.native_decoder`, which
trusts a native line that passes the wire format's rules; any other line is
read again by :func:`stream_scorer.events.decode_event`, which names the
exact problem (and reads Segment and CloudEvents lines). The fast decoder
also leaves to the full one a line whose time has more than 6 digits of a
second (msgspec would round them where the worker drops them), so a backtest
sees each event at the millisecond the worker would. With ``--jobs``, each process
reads the whole file but decodes only its share of contacts.
"""

from __future__ import annotations

import gc
import zlib
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from stream_scorer.errors import InvalidEvent
from stream_scorer.event_files import FILE_LIMITS, read_events
from stream_scorer.events import Event, check_event, decode_event, native_decoder
from stream_scorer.scoring import ScoringModel
from stream_scorer.times import epoch_ms

#: How many bad lines a backtest keeps as examples.
EXAMPLES = 10

#: A history has no clock to be ahead of: :func:`check_event` only checks the type.
_NO_CLOCK = datetime.max.replace(tzinfo=UTC)

_KEY = b'"contact_id"'


@dataclass
class History:
    """The valid events of a file in event-time order, and what was rejected."""

    events: list[Event]
    times: list[int]
    rejected: Counter[str] = field(default_factory=Counter)
    examples: list[tuple[int, str]] = field(default_factory=list)

    def reject(self, number: int, error: InvalidEvent) -> None:
        self.rejected[error.reason] += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append((number, f"line {number}: {error}"))


def _route(line: bytes) -> bytes | None:
    """The raw contact id of a native line, found without decoding it, to share lines.

    None when only decoding can tell: no such key, an escape, the key twice
    (once inside properties), or other spacing than ``json.dumps`` writes.
    """
    at = line.find(_KEY)
    if at < 0 or b'"specversion"' in line or b'"messageId"' in line:
        return None  # CloudEvents and Segment calls name the contact elsewhere
    start = at + 12
    if line.startswith(b':"', start):
        start += 2
    elif line.startswith(b': "', start):
        start += 3
    else:
        return None
    end = line.find(b'"', start)
    if end <= start or line.find(b"\\", start, end) >= 0 or line.find(_KEY, end) >= 0:
        return None
    return line[start:end]


def _share_of(contact: bytes, shares: int) -> int:
    return zlib.crc32(contact) % shares


def _fast_lines(path: Path, progress: Callable[[int], None] | None) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if progress is not None and number % 4096 == 0:
                progress(handle.tell())
            yield number, line
    if progress is not None:
        progress(path.stat().st_size)


def _unscored(event: Event, known: Collection[str]) -> InvalidEvent | None:
    """The ``unknown_type`` error the live worker dead-letters the event with, if any."""
    try:
        check_event(event, known, _NO_CLOCK)
    except InvalidEvent as exc:
        return exc
    return None


def read_history(
    path: Path,
    model: ScoringModel,
    progress: Callable[[int], None] | None = None,
    share: tuple[int, int] | None = None,
) -> History:
    """Every valid event of a JSON Lines or CSV file, sorted by event time (stably).

    Events of types no rule scores are rejected as ``unknown_type``, as the
    live worker dead-letters them by default. ``progress`` is given the bytes
    read so far. With ``share=(i, n)`` (JSON Lines only), only the events of
    contacts in share ``i`` of ``n`` are kept, and only lines of that share are
    decoded: ``n`` processes each read the file and split the work.

    The cyclic garbage collector is paused meanwhile, as in a replay: events
    make no cycles, but collections that walk millions of them took a third
    of the time.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _read(path, model, progress, share)
    finally:
        if collecting:
            gc.enable()


def _read(
    path: Path,
    model: ScoringModel,
    progress: Callable[[int], None] | None,
    share: tuple[int, int] | None,
) -> History:
    known = model.event_types
    events: list[Event] = []
    times: list[int] = []
    history = History(events, times)
    if path.suffix.lower() == ".csv":
        for number, item in read_events(path):
            if isinstance(item, InvalidEvent):
                history.reject(number, item)
            elif (refusal := _unscored(item, known)) is not None:
                history.reject(number, refusal)
            else:
                events.append(item)
                times.append(epoch_ms(item.occurred_at))
        if progress is not None:
            progress(path.stat().st_size)
    else:
        decode_native = native_decoder(known, FILE_LIMITS)
        mine, shares = share if share is not None else (0, 1)
        for number, raw in _fast_lines(path, progress):
            if not raw.strip():
                continue
            line = raw.rstrip(b"\r\n")
            routed = _route(line) if shares > 1 else b""
            if routed and _share_of(routed, shares) != mine:
                continue
            event = decode_native(line)
            trusted = event is not None
            if event is None:
                try:
                    event = decode_event(line, FILE_LIMITS)
                except InvalidEvent as exc:
                    if routed is not None or number % shares == mine:  # counted once
                        history.reject(number, exc)
                    continue
            if routed is None and _share_of(event.contact_id.encode(), shares) != mine:
                continue  # another process's contact
            if not trusted and (refusal := _unscored(event, known)) is not None:
                history.reject(number, refusal)
                continue
            events.append(event)
            times.append(epoch_ms(event.occurred_at))
    if any(times[i] > times[i + 1] for i in range(len(times) - 1)):
        order = sorted(range(len(times)), key=times.__getitem__)
        history.events = [events[i] for i in order]
        history.times = [times[i] for i in order]
    return history
