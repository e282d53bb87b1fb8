"""A contact's state as stored bytes: versioned, compact, and every earlier format read.

The store keeps each contact's record (:class:`~.state.ContactState`, less
what is derived) as one value. Its first byte says the format:

- ``{``: format 1, the JSON of :meth:`ContactState.to_json` (releases before
  format 2 wrote only this).
- ``0x02``: format 2, MessagePack of the record as positional arrays (no
  field names), times as offsets from the contact's clock (small integers
  pack in fewer bytes).
- ``0x03``: format 3, format 2 less what repeats. What awards of one rule
  share (rule, score, category, duration) is written once, each award's
  time after the one before it, attribute times once per distinct time,
  and the remembered event ids as their 64-bit keys, packed
  (:func:`~.state.event_key`: 16 bytes with the time, whatever the ids).
  The awards are encoded as they are made and kept with the state
  (:class:`_Memo`), so a write encodes only the awards made since the
  last; a contact with many live awards costs what its new ones cost.

A state in an older format is read, and rewritten in the format the worker
writes at the contact's next write: an upgrade in place, with no change to
any score, tier or alert. Formats 1 and 2 remember event ids by their keys
too once written by this release (``#`` and 16 hex digits; see
:func:`~.state.seen_key_of`), and read the ids older releases wrote. A
record MessagePack cannot hold (an integer beyond 64 bits, from states
older than the event limits) is written in format 1 instead.

Every format is decoded against a typed schema, so a state that decodes has
the types the engine and the encoder rely on. A new format gets the next
byte, and :func:`decode_state` keeps reading the old ones.
"""

from __future__ import annotations

import math
import sys
from array import array
from typing import Any, NamedTuple

import msgspec

from stream_scorer.errors import StateFormatError
from stream_scorer.scoring.model import ScoringModel
from stream_scorer.scoring.records import Award2, Award3, Chunk3, Record1, Record2, Record3
from stream_scorer.scoring.state import Award, ContactState, _rebuild

__all__ = [
    "APPEND",
    "FORMAT",
    "FORMATS",
    "LEAVE",
    "LOG_ABOVE",
    "REPLACE",
    "StateFormatError",
    "Write",
    "decode_state",
    "encode_state",
    "encode_write",
    "rewrite_log",
]

#: The format :func:`encode_state` writes unless told otherwise.
FORMAT = 3
#: The formats this release reads, and can be told to write.
FORMATS = (1, 2, 3)
_FORMAT_2 = b"\x02"
_FORMAT_3 = b"\x03"
_VERSIONS = {b"{": 1, _FORMAT_2: 2, _FORMAT_3: 3}
_BIG = sys.byteorder == "big"

_pack = msgspec.msgpack.Encoder().encode
_json_pack = msgspec.json.Encoder().encode
_unpack_1 = msgspec.json.Decoder(Record1).decode
_unpack_2 = msgspec.msgpack.Decoder(Record2).decode
_unpack_3 = msgspec.msgpack.Decoder(Record3).decode
_unpack_log = msgspec.msgpack.Decoder(list[Chunk3]).decode


