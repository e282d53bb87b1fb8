"""What a backtest writes: score rows with the awards that explain them, alerts, the model.

``scores.jsonl`` rows and ``backtest.json``'s model summary are the input of
:mod:`stream_scorer.review.evaluation`; alerts are the live path's payloads.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from stream_scorer.review.backtest.run import Backtest, alert_order
from stream_scorer.scoring import (
    ContactState,
    ScoringModel,
    alert_payload,
    award_record,
    explain,
)
from stream_scorer.times import format_ms

#: Score lines by contact id, alert lines by (time, contact id): both ready to merge.
ScoreLines = list[tuple[str, bytes]]
AlertLines = list[tuple[tuple[int, str], bytes]]


def score_row(contact: str, state: ContactState, model: ScoringModel, as_of: int) -> dict[str, Any]:
    """One line of ``scores.jsonl``: the scores with the live awards that explain them."""
    explained = explain(state, model)
    gates: dict[str, bool] = {}
    for item in explained.values():
        gates.update(item.gates)
    return {
        "contact_id": contact,
        "as_of": format_ms(as_of),
        "scores": {name: e.value for name, e in explained.items()},
        "display": {name: e.display for name, e in explained.items()},
        "tiers": {name: e.tiers for name, e in explained.items()},
        "gates_passed": all(gates.values()),
        # A gate may hold back some scores only: what holds for each score.
        "gates_passed_by_score": {name: all(e.gates.values()) for name, e in explained.items()},
        "gates": gates,
        "grade": model.grade(state.values),
        "awards": [award_record(a, format_ms) for e in explained.values() for a in e.awards],
    }


def rows(result: Backtest) -> Iterable[dict[str, Any]]:
    """Score rows, by contact id."""
    for contact in sorted(result.states):
        yield score_row(contact, result.states[contact], result.model, result.cutoffs[contact])


def model_summary(model: ScoringModel) -> dict[str, Any]:
    """The model's scores, thresholds and rules, as evaluations need them."""
    spec = model.spec
    return {
        "model": model.name,
        "model_version": model.version,
        "scores": {
            name: {
                "min": score.min,
                "max": score.max,
                "thresholds": [
                    {"name": t.name, "at": t.at, "rearm_below": t.rearm_below}
                    for t in score.thresholds
                ],
            }
            for name, score in model.scores.items()
        },
        "rules": {
            rule.id: {"score": rule.score, "category": rule.category, "points": rule.points}
            for rule in spec.rules
        },
    }


def encoded(result: Backtest) -> tuple[ScoreLines, AlertLines]:
    """The lines of ``scores.jsonl`` and ``alerts.jsonl``, keyed for merging parts."""
    encode = msgspec.json.Encoder().encode
    scores = [(row["contact_id"], encode(row) + b"\n") for row in rows(result)]
    alerts = [(alert_order(c), alert_payload(c, result.model) + b"\n") for c in result.crossings]
    return scores, alerts
