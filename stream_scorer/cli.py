"""The ``stream-scorer`` command line."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from stream_scorer.errors import ConfigError, ModelError, ScorerError
from stream_scorer.scoring.model import ScoringModel, load_model
from stream_scorer.settings import Settings, load_settings

if TYPE_CHECKING:
    from stream_scorer.review.backtest import History

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

    from stream_scorer.worker.app import create_app
    from stream_scorer.worker.topics import ensure_topics

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
    from stream_scorer.dev.demo import run_demo

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

    from stream_scorer.client import EventProducer
    from stream_scorer.errors import InvalidEvent
    from stream_scorer.event_files import read_events

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


def _conversions(path: Path | None) -> dict[str, int] | None:
    from stream_scorer.errors import ConversionsError
    from stream_scorer.review.conversions import read_conversions

    if path is None:
        return None
    try:
        return read_conversions(path)
    except (ConversionsError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _instant(value: str | None, option: str) -> int | None:
    from stream_scorer.errors import ConversionsError
    from stream_scorer.times import parse_time

    if value is None:
        return None
    try:
        return parse_time(value, option)
    except ConversionsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _progress_bar(events: Path) -> Iterator[Callable[[int], None]]:
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


def _rejected(counts: Mapping[str, int], examples: Sequence[str]) -> None:
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


def _history(events: Path, model: ScoringModel) -> History:
    from stream_scorer.review.backtest import read_history

    with contextmanager(_progress_bar)(events) as progress:
        history = read_history(events, model, progress)
    _rejected(history.rejected, [text for _, text in history.examples])
    return history


@cli.command()
def backtest(
    model_path: Annotated[Path, typer.Option("--model", help="Model file.")],
    events: Annotated[Path, typer.Option(help="Event history: JSON Lines (.jsonl) or CSV.")],
    out: Annotated[Path, typer.Option(help="Directory for scores.jsonl and alerts.jsonl.")],
    as_of: Annotated[
        str | None,
        typer.Option(help="Score as of this RFC 3339 time (default: the last event's time)."),
    ] = None,
    conversions: Annotated[
        Path | None,
        typer.Option(help="contact_id,converted_at file: score converters just before converting."),
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(help="Processes sharing the contacts: up to one per CPU core.", min=1),
    ] = 1,
) -> None:
    """Replay history through a model (no Kafka, no Redis) and write each contact's scores.

    Writes DIR/scores.jsonl (one contact per line, with the awards that explain
    its scores), DIR/alerts.jsonl (every crossing, as the live path publishes
    it) and DIR/backtest.json (the run's summary).
    """
    import time

    from stream_scorer.review.backtest import backtest_file

    model = _model(model_path)
    cutoff = _instant(as_of, "--as-of")
    converted = _conversions(conversions)
    started = time.perf_counter()
    try:
        with contextmanager(_progress_bar)(events) as progress:
            meta, examples = backtest_file(
                events, model, out, as_of=cutoff, conversions=converted,
                jobs=jobs, progress=progress,
            )  # fmt: skip
    except ScorerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    _rejected(meta["rejected_by_reason"], examples)
    took = time.perf_counter() - started
    rate = meta["events"] / took if took > 0 else 0.0
    typer.echo(
        f"{meta['applied']} events applied ({meta['rejected']} rejected), "
        f"{meta['contacts']} contacts, {meta['alerts']} alerts as of {meta['as_of']} "
        f"in {took:.1f} s ({rate:,.0f} events/s) -> {out}"
    )


@cli.command()
def tune(
    model_path: Annotated[Path, typer.Option("--model", help="The model to re-weight.")],
    events: Annotated[Path, typer.Option(help="Event history: JSON Lines (.jsonl) or CSV.")],
    conversions: Annotated[Path, typer.Option(help="contact_id,converted_at (CSV or JSONL).")],
    out: Annotated[Path, typer.Option(help="Where to write the tuned model (YAML).")],
    holdout: Annotated[
        float,
        typer.Option(help="Share of contacts held out to compare old and new.", min=0.05, max=0.9),
    ] = 0.3,
    l2: Annotated[
        float,
        typer.Option(help="L2 penalty of the logistic regression (above 0).", min=1e-6),
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the held-out split.")] = 0,
) -> None:
    """Fit new points for the model's rules from history and conversions; write a new model.

    Rules keep their conditions, expiry, caps and once/frequency settings; only
    points (and caps given in points) change, scaled to the score's range, and
    thresholds move so each tier keeps its share of contacts. Prints the
    held-out AUC of the old and the new model.
    """
    from stream_scorer.review.tune import dump_model
    from stream_scorer.review.tune import tune as fit
    from stream_scorer.scoring.model import read_document

    model = _model(model_path)
    converted = _conversions(conversions)
    assert converted is not None
    history = _history(events, model)
    document = read_document(model_path.read_text(encoding="utf-8"))
    try:
        tuning = fit(
            model, document, history.events, history.times, converted,
            holdout=holdout, seed=seed, l2=l2,
        )  # fmt: skip
    except ScorerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(dump_model(tuning, events.name))
    for report in tuning.scores:
        typer.echo(
            f"{report.score}: trained on {report.train} contacts, held out {report.test} "
            f"({report.test_converters} converted)"
        )
        typer.echo(f"  {'rule':<24} {'old':>5} {'new':>5}  weight (log-odds per award)")
        for rule, old, new, weight in zip(
            report.rules, report.old_points, report.new_points, report.weights, strict=True
        ):
            typer.echo(f"  {rule:<24} {old:>5} {new:>5}  {weight:+.3f}")
        if report.unseen:
            typer.echo(f"  kept (no contact earned them): {', '.join(report.unseen)}")
        for name, old_at, new_at in report.thresholds:
            typer.echo(f"  threshold {name}: {old_at} -> {new_at} (same share of contacts)")
        typer.echo(
            f"  held-out AUC: old {report.auc_old:.3f}, new {report.auc_new:.3f} "
            f"({report.auc_new - report.auc_old:+.3f})"
        )
    typer.echo(f"wrote {out}")


@cli.command()
def evaluate(
    scores: Annotated[Path, typer.Option(help="scores.jsonl written by backtest.")],
    conversions: Annotated[Path, typer.Option(help="contact_id,converted_at (CSV or JSONL).")],
    out: Annotated[Path, typer.Option(help="Directory for report.json and report.html.")],
    score: Annotated[
        str | None, typer.Option(help="Which score (default: the model's first).")
    ] = None,
    meta: Annotated[
        Path | None, typer.Option(help="backtest.json (default: next to the scores file).")
    ] = None,
) -> None:
    """How well scores predicted conversions: report.json and a self-contained report.html."""
    from stream_scorer.review.evaluate import evaluate as assess
    from stream_scorer.review.evaluate import read_meta, read_scores
    from stream_scorer.review.report import write_report

    converted = _conversions(conversions)
    assert converted is not None
    try:
        rows = read_scores(scores)
        summary = read_meta(meta or scores.with_name("backtest.json"))
        report = assess(rows, converted, summary, score)
    except (ScorerError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    json_path, html_path = write_report(report, out)
    typer.echo(f"wrote {json_path} and {html_path}")
    counts = report["counts"]
    if not counts["converters"] or not counts["non_converters"]:
        for note in report["notes"]:
            typer.echo(f"warning: {note}", err=True)
        raise typer.Exit(1)  # a report that cannot rank anything is not a result


@cli.command()
def simulate(
    contacts: Annotated[int, typer.Option(help="How many contacts.", min=1)] = 10_000,
    days: Annotated[int, typer.Option(help="How many days of history.", min=1)] = 180,
    out: Annotated[
        Path, typer.Option(help="Directory for events.jsonl and conversions.csv.")
    ] = Path("simulated"),
    seed: Annotated[int, typer.Option(help="Same seed, same files.")] = 0,
) -> None:
    """Generate synthetic engagement histories with hidden propensities and conversions."""
    from stream_scorer.review.simulate import simulate as generate

    if out.exists() and not out.is_dir():
        typer.echo(f"error: {out} is a file; --out is a directory", err=True)
        raise typer.Exit(2)
    result = generate(contacts, days, out, seed=seed)
    typer.echo(
        f"{result.contacts} contacts over {result.days} days: {result.events} events, "
        f"{result.conversions} conversions -> {out}"
    )


class SchemaKind(StrEnum):
    events = "events"
    alerts = "alerts"


def json_schema(kind: SchemaKind) -> str:
    """The JSON Schema of the event or the alert, as committed under docs/schemas/."""
    from stream_scorer.alerts import Alert
    from stream_scorer.events import Event

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
    from stream_scorer.alerts import format_alert
    from stream_scorer.client import tail_alerts

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
