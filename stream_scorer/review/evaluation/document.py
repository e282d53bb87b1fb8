"""The evaluation itself: ``report.json``, assembled from the rows, conversions and model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import median
from typing import Any

from stream_scorer.errors import EvaluationError
from stream_scorer.review.evaluation.contacts import Contact
from stream_scorer.review.evaluation.lift import rule_lift
from stream_scorer.review.evaluation.outliers import OUTLIERS, outlier
from stream_scorer.review.evaluation.ranking import (
    Band,
    Bin,
    Bins,
    TierCut,
    auc,
    best_f1,
    best_youden,
    cut_at,
    number_text,
    ratio,
    roc,
    sweep,
)
from stream_scorer.review.evaluation.score_files import ScoreRow, check_meta, time_ms

#: The ``report.json`` layout; bump when a key changes meaning.
REPORT_VERSION = 1
#: Conversion-rate bands: equal-width over the score's [min, max], so they line
#: up with thresholds and compare month to month (quantile bands move).
BANDS = 10
#: Histogram bins per group, over the same range.
HISTOGRAM_BINS = 20


def _mean(values: Sequence[float]) -> float | None:
    return None if not values else round(sum(values) / len(values), 4)


def _median(values: Sequence[float]) -> float | None:
    return None if not values else median(values)


def _pick_score(meta: Mapping[str, Any], score: str | None) -> tuple[str, dict[str, Any]]:
    scores: dict[str, Any] = meta["scores"]
    if score is None:
        score = next(iter(scores))
    if score not in scores:
        raise EvaluationError(
            f"the model has no score {score!r} (it has {', '.join(sorted(scores))})"
        )
    spec: dict[str, Any] = scores[score]
    return score, spec


def evaluate(
    rows: Sequence[ScoreRow],
    conversions: Mapping[str, int],
    meta: Mapping[str, Any],
    score: str | None = None,
) -> dict[str, Any]:
    """The ``report.json`` document for one score (default: the model's first).

    ``conversions`` maps contact id to conversion time in epoch ms. Contacts
    absent from it did not convert. Contacts that converted at or before
    their row's ``as_of`` are excluded (point in time). Converters with no
    row had no events at all: they are included as converters with the
    score's minimum and no awards (a contact with no history has the minimum
    score, and leaving them out would overstate recall), unless they too
    converted at or before the ``as_of`` their row would have had.
    """
    meta = check_meta(dict(meta), "backtest.json")
    name, spec = _pick_score(meta, score)
    low, high = spec["min"], spec["max"]
    pit = meta.get("point_in_time", "as_of")
    as_of_ms = time_ms(meta["as_of"], "backtest.json: as_of")
    rules = {rid: r for rid, r in meta.get("rules", {}).items() if r["score"] == name}

    contacts: list[Contact] = []
    excluded = excluded_rowless = 0
    seen: set[str] = set()
    for row in rows:
        seen.add(row.contact_id)
        if name not in row.scores:
            raise EvaluationError(
                f"scores.jsonl:{row.line}: contact {row.contact_id!r} has no {name!r} score"
            )
        converted_at = conversions.get(row.contact_id)
        if converted_at is not None and converted_at <= row.as_of_ms:
            excluded += 1
            continue
        contacts.append(
            Contact(
                contact_id=row.contact_id,
                value=row.scores[name],
                converted_at=converted_at,
                gates_passed=(row.gates_passed_by_score or {}).get(name, row.gates_passed),
                awards=tuple(
                    a
                    for a in row.awards
                    if (a.score or meta.get("rules", {}).get(a.rule, {}).get("score")) == name
                ),
                as_of=row.as_of,
                display=(row.display or {}).get(name),
                tiers=(row.tiers or {}).get(name, ()),
            )
        )
    rowless = sorted(c for c in conversions if c not in seen)
    first = meta.get("first_event_at")
    history_starts = time_ms(first, "backtest.json: first_event_at") if first else None
    before_history = 0
    for contact in rowless:
        converted_at = conversions[contact]
        # The as_of its row would have had: the backtest's, or just before converting.
        implicit = converted_at - 1 if pit == "before_conversion" else as_of_ms
        if converted_at <= implicit:
            excluded_rowless += 1
            continue
        if history_starts is not None and converted_at <= history_starts:
            before_history += 1  # a customer before the history: nothing can explain it
            continue
        contacts.append(
            Contact(
                contact_id=contact,
                value=low,
                converted_at=converted_at,
                gates_passed=None,  # no attributes, so the gates are unknown
                awards=(),
                as_of=None,
                no_history=True,
            )
        )

    if high is None:  # an open-ended score: span what was observed
        high = max([low + 1, *(c.value for c in contacts)])
    pos = [c.value for c in contacts if c.converted]
    neg = [c.value for c in contacts if not c.converted]
    n_pos, n_neg = len(pos), len(neg)
    integral = all(float(v).is_integer() for v in (low, high, *pos, *neg))

    hist_bins = Bins.over(low, high, HISTOGRAM_BINS, integral)
    histogram: list[Bin] = [
        {"label": lab, "low": lo, "high": hi, "converters": 0, "non_converters": 0}
        for lo, hi, lab in hist_bins.edges()
    ]
    band_bins = Bins.over(low, high, BANDS, integral)
    band_edges = band_bins.edges()
    band_counts = [[0, 0] for _ in band_edges]
    for c in contacts:
        bin_ = histogram[hist_bins.index(c.value)]
        if c.converted:
            bin_["converters"] += 1
        else:
            bin_["non_converters"] += 1
        counts = band_counts[band_bins.index(c.value)]
        counts[0] += 1
        counts[1] += c.converted
    bands: list[Band] = [
        {
            "label": lab,
            "low": lo,
            "high": hi,
            "contacts": n,
            "converters": k,
            "conversion_rate": ratio(k, n),
        }
        for (lo, hi, lab), (n, k) in zip(band_edges, band_counts, strict=True)
    ]

    tiers: list[TierCut] = []
    for t in spec.get("thresholds", []):
        cut = cut_at(contacts, t["at"], n_pos, n_neg)
        tiers.append({**cut, "name": t["name"], "rearm_below": t.get("rearm_below")})
    cuts = sweep(contacts, n_pos, n_neg)

    # Ties: contacts with history first (their awards can be read), then by id.
    lowest = sorted(
        (c for c in contacts if c.converted), key=lambda c: (c.value, c.no_history, c.contact_id)
    )
    highest = sorted(
        (c for c in contacts if not c.converted), key=lambda c: (-c.value, c.contact_id)
    )
    gated_out = [c for c in contacts if c.gates_passed is False]

    notes: list[str] = []
    if excluded or excluded_rowless:
        notes.append(
            f"{excluded + excluded_rowless} contact(s) converted at or before their as_of and "
            "are left out: a score computed after a conversion may include what the contact "
            "did after converting, so it cannot count as a prediction."
        )
    included_rowless = len(rowless) - excluded_rowless - before_history
    if before_history:
        notes.append(
            f"{before_history} contact(s) converted before the history starts and have no "
            "events before converting: they are left out."
        )
    if included_rowless:
        notes.append(
            f"{included_rowless} converter(s) have no score row (no events at all): they are "
            f"counted as converters with the minimum score ({number_text(low)}) and no awards."
        )
    if not n_pos and (excluded or excluded_rowless):
        notes.append(
            "No converter is left: every one converted at or before the scores' as_of. "
            "Backtest with --conversions (score each just before converting) or an "
            "earlier --as-of."
        )
    if not n_pos or not n_neg:
        notes.append("AUC and ROC need at least one converter and one non-converter.")
    if gated_out:
        notes.append(
            f"{len(gated_out)} contact(s) fail a gate and never reach a tier; "
            f"{sum(c.converted for c in gated_out)} of them converted."
        )
    if len(meta["scores"]) > 1 and score is None:
        notes.append(f"The model has several scores; this report evaluates {name!r}.")

    return {
        "report_version": REPORT_VERSION,
        "model": {"name": meta["model"], "version": meta.get("model_version")},
        "score": {
            "name": name,
            "min": low,
            "max": high,
            "thresholds": list(spec.get("thresholds", [])),
        },
        "as_of": meta["as_of"],
        "point_in_time": pit,
        "backtest": {k: meta.get(k) for k in ("events", "applied", "rejected", "contacts")},
        "counts": {
            "rows": len(rows),
            "contacts": len(contacts),
            "converters": n_pos,
            "non_converters": n_neg,
            "conversion_rate": ratio(n_pos, len(contacts)),
            "excluded_converted_before_as_of": excluded + excluded_rowless,
            "conversions_without_scores": len(rowless),
            "conversions_without_scores_included": included_rowless,
            "excluded_converted_before_history": before_history,
            "gated_out": len(gated_out),
            "gated_out_converters": sum(c.converted for c in gated_out),
        },
        "averages": {
            "converters": _mean(pos),
            "non_converters": _mean(neg),
            "median_converters": _median(pos),
            "median_non_converters": _median(neg),
        },
        "distribution": {"bins": histogram},
        "roc": {
            "auc": round(auc(pos, neg), 6) if pos and neg else None,
            "points": roc(pos, neg) if pos and neg else [],
        },
        "bands": bands,
        "thresholds": tiers,
        "suggested_threshold": best_f1(cuts),
        "youden_threshold": best_youden(cuts),
        "outliers": {
            "lowest_converters": [outlier(c) for c in lowest[:OUTLIERS]],
            "highest_non_converters": [outlier(c) for c in highest[:OUTLIERS]],
        },
        "rules": rule_lift(contacts, rules, n_pos),
        "notes": notes,
    }
