"""The exceptions stream-scorer raises, in one place.

::

    ScorerError                 base of everything below
    ├── ConfigError             bad SCORER_ settings; the worker refuses to start
    ├── ModelError              bad scoring model file; carries every problem with its place
    ├── InvalidEvent            one event cannot be scored; it goes to the dead-letter topic
    ├── ServiceUnavailable      Kafka or Redis cannot be reached; retried, never dropped
    ├── ServiceRefused          Kafka or Redis answered but refused us: the worker does not start
    ├── StateFormatError        a stored contact state cannot be read; that contact alone fails
    ├── ConversionsError        a conversions file cannot be read; names the line
    ├── EvaluationError         backtest output cannot be evaluated; names the file and line
    ├── BacktestError           a backtest could not finish (nothing to score, a process failed)
    └── TuningError             the history cannot support a fit (e.g. no converter to learn from)

Callers catch ``ScorerError`` to handle all of them; the worker treats
``InvalidEvent`` as data (dead-letter it) and ``ServiceUnavailable`` as
transient (retry with backoff, do not move past the event).
"""

from __future__ import annotations


class ScorerError(Exception):
    """Base class for every error stream-scorer raises on purpose."""


class ConfigError(ScorerError):
    """The service configuration is invalid; the message names each variable."""


class ModelError(ScorerError):
    """The scoring model is invalid; ``problems`` lists ``place: message`` lines."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: {len(problems)} problem(s)\n" + "\n".join(problems))


class InvalidEvent(ScorerError):
    """An event that cannot be scored; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class ServiceUnavailable(ScorerError):
    """A backing service (Kafka, Redis) did not answer; the caller retries."""


class ServiceRefused(ScorerError):
    """Kafka or Redis refused the connection for good (credentials, certificate, ACL, policy).

    Retrying cannot help; the message names the settings to fix, never a secret.
    """


class StateFormatError(ScorerError):
    """A stored contact state in no format this release reads (a newer one's, or damaged)."""


class ConversionsError(ScorerError):
    """A conversions file could not be read; the message names the line."""


class EvaluationError(ScorerError):
    """Backtest output (scores or metadata) could not be evaluated; names file:line."""


class BacktestError(ScorerError):
    """A backtest could not finish; the message says why."""


class TuningError(ScorerError):
    """Tuning cannot learn from this history; the message says what is missing."""
