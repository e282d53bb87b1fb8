"""Conversion analytics: how well a backtest's scores predicted who converted.

The monthly check teams run on a scoring model: do converters score higher
than non-converters (averages, distributions, ROC and AUC), which score bands
convert, how the tier thresholds perform and which threshold would perform
best, which contacts the model got most wrong (with the awards that explain
their scores) and which rules go with conversion (lift).

Everything here is a pure computation over a backtest's ``scores.jsonl`` and
``backtest.json`` and a conversions mapping (see
:func:`stream_scorer.review.conversions.read_conversions`); :func:`evaluate`
returns the ``report.json`` document that :mod:`stream_scorer.review.report`
renders.

Decisions, each explained in the report too:

- Point in time: a score only counts as a prediction if it was computed
  before the outcome. A contact that converted at or before its row's
  ``as_of`` is left out (its score may include what it did after
  converting) and counted as ``excluded_converted_before_as_of``.
- Conversions without a score row are contacts with no events: they count
  as converters with the score's minimum and no awards, since that was
  their score, and leaving them out would flatter recall.
- Bands are ten equal-width ranges over [min, max], not quantiles: they line
  up with thresholds and stay comparable from month to month.
- Thresholds flag a contact when its score is ``>= at`` and it passes the
  gates, as the engine's tiers do; the suggested threshold is the observed
  score with the best F1 (ties: the higher), Youden J is reported beside it.
  ROC and AUC rank by score alone.

:mod:`.score_files` reads the backtest's files, :mod:`.ranking` holds the
metrics, :mod:`.lift` and :mod:`.outliers` the per-rule and per-contact
views, and :mod:`.document` assembles the report.
"""

from stream_scorer.errors import EvaluationError
from stream_scorer.review.evaluation.document import evaluate
from stream_scorer.review.evaluation.ranking import RocPoint, auc, roc
from stream_scorer.review.evaluation.score_files import (
    AwardRecord,
    ScoreRow,
    read_meta,
    read_scores,
)

__all__ = [
    "AwardRecord",
    "EvaluationError",
    "RocPoint",
    "ScoreRow",
    "auc",
    "evaluate",
    "read_meta",
    "read_scores",
    "roc",
]
