"""The ``stream-scorer`` command groups and what every command shares.

Commands live next to what they drive (:mod:`.live`, :mod:`.review`,
:mod:`.formats`); this module holds the Typer apps they register on and the
helpers that turn a bad setting, model or file into a message and an exit code.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from stream_scorer.errors import ConfigError, ModelError
from stream_scorer.scoring.model import ScoringModel, load_model
from stream_scorer.settings import Settings, load_settings

if TYPE_CHECKING:
    from stream_scorer.review import History

cli = typer.Typer(
    help="Real-time, explainable lead scoring on Kafka and Redis.",
    no_args_is_help=True,
    add_completion=False,
)
model_cli = typer.Typer(help="Work with scoring model files.", no_args_is_help=True)
alerts_cli = typer.Typer(help="Read the alerts topic.", no_args_is_help=True)
cli.add_typer(model_cli, name="model")
cli.add_typer(alerts_cli, name="alerts")


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def model_or_exit(path: Path) -> ScoringModel:
    try:
        return load_model(path)
    except ModelError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def conversions_or_exit(path: Path | None) -> dict[str, int] | None:
    from stream_scorer.errors import ConversionsError
    from stream_scorer.review import read_conversions

    if path is None:
        return None
    try:
        return read_conversions(path)
    except (ConversionsError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def instant_or_exit(value: str | None, option: str) -> int | None:
    from stream_scorer.errors import ConversionsError
    from stream_scorer.times import parse_time

    if value is None:
        return None
    try:
        return parse_time(value, option)
    except ConversionsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@contextmanager
def progress_bar(events: Path) -> Iterator[Callable[[int], None]]:
    """A progress bar over a file's bytes, on stderr (stdout stays for results)."""
    if not events.is_file():
        typer.echo(f"error: {events} is not a file", err=True)
        raise typer.Exit(2)
    size = events.stat().st_size
    with typer.progressbar(length=size, label=f"reading {events.name}", file=sys.stderr) as bar:
        done = 0

        def progress(position: int) -> None:
            nonlocal done
            bar.update(position - done)
            done = position

        yield progress


def print_rejected(counts: Mapping[str, int], examples: Sequence[str]) -> None:
    """Bad lines, and apart from them the events of types the model does not score."""
    unscored = counts.get("unknown_type", 0)
    bad = {reason: n for reason, n in counts.items() if reason != "unknown_type"}
    if unscored:
        typer.echo(f"{unscored} event(s) of types this model does not score: skipped", err=True)
    if bad:
        typer.echo(f"rejected {sum(bad.values())} line(s):", err=True)
        for reason, count in sorted(bad.items()):
            typer.echo(f"  {reason}: {count}", err=True)
        for line in examples:
            if "unknown_type" not in line:
                typer.echo(f"  {line}", err=True)


def history_or_exit(events: Path, model: ScoringModel) -> History:
    from stream_scorer.review import read_history

    with progress_bar(events) as progress:
        history = read_history(events, model, progress)
    print_rejected(history.rejected, [text for _, text in history.examples])
    return history
