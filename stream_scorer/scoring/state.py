"""One contact's scoring state: the record of what happened, and what follows from it.

The record (clock, attributes, awards, rule histories, seen event ids, active
tiers) is what the store keeps, in the formats of :mod:`.codec`; format 1
is :meth:`ContactState.to_json`, so a change to the record needs a new
format there, which reads the old ones. The derived fields (tallies, values, gates, the next
expiry) are never stored; :func:`_rebuild` makes them from the record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stream_scorer.scoring.model import ScoringModel
from stream_scorer.scoring.tally import _add, _Tally


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

    ``tallies``, ``values``, ``gates_ok`` and ``expiry`` are derived (from the
    awards and attributes) and rebuilt by :meth:`from_json`; everything else
    is the record of what happened.
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
    seen: dict[str, int]
    tallies: dict[str, _Tally]
    values: dict[str, int]
    gates_ok: dict[str, bool]
    expiry: int | None

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
        seen: dict[str, int] | None = None,
        tallies: dict[str, _Tally] | None = None,
        values: dict[str, int] | None = None,
        gates_ok: dict[str, bool] | None = None,
        expiry: int | None = None,
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
        self.tallies = {} if tallies is None else tallies
        self.values = {} if values is None else values
        self.gates_ok = {} if gates_ok is None else gates_ok
        self.expiry = expiry

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
            "seen": self.seen,
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
            seen=dict(d.get("seen", {})),
        )
        _rebuild(state, model)
        return state

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
            tallies={k: v.copy() for k, v in self.tallies.items()},
            values=dict(self.values),
            gates_ok=dict(self.gates_ok),
            expiry=self.expiry,
        )

    @property
    def sums(self) -> dict[str, dict[str, int]]:
        """Each score's raw points per category (``""``: uncategorised), of live awards."""
        return {
            name: {key: c.raw for key, c in tally.categories.items()}
            for name, tally in self.tallies.items()
        }

    def live_awards(self) -> list[Award]:
        return [*self.fit.values(), *self.awards]

    def next_expiry(self) -> int | None:
        """When the next award expires (ms), if any does."""
        return self.expiry

    def latest_expiry(self) -> int | None:
        """When the last award expires (ms), if any does: until then the state can change."""
        latest: int | None = None
        for award in self.awards:
            expires = award.expires_at
            if expires is not None and (latest is None or expires > latest):
                latest = expires
        return latest


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
    state.expiry = _scan_expiry(state.awards)


def _refresh_gates(state: ContactState, model: ScoringModel) -> None:
    """Whether each gated score's gates pass, for the contact's attributes now."""
    state.gates_ok = {
        name: all(gate(state.attributes) for _, gate in score.gates)
        for name, score in model.scores.items()
        if score.gates
    }


def _scan_expiry(awards: list[Award]) -> int | None:
    times = [a.expires_at for a in awards if a.expires_at is not None]
    return min(times) if times else None
