"""Outliers: the converters scored lowest, the non-converters scored highest.

Each is listed with the live awards that explain its score, so the report
shows which rules a model is missing or over-weights.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypedDict

from stream_scorer.review.evaluation.contacts import Contact
from stream_scorer.review.evaluation.score_files import AwardRecord
from stream_scorer.times import format_ms_compact

#: Contacts listed in each outlier table.
OUTLIERS = 10


class Outlier(TypedDict):
    contact_id: str
    score: float
    display: float | None
    tiers: list[str]
    gates_passed: bool | None
    as_of: str | None
    converted_at: str | None
    no_history: bool
    awards: list[dict[str, Any]]


def outlier(c: Contact) -> Outlier:
    return {
        "contact_id": c.contact_id,
        "score": c.value,
        "display": c.display,
        "tiers": list(c.tiers),
        "gates_passed": c.gates_passed,
        "as_of": c.as_of,
        "converted_at": None if c.converted_at is None else format_ms_compact(c.converted_at),
        "no_history": c.no_history,
        "awards": _awards_json(c.awards),
    }


def _awards_json(awards: Iterable[AwardRecord]) -> list[dict[str, Any]]:
    """Chronological, as ``engine.explain`` lists them."""
    ordered = sorted(awards, key=lambda a: (a.awarded_at or "", a.rule))
    return [
        {
            "rule": a.rule,
            "category": a.category,
            "points": a.points,
            "awarded_at": a.awarded_at,
            "expires_at": a.expires_at,
            "event_id": a.event_id,
        }
        for a in ordered
    ]
