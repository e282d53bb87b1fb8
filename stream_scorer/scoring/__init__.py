"""The pure scoring core: the model language, contact state, the engine, explanations.

It is the specification of scoring: the worker, backtests and the API all
apply events with it. It imports no Kafka, Redis or HTTP library and nothing
from the worker, review or dev packages (checked by the import contracts).
"""

from stream_scorer.scoring.crossings import Crossing, alert_id, alert_payload
from stream_scorer.scoring.engine import (
    Effects,
    advance,
    advance_in_place,
    apply,
    apply_in_place,
)
from stream_scorer.scoring.explain import ScoreExplanation, award_record, explain
from stream_scorer.scoring.model import ScoringModel, load_model, parse_model
from stream_scorer.scoring.replay import replay
from stream_scorer.scoring.rules import Refusal
from stream_scorer.scoring.state import Award, ContactState, event_key

__all__ = [
    "Award",
    "ContactState",
    "Crossing",
    "Effects",
    "Refusal",
    "ScoreExplanation",
    "ScoringModel",
    "advance",
    "advance_in_place",
    "alert_id",
    "alert_payload",
    "apply",
    "apply_in_place",
    "award_record",
    "event_key",
    "explain",
    "load_model",
    "parse_model",
    "replay",
]
