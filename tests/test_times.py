"""Every path reads a time as the same millisecond, and writes a millisecond back exactly.

A time with more than 6 digits of a second used to be rounded by the
backtest's fast reader (msgspec) and truncated by the live decoder
(pydantic): ``.9999995Z`` was the next second in a backtest and not in the
worker. The rule (:mod:`stream_scorer.times`): finer digits are dropped,
never rounded, and a time is the millisecond it falls in.
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_scorer.errors import ConversionsError, InvalidEvent
from stream_scorer.events import EARLIEST, LATEST, decode_event
from stream_scorer.review.backtest import read_history
from stream_scorer.scoring import load_model
from stream_scorer.times import (
    EPOCH,
    epoch_ms,
    exceeds_microseconds,
    format_ms,
    format_ms_compact,
    from_epoch_ms,
    isoformat_ms,
    parse_time,
    truncate_fraction,
)

ROOT = Path(__file__).resolve().parents[1]
MODEL = load_model(ROOT / "config" / "scoring.yaml")


def line(at: str, n: int = 0) -> str:
    """A native event line whose ``occurred_at`` is ``at`` as written (JSON escapes kept)."""
    return (
        f'{{"event_id": "e-{n}", "contact_id": "c-{n % 3}", "type": "email_open", '
        f'"occurred_at": "{at}", "properties": {{}}}}'
    )


def live(at: str) -> datetime | None:
    """The worker's reading of the time, or None if it refuses the event."""
    try:
        return decode_event(line(at).encode()).occurred_at
    except InvalidEvent:
        return None


def backtest(times: list[str]) -> dict[str, datetime]:
    """The backtest reader's time of each event it accepts, by event id."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        path.write_text("".join(line(at, n) + "\n" for n, at in enumerate(times)))
        history = read_history(path, MODEL)
    assert history.times == [epoch_ms(e.occurred_at) for e in history.events]
    return {e.event_id: e.occurred_at for e in history.events}


def escaped(text: str, which: list[bool]) -> str:
    """``text`` with some characters written as JSON ``\\uXXXX`` escapes."""
    return "".join(
        f"\\u{ord(c):04x}" if i < len(which) and which[i] else c for i, c in enumerate(text)
    )


@st.composite
def rfc3339_times(draw: st.DrawFn) -> str:
    """Times of the wire format's range with 0 to 40 digits of a second, in any offset."""
    start = (EARLIEST - EPOCH) // timedelta(seconds=1) - 86_400
    end = (LATEST - EPOCH) // timedelta(seconds=1) + 86_400
    seconds = draw(st.integers(start, end))
    digits = draw(st.sampled_from([0, 1, 3, 6, 7, 7, 8, 9, 12, 40]))
    fraction = draw(st.text(alphabet="0123456789", min_size=digits, max_size=digits))
    if digits and draw(st.booleans()):  # nines: rounding would carry into the next second
        fraction = "9" * digits
        if digits > 6 and draw(st.booleans()):
            fraction = fraction[:6] + "5" + fraction[7:]
    offset = draw(st.sampled_from([0, 0, 60, -300, 330, 14 * 60, -(23 * 60 + 59)]))
    when = EPOCH + timedelta(seconds=seconds, minutes=offset)
    zone = (
        draw(st.sampled_from(["Z", "z", "+00:00"]))
        if offset == 0
        else f"{'+' if offset > 0 else '-'}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    )
    text = when.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if digits else "") + zone
    return draw(
        st.just(text)
        | st.lists(st.booleans(), max_size=len(text)).map(lambda which: escaped(text, which))
    )


@settings(max_examples=300, deadline=None)
@given(times=st.lists(rfc3339_times(), min_size=1, max_size=12))
def test_the_backtest_reads_each_time_as_the_live_decoder_does(times: list[str]) -> None:
    read = backtest(times)
    for n, at in enumerate(times):
        worker = live(at)
        assert read.get(f"e-{n}") == worker, at
        if worker is not None:
            plain = json.loads(f'"{at}"')  # the time as the producer meant it
            assert parse_time(plain, "t") == epoch_ms(worker)  # conversions, CLI options


