"""stream-scorer: real-time, explainable lead scoring on Kafka and Redis."""

from stream_scorer.errors import (
    ConfigError,
    InvalidEvent,
    ModelError,
    ScorerError,
    ServiceRefused,
    ServiceUnavailable,
)
from stream_scorer.settings import Settings, load_settings

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "InvalidEvent",
    "ModelError",
    "ScorerError",
    "ServiceRefused",
    "ServiceUnavailable",
    "Settings",
    "__version__",
    "load_settings",
]
