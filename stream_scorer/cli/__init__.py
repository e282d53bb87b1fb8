"""The ``stream-scorer`` command line: ``main`` is the console script's entry point.

Importing the package registers every command; each command imports what it
drives only when it runs, so ``stream-scorer --help`` starts no Kafka client.
"""

from __future__ import annotations

from stream_scorer.cli import formats, live, review
from stream_scorer.cli.app import cli

__all__ = ["cli", "main"]

_COMMANDS = (formats, live, review)  # imported for their registrations


def main() -> None:
    cli()
