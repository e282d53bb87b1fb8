"""The monthly review: is the model any good, and what would make it better?

Everything here runs on files, with no Kafka, Redis or HTTP: a backtest
replays a history through a model (:mod:`.backtest`), an evaluation measures
its scores against conversions (:mod:`.conversions`, :mod:`.evaluation`) and
renders the report (:mod:`.report`), tuning fits new points for the rules
(:mod:`.tuning`), and a simulation makes histories with a known truth to try
all of it on (:mod:`.simulation`). Nothing here imports the worker or dev.
"""

from stream_scorer.review.backtest import History, backtest_file, read_history
from stream_scorer.review.conversions import read_conversions
from stream_scorer.review.evaluation import evaluate, read_meta, read_scores
from stream_scorer.review.report import write_report
from stream_scorer.review.simulation import simulate
from stream_scorer.review.tuning import dump_model, tune

__all__ = [
    "History",
    "backtest_file",
    "dump_model",
    "evaluate",
    "read_conversions",
    "read_history",
    "read_meta",
    "read_scores",
    "simulate",
    "tune",
    "write_report",
]
