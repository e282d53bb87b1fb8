"""The typed schemas of stored states' formats, which msgspec checks while decoding.

Kept apart from :mod:`.codec` and interpreted, not compiled: msgspec reads
these annotations at run time, which a mypyc-compiled class does not keep.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["Award1", "Award2", "Record1", "Record2"]


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
    history: dict[str, list[list[int]]] = {}
    totals: dict[str, list[int]] = {}
    once: list[str] = []
    pending: dict[str, list[int]] = {}
    tiers: dict[str, list[str]] = {}
    seen: dict[str, int] = {}


class Award2(msgspec.Struct, array_like=True):
    rule: str
    score: str
    category: str | None
    points: int
    event_id: str
    at: int  # offset from the clock
    expires_at: int | None  # offset from the clock


class Record2(msgspec.Struct, array_like=True):
    """Format 2: positional, times as offsets from ``clock``."""

    clock: int | None
    swept: int | None
    attributes: dict[str, Any]
    attribute_times: dict[str, int]
    awards: list[Award2]
    fit: list[Award2]
    history: dict[str, list[list[int]]]
    totals: dict[str, list[int]]
    once: list[str]
    pending: dict[str, list[int]]
    tiers: dict[str, list[str]]
    seen: dict[str, int]
