"""A contact's state as stored bytes: versioned, compact, and every earlier format read.

The store keeps each contact's record (:class:`~.state.ContactState`, less
what is derived) as one value. Its first byte says the format:

- ``{``: format 1, the JSON of :meth:`ContactState.to_json` (releases before
  format 2 wrote only this). Read, and rewritten in the format the worker
  writes at the contact's next write: an upgrade in place, with no change
  to any score, tier or alert.
- ``0x02``: format 2, MessagePack of the record as positional arrays (no
  field names), times as offsets from the contact's clock (small integers
  pack in fewer bytes). It decodes to the same record as format 1; a record
  MessagePack cannot hold (an integer beyond 64 bits, from states older
  than the event limits) is written in format 1 instead.

Both are decoded against a typed schema, so a state that decodes has the
types the engine and the encoder rely on. A new format gets the next byte,
and :func:`decode_state` keeps reading the old ones, so each upgrade is in
place.
"""

from __future__ import annotations

from typing import Any

import msgspec

from stream_scorer.errors import StateFormatError
from stream_scorer.scoring.model import ScoringModel
from stream_scorer.scoring.records import Award2, Record1, Record2
from stream_scorer.scoring.state import Award, ContactState

__all__ = ["FORMAT", "FORMATS", "StateFormatError", "decode_state", "encode_state"]

#: The format :func:`encode_state` writes unless told otherwise.
FORMAT = 2
#: The formats this release reads, and can be told to write.
FORMATS = (1, 2)
_FORMAT_2 = b"\x02"


_pack = msgspec.msgpack.Encoder().encode
_json_pack = msgspec.json.Encoder().encode
_unpack_1 = msgspec.json.Decoder(Record1).decode
_unpack_2 = msgspec.msgpack.Decoder(Record2).decode


def encode_state(state: ContactState, format: int = FORMAT) -> bytes:
    """The stored form of a contact's record, in ``format`` (1 or 2)."""
    if format == 1:
        return _json_pack(state.to_json())
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
    try:
        return _FORMAT_2 + _pack(record)
    except OverflowError:  # an integer MessagePack cannot hold: JSON can
        return _json_pack(state.to_json())


def decode_state(raw: bytes, model: ScoringModel) -> ContactState:
    """A contact's state from its stored form, in any format this release knows.

    Total: any bytes give a state or a :class:`StateFormatError` saying why
    (a format from a newer release, a damaged value), never another exception
    (but running out of memory).
    """
    version = {b"{": 1, _FORMAT_2: 2}.get(raw[:1])
    if version is None:
        first = raw[:1].hex() or "nothing"
        raise StateFormatError(f"a stored state in an unknown format (first byte {first})")
    try:
        if version == 1:
            return ContactState.from_json(msgspec.to_builtins(_unpack_1(raw)), model)
        return ContactState.from_json(_record_to_json(_unpack_2(raw[1:])), model)
    except MemoryError:
        raise
    except Exception as exc:  # a damaged value: whatever it breaks, the caller gets a reason
        raise StateFormatError(
            f"a stored state in format {version} that cannot be read: {type(exc).__name__}"
        ) from None


def _award(a: Award, base: int) -> list[Any]:
    expires = None if a.expires_at is None else a.expires_at - base
    return [a.rule, a.score, a.category, a.points, a.event_id, a.at - base, expires]


def _award_json(a: Award2, base: int) -> dict[str, Any]:
    return {
        "rule": a.rule,
        "score": a.score,
        "category": a.category,
        "points": a.points,
        "event_id": a.event_id,
        "at": a.at + base,
        "expires_at": None if a.expires_at is None else a.expires_at + base,
    }


def _record_to_json(r: Record2) -> dict[str, Any]:
    """Format 2's record as format 1's document."""
    base = r.clock or 0
    return {
        "clock": r.clock,
        "swept": r.swept,
        "attributes": r.attributes,
        "attribute_times": {k: v + base for k, v in r.attribute_times.items()},
        "awards": [_award_json(a, base) for a in r.awards],
        "fit": [_award_json(a, base) for a in r.fit],
        "history": r.history,
        "totals": r.totals,
        "once": r.once,
        "pending": r.pending,
        "tiers": r.tiers,
        "seen": {k: v + base for k, v in r.seen.items()},
    }
