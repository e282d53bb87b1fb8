"""One contact's scoring state: the record of what happened, and what follows from it.

The record (clock, attributes, awards, rule histories, seen event ids, active
tiers) is what the store keeps, in the formats of :mod:`.codec`; format 1
is :meth:`ContactState.to_json`, so a change to the record needs a new
format there, which reads the old ones. The derived fields (tallies, values,
gates, the next and last expiry) are never stored; :func:`_rebuild` makes
them from the record.

A contact remembers an event id as its :func:`event_key`, a 64-bit hash: a
fixed 8 bytes whatever the producer's ids look like. Two ids of one contact
share a key with odds of about n²/2⁶⁵ for n remembered ids (one in 10¹¹ at
10,000 ids); the later event would be taken for a duplicate.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from hashlib import blake2b
from itertools import islice
from typing import Any

from stream_scorer.scoring.model import ScoringModel
from stream_scorer.scoring.tally import _add, _Tally


def event_key(event_id: str) -> int:
    """The key a contact remembers an event id by: a stable signed 64-bit hash.

    Stable across processes and releases (Python's ``hash`` of a string is
    not), so every worker and every stored state agree on it.
    """
    digest = blake2b(event_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def seen_key_text(key: int) -> str:
    """A remembered key in the JSON of format 1: ``#`` and 16 hex digits."""
    return f"#{key & 0xFFFF_FFFF_FFFF_FFFF:016x}"


def seen_key_of(text: str) -> int:
    """The key of a format-1 ``seen`` entry: written by :func:`seen_key_text`, or an
    event id (the releases before keys remembered the ids themselves)."""
    if _KEY_TEXT.fullmatch(text):
        value = int(text[1:], 16)
        return value - (1 << 64) if value >= 1 << 63 else value
    return event_key(text)


_KEY_TEXT = re.compile("#[0-9a-f]{16}")


@dataclass(slots=True, init=False)
class Award:
    """Points one rule gave one contact; the unit of explanation.

    ``__init__`` is written out: compiled, the one ``dataclass`` generates runs
    as interpreted Python, and an award is made for most events.
    """

    rule: str
    score: str
    category: str | None
    points: int
    event_id: str
    at: int
    expires_at: int | None

    def __init__(
        self,
        rule: str,
        score: str,
        category: str | None,
        points: int,
        event_id: str,
        at: int,
        expires_at: int | None = None,
    ) -> None:
        self.rule = rule
        self.score = score
        self.category = category
        self.points = points
        self.event_id = event_id
        self.at = at
        self.expires_at = expires_at

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "score": self.score,
            "category": self.category,
            "points": self.points,
            "event_id": self.event_id,
            "at": self.at,
            "expires_at": self.expires_at,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Award:
        return cls(
            d["rule"],
            d["score"],
            d.get("category"),
            int(d["points"]),
            d["event_id"],
            int(d["at"]),
            None if d.get("expires_at") is None else int(d["expires_at"]),
        )


