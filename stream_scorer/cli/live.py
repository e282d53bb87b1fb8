"""Commands of the live path: run a worker, the demo, publish events, follow alerts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stream_scorer.cli.app import alerts_cli, cli, model_or_exit, settings_or_exit

if TYPE_CHECKING:
    from stream_scorer.settings import Settings


@cli.command()
def worker() -> None:
    """Run a scoring worker (configured by SCORER_* variables)."""
    import faust

    from stream_scorer.errors import ConfigError, ServiceRefused, ServiceUnavailable
    from stream_scorer.worker import collector
    from stream_scorer.worker.api import exposure_problem
    from stream_scorer.worker.app import create_app
    from stream_scorer.worker.startup import check_services

    settings = settings_or_exit()
    problem = exposure_problem(settings)
    if problem is not None:  # before any connection: an open API on the network is a config error
        typer.echo(f"error: invalid configuration: {problem}", err=True)
        raise typer.Exit(2)
    model = model_or_exit(settings.model_path)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        # Before ensure_topics: it connects to nothing, and it checks the address Faust binds.
        app = create_app(settings, model)
    except ConfigError as exc:
        loop.close()
        typer.echo(f"error: invalid configuration: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        loop.run_until_complete(check_services(settings))
    except (ServiceRefused, ServiceUnavailable) as exc:
        loop.close()
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    collector.tune()  # set up: from here on the heap is mostly contacts' states
    faust.Worker(app, loop=loop, loglevel=settings.log_level.lower()).execute_from_commandline()


def run_on_kafka(settings: Settings, main: Coroutine[Any, Any, None]) -> None:
    """Run ``main``; a Kafka it cannot use ends it with one line that names the setting.

    aiokafka reports a refused login or certificate as a failed bootstrap
    (with a traceback); the worker's diagnosis says which setting is wrong.
    """
    from aiokafka.errors import KafkaError

    from stream_scorer.connections.kafka import diagnose
    from stream_scorer.errors import ConfigError

    async def guarded() -> str | None:
        try:
            await main
        except KafkaError as exc:
            problem = await diagnose(settings)
            return problem.message if problem is not None else f"Kafka failed: {exc!r}"
        return None

    try:
        message = asyncio.run(guarded())
    except ConfigError as exc:  # a TLS file that does not load, read as the client starts
        typer.echo(f"error: invalid configuration: {exc}", err=True)
        raise typer.Exit(2) from None
    if message is not None:
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(1)


@cli.command()
def demo(
    contacts: Annotated[int, typer.Option(help="Synthetic contacts.", min=1)] = 300,
    rate: Annotated[float, typer.Option(help="Events per second.", min=1)] = 200.0,
    duration: Annotated[
        float | None,
        typer.Option(help="Stop after this many seconds (default: Ctrl-C).", min=0.1),
    ] = None,
    model_path: Annotated[
        Path | None,
        typer.Option(
            "--model",
            help="Model file (default: config/scoring.yaml; with --produce-only, "
            "SCORER_MODEL_PATH).",
        ),
    ] = None,
    produce_only: Annotated[
        bool,
        typer.Option(
            help="Only publish the synthetic stream, to the Kafka of SCORER_KAFKA_* (a running "
            "system's, e.g. deploy/compose.yaml's): no local services, no worker."
        ),
    ] = False,
) -> None:
    """Start Kafka, Redis, a worker and a synthetic producer; print alerts as they arrive."""
    from stream_scorer.dev.demo import produce, run_demo

    if produce_only:
        settings = settings_or_exit()
        model = model_or_exit(model_path or settings.model_path)
        typer.echo(
            f"publishing {rate:g} events/s for {contacts} contacts to {settings.events_topic}"
        )

        with contextlib.suppress(KeyboardInterrupt):
            run_on_kafka(settings, produce(settings, model, contacts, rate, duration))
        raise typer.Exit(0)
    model_path = model_path or Path("config/scoring.yaml")
    model = model_or_exit(model_path)
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

    Exit 0 when every event was sent, 1 when some were rejected (the rest are sent) or
    when Kafka could not be used (one line says why; events already acknowledged stay).
    """
    from collections import Counter

    from stream_scorer.client import EventProducer
    from stream_scorer.errors import InvalidEvent
    from stream_scorer.event_files import read_events

    settings = settings_or_exit()
    if not file.is_file():
        typer.echo(f"error: {file} is not a file", err=True)
        raise typer.Exit(2)
    reasons: Counter[str] = Counter()
    examples: list[str] = []
    sent = 0

    async def run() -> None:
        nonlocal sent
        target = topic or settings.events_topic
        async with EventProducer.from_settings(settings, target) as producer:
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

    run_on_kafka(settings, run())
    rejected = sum(reasons.values())
    typer.echo(f"sent {sent}, rejected {rejected}")
    for reason, count in sorted(reasons.items()):
        typer.echo(f"  {reason}: {count}")
    for line in examples:
        typer.echo(line)
    raise typer.Exit(1 if rejected else 0)


@alerts_cli.command("tail")
def alerts_tail(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON alert per line.")] = False,
    from_beginning: Annotated[bool, typer.Option(help="Start at the oldest alert.")] = False,
) -> None:
    """Follow the alerts topic and print alerts as they come."""
    from stream_scorer.alerts import format_alert
    from stream_scorer.client import tail_alerts

    settings = settings_or_exit()

    async def run() -> None:
        async for alert in tail_alerts(settings, from_beginning=from_beginning):
            line = json.dumps(alert.model_dump(mode="json")) if as_json else format_alert(alert)
            print(line, flush=True)

    try:
        run_on_kafka(settings, run())
    except KeyboardInterrupt:
        sys.exit(0)
