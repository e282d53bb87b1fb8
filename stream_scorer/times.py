"""Time as the scorer counts it: integer milliseconds since the Unix epoch, in UTC.

The engine's clock is epoch ms; the wire formats carry RFC 3339 times. Every
conversion between the two lives here, so a backtest row, a simulated event,
an alert and an API answer write the same instant the same way.

Finer digits are dropped, never rounded: a time is the millisecond it falls
in (``00:00:00.9999999Z`` is ``.999``, not the next second). The live
decoder (pydantic) keeps the first 6 digits of a fraction, and
:func:`epoch_ms` floors to the millisecond; :func:`parse_time` does both
itself, and :func:`exceeds_microseconds` tells a reader that rounds (msgspec
does) to leave a time to the live decoder.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from stream_scorer.errors import ConversionsError

__all__ = [
    "EPOCH",
    "FRACTION_DIGITS",
    "ONE_MS",
    "epoch_ms",
    "exceeds_microseconds",
    "format_ms",
    "format_ms_compact",
    "from_epoch_ms",
    "isoformat_ms",
    "now_ms",
    "parse_time",
    "truncate_fraction",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)
#: Digits of a second a time keeps (a ``datetime``'s microseconds); finer ones are dropped.
FRACTION_DIGITS = 6
#: A fraction with more digits than that (an RFC 3339 time has no other ``.``).
_LONG_FRACTION = re.compile(rf"\.([0-9]{{{FRACTION_DIGITS}}})[0-9]+")


def epoch_ms(ts: datetime) -> int:
    """Milliseconds since the Unix epoch: the engine's integer clock (floored, never rounded)."""
    return (ts - EPOCH) // ONE_MS


def from_epoch_ms(ms: int) -> datetime:
    """The instant of epoch ms, exactly: ``epoch_ms(from_epoch_ms(ms)) == ms``.

    Not ``datetime.fromtimestamp(ms / 1000)``: from 2255 on a float's seconds
    lose microseconds, and ``.835`` came back as ``.834999``.
    """
    return EPOCH + timedelta(milliseconds=ms)


def now_ms() -> int:
    """The wall clock in epoch ms (the sweeper's "now"; scoring itself uses event time)."""
    return int(datetime.now(UTC).timestamp() * 1000)


def exceeds_microseconds(text: str) -> bool:
    """Whether an RFC 3339 time's fraction has more digits than :data:`FRACTION_DIGITS`.

    Such a time is read differently by a parser that rounds (msgspec: the next
    microsecond, or second) and by one that drops them (pydantic, :func:`parse_time`).
    A few string operations: the backtest asks this of every line.
    """
    dot = text.find(".")
    if dot < 0:
        return False
    digits = text[dot + 1 : dot + 2 + FRACTION_DIGITS]
    return len(digits) > FRACTION_DIGITS and digits.isdigit()


def truncate_fraction(text: str) -> str:
    """An RFC 3339 time with its fraction cut to :data:`FRACTION_DIGITS` digits, not rounded."""
    return _LONG_FRACTION.sub(r".\1", text, count=1)


_DAYS: dict[int, str] = {}
_MINUTES = [f"{m // 60:02d}:{m % 60:02d}:" for m in range(1440)]
_SECONDS = [f"{ms // 1000:02d}.{ms % 1000:03d}Z" for ms in range(60_000)]


def format_ms(ms: int) -> str:
    """Epoch ms as RFC 3339 in UTC, ``2026-01-01T09:30:00.000Z``, from tables.

    Backtests and simulations write one per award or event, millions of
    them: this is several times faster than ``isoformat``.
    """
    day, rest = divmod(ms, 86_400_000)
    prefix = _DAYS.get(day)
    if prefix is None:
        prefix = _DAYS[day] = from_epoch_ms(day * 86_400_000).strftime("%Y-%m-%dT")
    return prefix + _MINUTES[rest // 60_000] + _SECONDS[rest % 60_000]


def format_ms_compact(ms: int) -> str:
    """Epoch ms as RFC 3339 in UTC with milliseconds only when there are any (``report.json``)."""
    frac = f".{ms % 1000:03d}" if ms % 1000 else ""
    return from_epoch_ms(ms).strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


def isoformat_ms(ms: int) -> str:
    """Epoch ms as Python's ``isoformat`` writes it (``+00:00``): the HTTP API's form."""
    return from_epoch_ms(ms).isoformat()


def parse_time(value: Any, place: str) -> int:
    """An RFC 3339 time (``Z`` or an offset) as epoch ms; the error names ``place``."""
    if not isinstance(value, str) or len(value) < 16:
        raise ConversionsError(f"{place}: {value!r} is not an RFC 3339 time")
    try:
        ts = datetime.fromisoformat(truncate_fraction(value.replace("z", "Z")))
    except ValueError:
        raise ConversionsError(f"{place}: {value!r} is not an RFC 3339 time") from None
    if ts.tzinfo is None:
        raise ConversionsError(f"{place}: {value!r} has no UTC offset (add Z)")
    return epoch_ms(ts)
