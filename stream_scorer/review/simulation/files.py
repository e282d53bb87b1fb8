"""``stream-scorer simulate``: a simulated history written as the files the review reads."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from stream_scorer.review.simulation.history import draw_history
from stream_scorer.times import format_ms


@dataclass(frozen=True)
class Simulation:
    """What :func:`simulate` wrote, for the caller to report."""

    contacts: int
    days: int
    events: int
    conversions: int
    seed: int
    events_path: Path
    conversions_path: Path
    contacts_path: Path

    @property
    def paths(self) -> tuple[Path, Path, Path]:
        return (self.events_path, self.conversions_path, self.contacts_path)


#: The columns of ``contacts.csv``.
CONTACT_COLUMNS = (
    "contact_id",
    "propensity",
    "converted_at",
    "email",
    "job_title",
    "seniority",
    "department",
    "company",
    "company_size",
    "industry",
    "country",
    "budget_confirmed",
    "is_competitor",
)


def simulate(
    contacts: int, days: int, out: Path, *, seed: int = 0, start: datetime | None = None
) -> Simulation:
    """Write ``events.jsonl``, ``conversions.csv`` and ``contacts.csv`` into ``out``.

    ``events.jsonl`` is what a producer would send, in time order;
    ``conversions.csv`` is the outcome that backtests and tuning read;
    ``contacts.csv`` is the hidden truth (propensity, conversion, final
    attributes) for checking what a model learned.
    """
    history = draw_history(contacts, days, seed, start)
    out.mkdir(parents=True, exist_ok=True)
    events_path = out / "events.jsonl"
    conversions_path = out / "conversions.csv"
    contacts_path = out / "contacts.csv"
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    # Ids and types are this module's own plain strings; properties objects are often
    # shared (one per URL, one per campaign), so each is encoded once.
    encoded: dict[int, str] = {}
    with events_path.open("w", encoding="utf-8", newline="\n") as handle:
        for n, (t, _, contact, type_, props) in enumerate(history.events):
            body = encoded.get(id(props))
            if body is None:
                body = encoded[id(props)] = dumps(props)
            handle.write(
                f'{{"event_id":"sim{seed}-{n:08d}","contact_id":"{contact}","type":"{type_}",'
                f'"occurred_at":"{format_ms(t)}","properties":{body}}}\n'
            )
    with conversions_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("contact_id", "converted_at"))
        for contact, at in sorted(history.conversions.items(), key=lambda c: (c[1], c[0])):
            writer.writerow((contact, format_ms(at)))
    with contacts_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(CONTACT_COLUMNS)
        for truth in history.contacts:
            attrs = truth.attributes
            converted = "" if truth.converted_at is None else format_ms(truth.converted_at)
            writer.writerow(
                (
                    truth.contact_id,
                    f"{truth.propensity:.6f}",
                    converted,
                    *(_cell(attrs.get(column)) for column in CONTACT_COLUMNS[3:]),
                )
            )
    return Simulation(
        contacts=contacts,
        days=days,
        events=len(history.events),
        conversions=len(history.conversions),
        seed=seed,
        events_path=events_path,
        conversions_path=conversions_path,
        contacts_path=contacts_path,
    )


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