@pytest.mark.parametrize(
    ("at", "ms"),
    [
        ("2026-01-01T00:00:00.1234565Z", 1_767_225_600_123),
        ("2026-01-01T00:00:00.9999995Z", 1_767_225_600_999),  # not the next second
        ("2026-01-01T23:59:59.99999999999Z", 1_767_311_999_999),  # nor the next day
        ("2026-01-01T00:00:00.0009999Z", 1_767_225_600_000),
        ("2026-01-01T00:00:00.9999999+01:30", 1_767_225_600_999 - 90 * 60_000),
        ("2026-01-01T00:00:00\\u002e9999999Z", 1_767_225_600_999),  # an escaped dot
        ("2026-01-01T00:00:00.99999\\u00399Z", 1_767_225_600_999),  # an escaped digit
    ],
)
def test_digits_beyond_microseconds_are_dropped_on_every_path(at: str, ms: int) -> None:
    """The backtest read these a microsecond (or a second, or a day) later than the worker."""
    worker = live(at)
    assert worker is not None
    assert epoch_ms(worker) == ms
    assert backtest([at]) == {"e-0": worker}
    assert parse_time(json.loads(f'"{at}"'), "t") == ms


@pytest.mark.parametrize(
    ("text", "long", "cut"),
    [
        ("2026-01-01T00:00:00Z", False, "2026-01-01T00:00:00Z"),
        ("2026-01-01T00:00:00.123456Z", False, "2026-01-01T00:00:00.123456Z"),
        ("2026-01-01T00:00:00.1234567Z", True, "2026-01-01T00:00:00.123456Z"),
        ("2026-01-01T00:00:00.99999999+05:00", True, "2026-01-01T00:00:00.999999+05:00"),
        ("2026-01-01T00:00:00.123", False, "2026-01-01T00:00:00.123"),
    ],
)
def test_exceeds_microseconds_and_truncate_fraction(text: str, long: bool, cut: str) -> None:
    assert exceeds_microseconds(text) is long
    assert truncate_fraction(text) == cut


def test_parse_time_still_refuses_what_is_not_a_time() -> None:
    for bad in ("2026-01-01T00:00:00.1234567", "not a time at all", "2026-13-01T00:00:00Z"):
        with pytest.raises(ConversionsError):
            parse_time(bad, "t")


LAST_MS = (datetime(2601, 1, 1, tzinfo=UTC) - EPOCH) // timedelta(milliseconds=1)


@settings(max_examples=2000, deadline=None)
@given(ms=st.integers(0, LAST_MS) | st.integers(-(10**11), 0))
def test_a_millisecond_written_and_read_back_is_the_same_millisecond(ms: int) -> None:
    """Events reach 2500 and expiries a century more; a float lost microseconds from 2255."""
    when = from_epoch_ms(ms)
    assert when.tzinfo is UTC
    assert when.microsecond % 1000 == 0
    assert epoch_ms(when) == ms
    assert when == EPOCH + timedelta(milliseconds=ms)
    assert parse_time(format_ms(ms), "t") == ms
    assert parse_time(format_ms_compact(ms), "t") == ms
    assert parse_time(isoformat_ms(ms), "t") == ms


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (13_385_245_971_835, "2394-02-28T19:52:51.835Z"),
        (10_687_737_352_838, "2308-09-06T15:55:52.838Z"),
        (13_498_061_212_037, "2397-09-26T13:26:52.037Z"),
    ],
)
def test_from_epoch_ms_is_exact_after_2255(ms: int, text: str) -> None:
    """``fromtimestamp(ms / 1000)`` gave .834999, .837999 and .037001 for these."""
    assert format_ms_compact(ms) == text
    assert isoformat_ms(ms) == text.replace("Z", "000+00:00")
    assert from_epoch_ms(ms).microsecond == int(text[-4:-1]) * 1000