class _Memo:
    """What format 3 encoded of a state's awards and remembered ids, to encode only what is new.

    The engine only appends to a state's list of awards, and only adds ids
    to its remembered ones; expiry replaces the list, and a copy makes
    others. The store forgets remembered ids from the front, counted in
    ``ContactState.forgotten`` (or replaces the dict). So while each is the
    same object, what was encoded of it (less what was forgotten) is still
    its prefix, and only what came after needs encoding: a contact's write
    costs what it added, not what it holds.

    It also follows what the contact's log in Redis holds (see
    :func:`encode_write`), so that a write appends only what is new to it.
    """

    def __init__(self, awards: list[Award], base: int, seen: dict[int, int]) -> None:
        self.awards = awards
        self.n = 0
        self.base = base
        self.last = base
        self.kinds: dict[tuple[str, str, str | None, int | None], int] = {}
        self.kind_list: list[tuple[str, str, str | None, int | None]] = []
        # A MessagePack array32 header, its count written at each encode, then the awards.
        self.blob = bytearray(b"\xdd\x00\x00\x00\x00")
        self.seen = seen
        self.seen_n = 0
        self.forgotten = 0
        self.pairs = array("q")  # key, time, key, time...
        # The log: whether Redis may hold one for this contact, and whether it holds
        # exactly awards[:log_n] (blob[:log_at]) and log_total ids, of which the
        # first log_live of ``pairs`` are the last.
        self.has_log = False
        self.synced = False
        self.log_n = 0
        self.log_at = 5
        self.log_total = 0
        self.log_live = 0
        self.chunks = 0
        self.log_bytes = 0

    def extend(self) -> None:
        awards = self.awards
        kinds = self.kinds
        blob = self.blob
        last = self.last
        for i in range(self.n, len(awards)):
            a = awards[i]
            expires = a.expires_at
            kind = (a.rule, a.score, a.category, None if expires is None else expires - a.at)
            k = kinds.get(kind)
            if k is None:
                k = kinds[kind] = len(self.kind_list)
                self.kind_list.append(kind)
            blob.extend(_pack((k, a.points, a.event_id, a.at - last)))
            last = a.at
        self.last = last
        if self.n != len(awards):
            self.n = len(awards)
            blob[1:5] = self.n.to_bytes(4, "big")

    def extend_seen(self, forgotten: int) -> None:
        seen = self.seen
        gone = forgotten - self.forgotten
        if gone:  # forgotten from the front (ContactState.forget_first)
            del self.pairs[: 2 * gone]
            self.seen_n -= gone
            self.log_live = max(0, self.log_live - gone)
            self.forgotten = forgotten
        new = len(seen) - self.seen_n
        if new > 0:  # the ids added since, from the end: not a walk past the others
            newest = reversed(seen.items())
            added = [x for _, (key, t) in zip(range(new), newest, strict=False) for x in (t, key)]
            added.reverse()
            self.pairs.extend(added)
            self.seen_n = len(seen)

    def seen_bytes(self, start: int = 0) -> bytes:
        """The remembered ids from the ``start``-th on, packed."""
        pairs = self.pairs[2 * start :] if start else self.pairs
        if _BIG:
            pairs = array("q", pairs)
            pairs.byteswap()
        return pairs.tobytes()

    def whole_log(self) -> bytes:
        """A log of one chunk with every award and id: what replaces the contact's log."""
        chunk = _pack((msgspec.Raw(bytes(self.blob)), self.seen_bytes()))
        self.has_log = self.synced = True
        self.log_n, self.log_at, self.chunks = self.n, len(self.blob), 1
        self.log_total = self.log_live = self.seen_n
        self.log_bytes = len(chunk)
        return chunk

    def log_delta(self) -> bytes:
        """A chunk of the awards and ids made since the log was written (b"": none)."""
        new_awards = self.n - self.log_n
        new_pairs = self.seen_n - self.log_live
        if not new_awards and not new_pairs:
            return b""
        header = b"\xdd" + new_awards.to_bytes(4, "big")
        awards = msgspec.Raw(header + bytes(self.blob[self.log_at :]))
        chunk = _pack((awards, self.seen_bytes(self.log_live)))
        self.log_n, self.log_at, self.chunks = self.n, len(self.blob), self.chunks + 1
        self.log_total += new_pairs
        self.log_live = self.seen_n
        self.log_bytes += len(chunk)
        return chunk


def _memo_of(state: ContactState) -> _Memo:
    """The state's memo, made or made again if it no longer matches, extended to the state."""
    base = state.clock or 0
    memo = state.memo
    awards = state.awards
    seen = state.seen
    if not isinstance(memo, _Memo) or memo.awards is not awards or memo.n > len(awards):
        fresh = _Memo(awards, base, seen)
        fresh.forgotten = state.forgotten
        fresh.has_log = isinstance(memo, _Memo) and memo.has_log
        memo = fresh
        state.memo = memo
    elif (
        memo.seen is not seen
        or not 0 <= state.forgotten - memo.forgotten <= memo.seen_n
        or memo.seen_n - (state.forgotten - memo.forgotten) > len(seen)
    ):
        memo.seen, memo.seen_n, memo.pairs = seen, 0, array("q")
        memo.forgotten = state.forgotten
        memo.synced = False
    try:
        memo.extend()
        memo.extend_seen(state.forgotten)
    except BaseException:
        state.memo = None  # part encoded: the next write starts again
        raise
    return memo


def encode_state(state: ContactState, format: int = FORMAT) -> bytes:
    """The stored form of a contact's record, in ``format`` (1, 2 or 3), all in one value."""
    try:
        if format == 1:
            return _json_pack(_record_1(state))
        if format == 2:
            return _FORMAT_2 + _pack(_record_2(state))
        return _FORMAT_3 + _pack(_record_3(state, _memo_of(state), inline=True))
    except OverflowError:  # an integer MessagePack cannot hold: JSON can
        return _json_pack(_record_1(state))


#: Awards and ids (bytes, encoded) from which a contact keeps them in a log.
LOG_ABOVE = 64 * 1024
#: What a write does to the contact's log: leave it, replace it (b"": delete), append.
LEAVE, REPLACE, APPEND = "", "=", "+"


class Write(NamedTuple):
    """One contact's write: the stored state, and what to do to its log."""

    body: bytes
    op: str
    log: bytes
    #: For APPEND, the length the log must have: else it is not the one this state's
    #: memo wrote (it was deleted or evicted), and the write must not go on.
    size: int = 0


