"""Commands about files and formats: validate model files, print the wire formats' schemas."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from stream_scorer.cli.app import cli, model_cli
from stream_scorer.errors import ModelError
from stream_scorer.scoring.model import load_model


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