@dataclass(slots=True, init=False)
class ContactState:
    """One contact's scoring state: plain data that round-trips through JSON.

    ``tallies``, ``values``, ``gates_ok``, ``expiry`` and ``last_expiry`` are
    derived (from the awards and attributes) and rebuilt by :meth:`from_json`;
    everything else is the record of what happened. ``seen`` maps the
    :func:`event_key` of each remembered event id to the event's time; the
    engine remembers every id, the store forgets old ones (by age, and past
    a count), and ``forgot_until`` is the newest event time the count made it
    forget (the worker refuses events that old it no longer remembers).
    """

    clock: int | None
    swept: int | None
    attributes: dict[str, Any]
    attribute_times: dict[str, int]
    awards: list[Award]
    fit: dict[str, Award]
    history: dict[str, list[list[int]]]
    totals: dict[str, list[int]]
    once: set[str]
    pending: dict[str, list[int]]
    tiers: dict[str, list[str]]
    seen: dict[int, int]
    seen_ids: dict[int, str] | None
    forgot_until: int | None
    tallies: dict[str, _Tally]
    values: dict[str, int]
    gates_ok: dict[str, bool]
    expiry: int | None
    last_expiry: int | None
    forgotten: int
    memo: object | None

    def __init__(
        self,
        clock: int | None = None,
        swept: int | None = None,
        attributes: dict[str, Any] | None = None,
        attribute_times: dict[str, int] | None = None,
        awards: list[Award] | None = None,
        fit: dict[str, Award] | None = None,
        history: dict[str, list[list[int]]] | None = None,
        totals: dict[str, list[int]] | None = None,
        once: set[str] | None = None,
        pending: dict[str, list[int]] | None = None,
        tiers: dict[str, list[str]] | None = None,
        seen: dict[int, int] | None = None,
        seen_ids: dict[int, str] | None = None,
        forgot_until: int | None = None,
        tallies: dict[str, _Tally] | None = None,
        values: dict[str, int] | None = None,
        gates_ok: dict[str, bool] | None = None,
        expiry: int | None = None,
        last_expiry: int | None = None,
    ) -> None:
        # Written out: compiled, the generated one ran as interpreted Python.
        self.clock = clock
        self.swept = swept
        self.attributes = {} if attributes is None else attributes
        self.attribute_times = {} if attribute_times is None else attribute_times
        self.awards = [] if awards is None else awards
        self.fit = {} if fit is None else fit
        self.history = {} if history is None else history
        self.totals = {} if totals is None else totals
        self.once = set() if once is None else once
        self.pending = {} if pending is None else pending
        self.tiers = {} if tiers is None else tiers
        self.seen = {} if seen is None else seen
        # The ids themselves, by key, while the state may be written for an older
        # release (formats 1 and 2), which matches its events' ids against them. None
        # otherwise: not part of the record.
        # The ids themselves, by key, while the state may be written for an older
        # release (formats 1 and 2), which matches its events' ids against them; None
        # otherwise. Not part of the record.
        self.seen_ids = seen_ids
        self.forgot_until = forgot_until
        self.tallies = {} if tallies is None else tallies
        self.values = {} if values is None else values
        self.gates_ok = {} if gates_ok is None else gates_ok
        self.expiry = expiry
        self.last_expiry = last_expiry
        # Ids forgotten from the front of ``seen`` since this object was made: what
        # the codec's memo of ``seen`` follows (not part of the record).
        self.forgotten = 0
        # The codec's memo of what it encoded of this state (see codec.py): not
        # part of the record, never copied, dropped when it no longer matches.
        self.memo = None

    def to_json(self) -> dict[str, Any]:
        return {
            "clock": self.clock,
            "swept": self.swept,
            "attributes": self.attributes,
            "attribute_times": self.attribute_times,
            "awards": [a.to_json() for a in self.awards],
            "fit": [a.to_json() for a in self.fit.values()],
            "history": self.history,
            "totals": self.totals,
            "once": sorted(self.once),
            "pending": self.pending,
            "tiers": self.tiers,
            "seen": {seen_key_text(k): t for k, t in self.seen.items()},
            "forgot_until": self.forgot_until,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any], model: ScoringModel) -> ContactState:
        state = cls(
            clock=d.get("clock"),
            swept=d.get("swept"),
            attributes=dict(d.get("attributes", {})),
            attribute_times={k: int(v) for k, v in d.get("attribute_times", {}).items()},
            awards=[Award.from_json(a) for a in d.get("awards", [])],
            fit={a["rule"]: Award.from_json(a) for a in d.get("fit", [])},
            history={k: [list(x) for x in v] for k, v in d.get("history", {}).items()},
            totals={k: list(v) for k, v in d.get("totals", {}).items()},
            once=set(d.get("once", [])),
            pending={k: list(v) for k, v in d.get("pending", {}).items()},
            tiers={k: list(v) for k, v in d.get("tiers", {}).items()},
            seen={seen_key_of(k): t for k, t in d.get("seen", {}).items()},
            forgot_until=d.get("forgot_until"),
        )
        ids = {seen_key_of(k): k for k in d.get("seen", {}) if not _KEY_TEXT.fullmatch(k)}
        state.seen_ids = ids or None
        _rebuild(state, model)
        return state

    def seen_texts(self) -> dict[str, int]:
        """``seen`` for formats 1 and 2: the ids themselves where known, else the keys."""
        ids = self.seen_ids or {}
        return {ids.get(k) or seen_key_text(k): t for k, t in self.seen.items()}

    def copy(self) -> ContactState:
        return ContactState(
            clock=self.clock,
            swept=self.swept,
            attributes=dict(self.attributes),
            attribute_times=dict(self.attribute_times),
            awards=list(self.awards),
            fit=dict(self.fit),
            history={k: [list(x) for x in v] for k, v in self.history.items()},
            totals={k: list(v) for k, v in self.totals.items()},
            once=set(self.once),
            pending={k: list(v) for k, v in self.pending.items()},
            tiers={k: list(v) for k, v in self.tiers.items()},
            seen=dict(self.seen),
            seen_ids=None if self.seen_ids is None else dict(self.seen_ids),
            forgot_until=self.forgot_until,
            tallies={k: v.copy() for k, v in self.tallies.items()},
            values=dict(self.values),
            gates_ok=dict(self.gates_ok),
            expiry=self.expiry,
            last_expiry=self.last_expiry,
        )

    @property
    def sums(self) -> dict[str, dict[str, int]]:
        """Each score's raw points per category (``""``: uncategorised), of live awards."""
        return {
            name: {key: c.raw for key, c in tally.categories.items()}
            for name, tally in self.tallies.items()
        }

    def forget_first(self, n: int) -> None:
        """Forget the first ``n`` remembered ids (the store: those older than its window).

        In place, from the front, so that the codec's memo follows
        (``forgotten``) instead of encoding every id again.
        """
        seen = self.seen
        ids = self.seen_ids
        for key in list(islice(seen, n)):
            del seen[key]
            if ids is not None:
                ids.pop(key, None)
        self.forgotten += n

    def forget_oldest(self, n: int) -> None:
        """Forget the ``n`` oldest remembered ids (by event time, ties together).

        ``forgot_until`` moves up to the newest time forgotten: an event no
        newer than it may be one of them. By time, not by arrival, so that
        one event dated ahead (clock skew, an import newest first) does not
        move it past events still to come.
        """
        seen = self.seen
        if n <= 0 or not seen:
            return
        cut = sorted(seen.values())[min(n, len(seen)) - 1]
        self.seen = {k: t for k, t in seen.items() if t > cut}
        ids = self.seen_ids
        if ids is not None:
            self.seen_ids = {k: i for k, i in ids.items() if k in self.seen}
        if self.forgot_until is None or cut > self.forgot_until:
            self.forgot_until = cut

    def live_awards(self) -> list[Award]:
        return [*self.fit.values(), *self.awards]

    def next_expiry(self) -> int | None:
        """When the next award expires (ms), if any does."""
        return self.expiry

    def latest_expiry(self) -> int | None:
        """When the last award expires (ms), if any does: until then the state can change."""
        return self.last_expiry


def _rebuild(state: ContactState, model: ScoringModel) -> None:
    """Make the derived fields (tallies, values, gates, next expiry) from the record."""
    state.tallies = {}
    state.values = {}
    scores = model.scores
    for award in state.live_awards():
        score = scores.get(award.score)
        if score is not None:
            _add(state.tallies, state.values, score, award.category, award.points, +1)
    tallies = state.tallies
    state.values = {
        name: score.clamp(tallies[name].counted if name in tallies else 0)
        for name, score in scores.items()
    }
    _refresh_gates(state, model)
    state.expiry, state.last_expiry = _scan_expiry(state.awards)


def _refresh_gates(state: ContactState, model: ScoringModel) -> None:
    """Whether each gated score's gates pass, for the contact's attributes now."""
    state.gates_ok = {
        name: all(gate(state.attributes) for _, gate in score.gates)
        for name, score in model.scores.items()
        if score.gates
    }


def _scan_expiry(awards: list[Award]) -> tuple[int | None, int | None]:
    """The first and the last expiry of ``awards``, if any expires."""
    times = [a.expires_at for a in awards if a.expires_at is not None]
    return (min(times), max(times)) if times else (None, None)