def encode_write(state: ContactState, format: int = FORMAT, log_above: int = LOG_ABOVE) -> Write:
    """What to write for a contact's state: its value, and a change to its log.

    A contact whose awards and remembered ids take ``log_above`` bytes or
    more keeps them in a log (a second key) instead of in its value; a write
    then appends only what was made since the last, so a contact with a
    long history writes what its batch added, not all it holds. The log is
    written again whole when the memo no longer follows it (awards expired,
    ids forgotten by age, a state read from Redis), when forgotten ids are
    most of it, and every 4,096 chunks. Below half of ``log_above`` the
    contact leaves its log. Formats 1 and 2 hold everything in the value.
    """
    try:
        if format != 3:
            body = encode_state(state, format)
            memo = state.memo
            if isinstance(memo, _Memo):
                memo.has_log = memo.synced = False
            return Write(body, REPLACE, b"")  # no log: an older release would not read it
        memo = _memo_of(state)
        bulk = len(memo.blob) + 16 * memo.seen_n
        if bulk < (log_above // 2 if memo.has_log else log_above):
            op = REPLACE if memo.has_log else LEAVE
            memo.has_log = memo.synced = False
            return Write(_FORMAT_3 + _pack(_record_3(state, memo, inline=True)), op, b"")
        size = memo.log_bytes
        if memo.synced and memo.chunks < 4096 and memo.log_total - memo.log_live <= memo.seen_n:
            op, log = APPEND, memo.log_delta()
        else:
            op, log = REPLACE, memo.whole_log()
        return Write(_FORMAT_3 + _pack(_record_3(state, memo, inline=False)), op, log, size)
    except OverflowError:  # an integer MessagePack cannot hold: JSON can
        memo = state.memo
        if isinstance(memo, _Memo):
            memo.has_log = memo.synced = False
        return Write(_json_pack(_record_1(state)), REPLACE, b"")


def rewrite_log(state: ContactState) -> None:
    """Have the next :func:`encode_write` of ``state`` replace its log whole.

    For a log Redis no longer holds as this state's memo wrote it (deleted
    or evicted on its own) while the state itself is still the truth.
    """
    memo = state.memo
    if isinstance(memo, _Memo):
        memo.synced = False


def _record_3(state: ContactState, memo: _Memo, inline: bool) -> list[Any]:
    """Format 3's record; with ``inline`` False, less the awards and ids (in the log)."""
    base = state.clock or 0
    times: dict[int, int] = {}
    attribute_times = state.attribute_times
    attributes = state.attributes
    indexes: list[int] = []
    for k in attributes:
        t = attribute_times.get(k)
        indexes.append(-1 if t is None else times.setdefault(t - base, len(times)))
    dropped = {
        k: times.setdefault(t - base, len(times))
        for k, t in attribute_times.items()
        if k not in attributes
    }
    awards: Any
    if inline:
        awards, seen, chunks, skip = msgspec.Raw(bytes(memo.blob)), memo.seen_bytes(), 0, 0
    else:
        awards, seen = _NO_AWARDS, b""
        chunks, skip = memo.chunks, memo.log_total - memo.log_live
    return [
        state.clock,
        state.swept,
        attributes,
        indexes,
        dropped,
        list(times),
        memo.kind_list,
        memo.base,
        awards,
        [_award(a, base) for a in state.fit.values()],
        state.history,
        state.totals,
        sorted(state.once),
        state.pending,
        state.tiers,
        seen,
        state.forgot_until,
        chunks,
        skip,
    ]


_NO_AWARDS = msgspec.Raw(b"\x90")


def _record_2(state: ContactState) -> list[Any]:
    base = state.clock or 0
    return [
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
        {k: v - base for k, v in state.seen_texts().items()},
        state.forgot_until,
    ]


def _record_1(state: ContactState) -> dict[str, Any]:
    """Format 1's document: :meth:`ContactState.to_json`, ids as producers sent them where known."""
    return {**state.to_json(), "seen": state.seen_texts()}


def decode_state(raw: bytes, model: ScoringModel, log: bytes | None = None) -> ContactState:
    """A contact's state from its stored form and log, in any format this release knows.

    Total: any bytes give a state or a :class:`StateFormatError` saying why
    (a format from a newer release, a damaged value, a log missing or
    damaged), never another exception (but running out of memory).
    """
    version = _VERSIONS.get(raw[:1])
    if version is None:
        first = raw[:1].hex() or "nothing"
        raise StateFormatError(f"a stored state in an unknown format (first byte {first})")
    try:
        if version == 1:
            return ContactState.from_json(msgspec.to_builtins(_unpack_1(raw)), model)
        if version == 2:
            record_2 = _unpack_2(raw[1:])
            _check_attributes(record_2.attributes)
            return ContactState.from_json(_record_to_json(record_2), model)
        record_3 = _unpack_3(raw[1:])
        _check_attributes(record_3.attributes)
        return _state_3(record_3, model, log)
    except MemoryError:
        raise
    except Exception as exc:  # a damaged value: whatever it breaks, the caller gets a reason
        raise StateFormatError(
            f"a stored state in format {version} that cannot be read: {type(exc).__name__}"
        ) from None


def _check_attributes(attributes: dict[str, Any]) -> None:
    """Refuse attribute values no event can carry, which JSON (format 1) cannot hold.

    MessagePack (formats 2 and 3) can hold an infinite or NaN float, bytes,
    an extension or a dict keyed by numbers; no event sets one (events are
    JSON, numbers finite), so a state holding one is damaged. Read as it is,
    it would change when written in format 1 (infinity as null), which the
    worker writes for a record MessagePack cannot hold.
    """
    todo: list[Any] = list(attributes.values())
    while todo:  # a loop, not recursion: a deep value must not exhaust the stack
        value = todo.pop()
        kind = type(value)
        if kind is str or kind is int or kind is bool or value is None:
            continue
        if kind is float:
            if not math.isfinite(value):
                raise ValueError("an attribute that is not a finite number")
        elif kind is list:
            todo.extend(value)
        elif kind is dict:
            if any(type(k) is not str for k in value):
                raise ValueError("an attribute with a key that is not a string")
            todo.extend(value.values())
        else:
            raise ValueError("an attribute that is not a JSON value")


def _state_3(r: Record3, model: ScoringModel, log: bytes | None) -> ContactState:
    base = r.clock or 0
    times = [t + base for t in r.times]
    if len(r.attribute_times) != len(r.attributes):
        raise ValueError("an attribute time for each attribute")
    attribute_times = {
        k: times[i] for k, i in zip(r.attributes, r.attribute_times, strict=True) if i != -1
    }
    for k, i in r.dropped.items():
        attribute_times[k] = times[i]
    if any(i < -1 for i in r.attribute_times) or any(i < 0 for i in r.dropped.values()):
        raise ValueError("attribute time indexes")
    logged_awards: list[Award3] = []
    seen_blob = r.seen
    if r.chunks:
        if log is None:
            raise ValueError("the state's log is missing")
        if r.chunks < 0:
            raise ValueError("a negative count of chunks")
        chunks = _unpack_log(b"\xdd" + r.chunks.to_bytes(4, "big") + log)
        logged_awards = [a for chunk in chunks for a in chunk.awards]
        seen_blob += b"".join(chunk.seen for chunk in chunks)
    kinds = r.kinds
    awards = []
    at = r.base
    for a in (*r.awards, *logged_awards):
        if a.kind < 0:
            raise ValueError("award kinds")
        kind = kinds[a.kind]
        at += a.at
        expires = None if kind.duration is None else at + kind.duration
        awards.append(
            Award(kind.rule, kind.score, kind.category, a.points, a.event_id, at, expires)
        )
    if len(seen_blob) % 16:
        raise ValueError("remembered keys come with their times")
    if not 0 <= r.skip <= len(seen_blob) // 16:
        raise ValueError("more ids forgotten than the log holds")
    packed = array("q")
    packed.frombytes(seen_blob)
    if _BIG:
        packed.byteswap()
    del packed[: 2 * r.skip]
    state = ContactState(
        clock=r.clock,
        swept=r.swept,
        attributes=r.attributes,
        attribute_times=attribute_times,
        awards=awards,
        fit={a.rule: _award_of(a, base) for a in r.fit},
        history={k: [list(x) for x in v] for k, v in r.history.items()},
        totals={k: list(v) for k, v in r.totals.items()},
        once=set(r.once),
        pending={k: list(v) for k, v in r.pending.items()},
        tiers={k: list(v) for k, v in r.tiers.items()},
        seen=dict(zip(packed[0::2].tolist(), packed[1::2].tolist(), strict=True)),
        forgot_until=r.forgot_until,
    )
    _rebuild(state, model)
    if r.chunks:  # Redis holds a log: the first write replaces it (or deletes it)
        memo = _Memo(state.awards, base, state.seen)
        memo.has_log = True
        state.memo = memo
    return state


def _award(a: Award, base: int) -> list[Any]:
    expires = None if a.expires_at is None else a.expires_at - base
    return [a.rule, a.score, a.category, a.points, a.event_id, a.at - base, expires]


def _award_of(a: Award2, base: int) -> Award:
    expires = None if a.expires_at is None else a.expires_at + base
    return Award(a.rule, a.score, a.category, a.points, a.event_id, a.at + base, expires)


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
        "forgot_until": r.forgot_until,
    }
