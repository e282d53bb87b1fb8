"""``python -m stream_scorer`` runs the CLI."""

from stream_scorer.cli import main

main()
