"""A contact as an evaluation judges it: one score, the outcome, the gates, the awards.

Built by :func:`~stream_scorer.review.evaluation.document.evaluate` from a
score row (or from a conversion with no row), and read by every metric.
"""

from __future__ import annotations

from dataclasses import dataclass

from stream_scorer.review.evaluation.score_files import AwardRecord


@dataclass(frozen=True, slots=True)
class Contact:
    """One contact judged on one score."""

    contact_id: str
    value: float
    converted_at: int | None
    gates_passed: bool | None
    awards: tuple[AwardRecord, ...]
    as_of: str | None
    display: float | None = None
    tiers: tuple[str, ...] = ()
    no_history: bool = False

    @property
    def converted(self) -> bool:
        return self.converted_at is not None

    @property
    def flaggable(self) -> bool:
        """Passes the gates, so a tier could put it in front of sales."""
        return self.gates_passed is True
