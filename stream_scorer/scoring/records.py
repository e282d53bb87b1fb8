"""The typed schemas of stored states' formats, which msgspec checks while decoding.

Kept apart from :mod:`.codec` and interpreted, not compiled: msgspec reads
these annotations at run time, which a mypyc-compiled class does not keep.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["Award1", "Award2", "Award3", "Chunk3", "Kind3", "Record1", "Record2", "Record3"]


class Award1(msgspec.Struct, forbid_unknown_fields=False):
    rule: str
    score: str
    points: int
    event_id: str
    at: int
    category: str | None = None
    expires_at: int | None = None


class Record1(msgspec.Struct, forbid_unknown_fields=False):
    """Format 1: the JSON of ``ContactState.to_json``."""

    clock: int | None = None
    swept: int | None = None
    attributes: dict[str, Any] = {}
    attribute_times: dict[str, int] = {}
    awards: list[Award1] = []
    fit: list[Award1] = []
    history: dict[str, list[tuple[int, int]]] = {}
    totals: dict[str, tuple[int, int]] = {}
    once: list[str] = []
    pending: dict[str, list[int]] = {}
    tiers: dict[str, list[str]] = {}
    seen: dict[str, int] = {}
    forgot_until: int | None = None


class Award2(msgspec.Struct, array_like=True):
    rule: str
    score: str
    category: str | None
    points: int
    event_id: str
    at: int  # offset from the clock
    expires_at: int | None  # offset from the clock


class Record2(msgspec.Struct, array_like=True):
    """Format 2: positional, times as offsets from ``clock``.

    ``forgot_until`` came after the release that introduced format 2, which
    ignores a trailing field it does not know and writes none.
    """

    clock: int | None
    swept: int | None
    attributes: dict[str, Any]
    attribute_times: dict[str, int]
    awards: list[Award2]
    fit: list[Award2]
    history: dict[str, list[tuple[int, int]]]
    totals: dict[str, tuple[int, int]]
    once: list[str]
    pending: dict[str, list[int]]
    tiers: dict[str, list[str]]
    seen: dict[str, int]
    forgot_until: int | None = None


class Kind3(msgspec.Struct, array_like=True):
    """What a group of format 3's awards share: written once, not per award."""

    rule: str
    score: str
    category: str | None
    duration: int | None  # expires_at - at


class Award3(msgspec.Struct, array_like=True):
    kind: int  # index into Record3.kinds
    points: int
    event_id: str
    at: int  # after the award before it (the first: after Record3.base)


class Record3(msgspec.Struct, array_like=True):
    """Format 3: format 2 less what repeats, event ids remembered as 64-bit keys."""

    clock: int | None
    swept: int | None
    attributes: dict[str, Any]
    attribute_times: list[int]  # per attribute, in order: index into times, -1 none
    dropped: dict[str, int]  # attributes removed: index into times
    times: list[int]  # offsets from the clock
    kinds: list[Kind3]
    base: int
    awards: list[Award3]
    fit: list[Award2]  # times as offsets from the clock
    history: dict[str, list[tuple[int, int]]]
    totals: dict[str, tuple[int, int]]
    once: list[str]
    pending: dict[str, list[int]]
    tiers: dict[str, list[str]]
    seen: bytes  # little-endian int64 pairs: key, time (ms)
    forgot_until: int | None
    chunks: int  # chunks of awards and ids in the contact's log (0: none, all is above)
    skip: int  # pairs at the front of the log's ids that were forgotten since


class Chunk3(msgspec.Struct, array_like=True):
    """One write's awards and remembered ids, appended to a contact's log."""

    awards: list[Award3]  # each time after the award before it, across chunks
    seen: bytes
