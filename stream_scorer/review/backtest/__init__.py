"""Backtests: history replayed through a model by the reference engine, no Kafka or Redis.

The engine is the specification the live path agrees with, so a backtest's
scores and alerts are what the live path would have produced for the same
events in event-time order. Scores are taken *as of* a time: events after it
are not applied, and points that expired by then do not count. With
conversions, each converter is scored just before its conversion instead, so
events after a conversion never explain it (point-in-time correctness).

:mod:`.history` reads an event file, :mod:`.run` replays it up to the
cut-offs, :mod:`.output` makes the rows and :mod:`.files` writes them, in
one process or several.
"""

from stream_scorer.review.backtest.files import backtest_file
from stream_scorer.review.backtest.history import EXAMPLES, History, read_history
from stream_scorer.review.backtest.output import model_summary, rows, score_row
from stream_scorer.review.backtest.run import Backtest, run_backtest

__all__ = [
    "EXAMPLES",
    "Backtest",
    "History",
    "backtest_file",
    "model_summary",
    "read_history",
    "rows",
    "run_backtest",
    "score_row",
]
