"""The scoring model language: a YAML file, validated, compiled to rules.

``load_model(path)`` is the entry point; ``docs/scoring-model.md`` documents
every key.
"""

from stream_scorer.scoring.model.compiled import (
    CompiledRule,
    CompiledScore,
    ScoringModel,
    compile_model,
)
from stream_scorer.scoring.model.conditions import ConditionError, compile_condition
from stream_scorer.scoring.model.loader import (
    load_model,
    parse_model,
    read_document,
    write_document,
)
from stream_scorer.scoring.model.spec import ModelSpec, Threshold, parse_duration

__all__ = [
    "CompiledRule",
    "CompiledScore",
    "ConditionError",
    "ModelSpec",
    "ScoringModel",
    "Threshold",
    "compile_condition",
    "compile_model",
    "load_model",
    "parse_duration",
    "parse_model",
    "read_document",
    "write_document",
]
