"""A contact's state as stored bytes: versioned, compact, and every earlier format read.

The store keeps each contact's record (:class:`~.state.ContactState`, less
what is derived) as one value. Its first byte says the format:

- ``{``: format 1, the JSON of :meth:`ContactState.to_json` (releases before
  format 2). Read, and rewritten in the current format at the contact's next
  write: an upgrade in place, with no change to any score, tier or alert.
- ``0x02``: format 2, MessagePack of the record as positional arrays (no
  field names), times as offsets from the contact's clock (small integers
  pack in fewer bytes). Lossless: it decodes to the same record as format 1.

A new format gets the next byte, and :func:`decode_state` keeps reading the
old ones, so each upgrade is in place.
"""

from __future__ import annotations

from typing import Any

import msgspec

from stream_scorer.errors import ScorerError
from stream_scorer.scoring.model import ScoringModel
from stream_scorer.scoring.state import Award, ContactState

__all__ = ["FORMAT", "StateFormatError", "decode_state", "encode_state"]

#: The format :func:`encode_state` writes.
FORMAT = 2
_FORMAT_2 = b"\x02"

_pack = msgspec.msgpack.Encoder().encode
_unpack = msgspec.msgpack.Decoder().decode
_json_unpack = msgspec.json.Decoder().decode


class StateFormatError(ScorerError):
    """A stored state in no format this release reads (written by a newer release?)."""


def encode_state(state: ContactState) -> bytes:
    """The stored form of a contact's record, in the current format."""
    base = state.clock or 0
    record = [
        state.clock,
        state.swept,
        state.attributes,
        {k: v - base for k, v in state.attribute_times.items()},
        [_award(a, base) for a in state.awards],
        [_award(a, base) for a in state.fit.values()],
        state.history,
        state.totals,
        sorted(state.once),
        state.pending,
        state.tiers,
        {k: v - base for k, v in state.seen.items()},
    ]
    return _FORMAT_2 + _pack(record)


def decode_state(raw: bytes, model: ScoringModel) -> ContactState:
    """A contact's state from its stored form, in any format this release knows.

    Total: any bytes give a state or a :class:`StateFormatError` saying why
    (a format from a newer release, a damaged value), never another exception.
    """
    version = {b"{": 1, _FORMAT_2: 2}.get(raw[:1])
    if version is None:
        first = raw[:1].hex() or "nothing"
        raise StateFormatError(f"a stored state in an unknown format (first byte {first})")
    try:
        if version == 1:
            return ContactState.from_json(_json_unpack(raw), model)
        return ContactState.from_json(_record_to_json(_unpack(raw[1:])), model)
    except Exception as exc:  # a damaged value: whatever it breaks, the caller gets a reason
        raise StateFormatError(
            f"a stored state in format {version} that cannot be read: {type(exc).__name__}"
        ) from None


def _award(a: Award, base: int) -> list[Any]:
    expires = None if a.expires_at is None else a.expires_at - base
    return [a.rule, a.score, a.category, a.points, a.event_id, a.at - base, expires]


def _award_json(row: list[Any], base: int) -> dict[str, Any]:
    rule, score, category, points, event_id, at, expires = row
    return {
        "rule": rule,
        "score": score,
        "category": category,
        "points": points,
        "event_id": event_id,
        "at": at + base,
        "expires_at": None if expires is None else expires + base,
    }


def _record_to_json(record: list[Any]) -> dict[str, Any]:
    """Format 2's positional record as format 1's JSON document."""
    (clock, swept, attributes, times, awards, fit, history, totals, once, pending, tiers, seen) = (
        record
    )
    base = clock or 0
    return {
        "clock": clock,
        "swept": swept,
        "attributes": attributes,
        "attribute_times": {k: v + base for k, v in times.items()},
        "awards": [_award_json(row, base) for row in awards],
        "fit": [_award_json(row, base) for row in fit],
        "history": history,
        "totals": totals,
        "once": once,
        "pending": pending,
        "tiers": tiers,
        "seen": {k: v + base for k, v in seen.items()},
    }
