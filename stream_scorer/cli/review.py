"""Commands of the monthly review: backtest, evaluate, tune, simulate (no Kafka, no Redis)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stream_scorer.cli.app import (
    cli,
    conversions_or_exit,
    history_or_exit,
    instant_or_exit,
    model_or_exit,
    print_rejected,
    progress_bar,
)
from stream_scorer.errors import ScorerError


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

    from stream_scorer.review import backtest_file

    model = model_or_exit(model_path)
    cutoff = instant_or_exit(as_of, "--as-of")
    converted = conversions_or_exit(conversions)
    started = time.perf_counter()
    try:
        with progress_bar(events) as progress:
            meta, examples = backtest_file(
                events, model, out, as_of=cutoff, conversions=converted,
                jobs=jobs, progress=progress,
            )  # fmt: skip
    except ScorerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    print_rejected(meta["rejected_by_reason"], examples)
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
    from stream_scorer.review import dump_model
    from stream_scorer.review import tune as fit
    from stream_scorer.scoring.model import read_document

    model = model_or_exit(model_path)
    converted = conversions_or_exit(conversions)
    assert converted is not None
    history = history_or_exit(events, model)
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
    from stream_scorer.review import evaluate as assess
    from stream_scorer.review import read_meta, read_scores, write_report

    converted = conversions_or_exit(conversions)
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
    from stream_scorer.review import simulate as generate

    if out.exists() and not out.is_dir():
        typer.echo(f"error: {out} is a file; --out is a directory", err=True)
        raise typer.Exit(2)
    result = generate(contacts, days, out, seed=seed)
    typer.echo(
        f"{result.contacts} contacts over {result.days} days: {result.events} events, "
        f"{result.conversions} conversions -> {out}"
    )
