"""The ``stream-scorer`` command line."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from stream_scorer.errors import ConfigError, ModelError
from stream_scorer.model import ScoringModel, load_model
from stream_scorer.settings import Settings, load_settings

cli = typer.Typer(
    help="Real-time, explainable lead scoring on Kafka and Redis.",
    no_args_is_help=True,
    add_completion=False,
)
model_cli = typer.Typer(help="Work with scoring model files.", no_args_is_help=True)
alerts_cli = typer.Typer(help="Read the alerts topic.", no_args_is_help=True)
cli.add_typer(model_cli, name="model")
cli.add_typer(alerts_cli, name="alerts")


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _model(path: Path) -> ScoringModel:
    try:
        return load_model(path)
    except ModelError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@cli.command()
def worker() -> None:
    """Run a scoring worker (configured by SCORER_* variables)."""
    import faust

    from stream_scorer.app import create_app
    from stream_scorer.topics import ensure_topics

    settings = _settings()
    model = _model(settings.model_path)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(ensure_topics(settings))
    app = create_app(settings, model)
    faust.Worker(app, loop=loop, loglevel=settings.log_level.lower()).execute_from_commandline()


@cli.command()
def demo(
    contacts: Annotated[int, typer.Option(help="Synthetic contacts.", min=1)] = 300,
    rate: Annotated[float, typer.Option(help="Events per second.", min=1)] = 200.0,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: Ctrl-C).")
    ] = None,
    model_path: Annotated[Path, typer.Option("--model", help="Model file.")] = Path(
        "config/scoring.yaml"
    ),
) -> None:
    """Start Kafka, Redis, a worker and a synthetic producer; print alerts as they arrive."""
    from stream_scorer.demo import run_demo

    model = _model(model_path)
    try:
        code = run_demo(model_path, model, contacts=contacts, rate=rate, duration=duration)
    except KeyboardInterrupt:
        code = 130
    raise typer.Exit(code)


@cli.command()
def produce(
    file: Annotated[Path, typer.Argument(help="Events as JSON Lines (.jsonl) or CSV (.csv).")],
    topic: Annotated[
        str | None, typer.Option(help="Topic to publish to (default: SCORER_EVENTS_TOPIC).")
    ] = None,
) -> None:
    """Validate and publish an event file, keyed by contact; print what was rejected and why.

    Exit 0 when every event was sent, 1 when some were rejected (the rest are sent).
    """
    from collections import Counter

    from stream_scorer.client import EventProducer, read_events
    from stream_scorer.errors import InvalidEvent

    settings = _settings()
    if not file.is_file():
        typer.echo(f"error: {file} is not a file", err=True)
        raise typer.Exit(2)
    reasons: Counter[str] = Counter()
    examples: list[str] = []
    sent = 0

    async def run() -> None:
        nonlocal sent
        target = topic or settings.events_topic
        async with EventProducer(settings.kafka_bootstrap_servers, target) as producer:
            pending = []
            with file.open("rb") as handle:
                lines = sum(1 for _ in handle)
            with typer.progressbar(length=lines, label=f"producing to {target}") as bar:
                done = 0
                for number, item in read_events(file):
                    bar.update(number - done)
                    done = number
                    if isinstance(item, InvalidEvent):
                        reasons[item.reason] += 1
                        if len(examples) < 10:
                            examples.append(f"  line {number}: {item.reason}: {item.detail}")
                        continue
                    pending.append(await producer.enqueue(item))
                await asyncio.gather(*pending)
                bar.update(lines - done)
            sent = len(pending)

    asyncio.run(run())
    rejected = sum(reasons.values())
    typer.echo(f"sent {sent}, rejected {rejected}")
    for reason, count in sorted(reasons.items()):
        typer.echo(f"  {reason}: {count}")
    for line in examples:
        typer.echo(line)
    raise typer.Exit(1 if rejected else 0)


class SchemaKind(StrEnum):
    events = "events"
    alerts = "alerts"


def json_schema(kind: SchemaKind) -> str:
    """The JSON Schema of the event or the alert, as committed under docs/schemas/."""
    from stream_scorer.events import Alert, Event

    model = Event if kind is SchemaKind.events else Alert
    return json.dumps(model.model_json_schema(mode="validation"), indent=2) + "\n"


@cli.command()
def schema(kind: Annotated[SchemaKind, typer.Argument(help="Which wire format.")]) -> None:
    """Print the JSON Schema of events (what producers send) or alerts (what consumers get)."""
    sys.stdout.write(json_schema(kind))


@model_cli.command("check")
def model_check(
    files: Annotated[list[Path], typer.Argument(help="Model files to validate.")],
) -> None:
    """Validate model files; print every problem with its place; exit 1 if any."""
    failed = False
    for path in files:
        try:
            model = load_model(path)
        except ModelError as exc:
            failed = True
            typer.echo(f"{path}: invalid", err=True)
            for problem in exc.problems:
                typer.echo(f"  {problem}", err=True)
            continue
        typer.echo(f"{path}: ok ({model.name} v{model.version}, {len(model.spec.rules)} rules)")
    raise typer.Exit(1 if failed else 0)


@alerts_cli.command("tail")
def alerts_tail(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON alert per line.")] = False,
    from_beginning: Annotated[bool, typer.Option(help="Start at the oldest alert.")] = False,
) -> None:
    """Follow the alerts topic and print alerts as they come."""
    from stream_scorer.alerts import format_alert, tail_alerts

    settings = _settings()

    async def run() -> None:
        async for alert in tail_alerts(settings, from_beginning=from_beginning):
            line = json.dumps(alert.model_dump(mode="json")) if as_json else format_alert(alert)
            print(line, flush=True)

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        sys.exit(0)


def main() -> None:
    cli()
