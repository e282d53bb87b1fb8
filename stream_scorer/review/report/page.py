"""The report page: the sections in order, how to read them, and the files written."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stream_scorer.review.evaluation.lift import SMALL_SAMPLE
from stream_scorer.review.report.charts import bands_svg, histogram_svg, roc_svg
from stream_scorer.review.report.style import (
    CONVERTER,
    CSS,
    NON_CONVERTER,
    auc_verdict,
    e,
    num,
    pct,
    ratio3,
)
from stream_scorer.review.report.tables import (
    card,
    outlier_table,
    rules_table,
    threshold_rows,
    threshold_summary,
)

METHOD = f"""
<dl>
<dt>Point in time</dt>
<dd>Each contact is scored as of the backtest time. Contacts who converted at or before it are
left out: their scores may include what they did after converting, which cannot explain it.
Converters with no events at all count as converters with the minimum score.</dd>
<dt>AUC</dt>
<dd>The chance that a random converter scores higher than a random non-converter (ties count
half): 0.5 is a coin toss, 1.0 a perfect ranking.</dd>
<dt>Bands and distribution</dt>
<dd>Ten equal-width bands over the score's range, so they line up with thresholds and compare
from month to month. The distribution shows each group as shares of itself. The ROC curve
and AUC rank every contact by score alone, gates aside.</dd>
<dt>Thresholds</dt>
<dd>A contact is above a threshold when its score is at or above it and it passes every gate
(as a tier would put it in front of sales). Precision: converters among those above. Recall:
converters above among all converters. F1: their harmonic mean. Lift: precision over the
overall conversion rate. The suggested threshold is the score with the best F1 (on a tie, the
higher). Youden J (recall minus false-positive rate) weighs recall against
non-converters flagged instead of precision.</dd>
<dt>Rule lift</dt>
<dd>Conversion rate of contacts with a live award of the rule, over the overall rate. Above
1\N{MULTIPLICATION SIGN} the rule goes with conversion. Rules whose points and lift disagree
(positive points with lift below 1, negative points with lift above 1) are marked "check
weight". Lift is correlation, not cause; rules with fewer than {SMALL_SAMPLE} contacts are
marked "few contacts".</dd>
</dl>
"""


def render_html(report: Mapping[str, Any]) -> str:
    """One self-contained HTML page for an evaluation report."""
    model = report["model"]
    score = report["score"]
    counts = report["counts"]
    averages = report["averages"]
    auc = report["roc"]["auc"]
    model_name = f"{model['name']} v{model['version']}" if model.get("version") else model["name"]
    title = f"Conversion report \N{EM DASH} {model_name} \N{MIDDLE DOT} {score['name']}"
    excluded = counts["excluded_converted_before_as_of"]
    rowless = counts["conversions_without_scores_included"]
    cards = "".join(
        [
            card(
                "Contacts",
                num(counts["contacts"]),
                f"{e(num(excluded))} excluded (converted before)",
            ),
            card(
                "Converters",
                num(counts["converters"]),
                f"{e(num(rowless))} with no events",
                "conv",
            ),
            card(
                "Conversion rate",
                pct(counts["conversion_rate"]),
                f"{e(num(counts['non_converters']))} non-converters",
            ),
            card("AUC", ratio3(auc), e(auc_verdict(auc))),
            card(
                "Avg score, converters",
                num(averages["converters"]),
                f"median {e(num(averages['median_converters']))}",
                "conv",
            ),
            card(
                "Avg score, non-converters",
                num(averages["non_converters"]),
                f"median {e(num(averages['median_non_converters']))}",
            ),
        ]
    )
    notes = report.get("notes") or []
    notes_html = (
        '<div class="notes" id="notes"><ul>'
        + "".join(f"<li>{e(n)}</li>" for n in notes)
        + "</ul></div>"
        if notes
        else ""
    )
    legend = (
        f'<div class="legend"><span><i style="background:{CONVERTER};opacity:.9"></i>'
        f"Converters ({e(num(counts['converters']))})</span>"
        f'<span><i style="background:{NON_CONVERTER};opacity:.6"></i>'
        f"Non-converters ({e(num(counts['non_converters']))})</span></div>"
    )
    outliers = report["outliers"]
    meta = (
        f"<span>model {e(model_name)}</span><span>score {e(score['name'])} "
        f"({e(num(score['min']))}\N{EN DASH}{e(num(score['max']))})</span>"
        f"<span>as of {e(report['as_of'])}</span>"
        f"<span>point in time: {e(report['point_in_time'])}</span>"
    )
    backtest = report.get("backtest") or {}
    replayed = backtest.get("applied", backtest.get("events"))
    if isinstance(replayed, int):
        meta += f"<span>{e(num(replayed))} events replayed</span>"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title>
<style>{CSS}</style>
</head>
<body>
<header><h1>{e(title)}</h1><div class="meta">{meta}</div></header>
<main>
<div class="cards" id="summary">{cards}</div>
{notes_html}
<div class="grid two">
<section id="distribution"><h2>Score distribution</h2>
<p class="lede">Share of each group per score range; converters should sit to the right.</p>
{legend}{histogram_svg(report)}</section>
<section id="roc"><h2>ROC curve</h2>
<p class="lede">Recall against false-positive rate as the threshold falls.</p>
{roc_svg(report)}</section>
</div>
<div class="grid rev">
<section id="bands"><h2>Conversion rate by score band</h2>
<p class="lede">Higher bands should convert more. Dashed line: the overall rate
({e(pct(counts["conversion_rate"]))}); paler bars have fewer than {SMALL_SAMPLE} contacts.</p>
{bands_svg(report)}</section>
<section id="thresholds"><h2>Thresholds</h2>
{threshold_summary(report)}{threshold_rows(report)}
<p class="lede" style="margin-top:10px">Counted above a threshold: contacts at or above it that
pass every gate, as a tier would hand them to sales.</p></section>
</div>
<div class="grid">
<section id="lowest-converters"><h2>Lowest-scoring converters</h2>
<p class="lede">Converted, yet scored low: missing or under-weighted rules?</p>
{outlier_table(outliers["lowest_converters"], converters=True)}</section>
<section id="highest-non-converters"><h2>Highest-scoring non-converters</h2>
<p class="lede">Scored high, did not convert: over-weighted rules or bots?</p>
{outlier_table(outliers["highest_non_converters"], converters=False)}</section>
</div>
<section id="rules" style="margin-bottom:16px"><h2>Rule lift</h2>
<p class="lede">Conversion rate with a live award of each rule, relative to the overall
{e(pct(counts["conversion_rate"]))}.</p>
{rules_table(report)}</section>
<section id="method" class="method"><h2>How to read this report</h2>{METHOD}</section>
</main>
<footer>stream-scorer conversion report \N{MIDDLE DOT} report version {e(report["report_version"])}
</footer>
</body>
</html>
"""


def write_report(report: Mapping[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write ``report.json`` (indented, sorted keys) and ``report.html`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "report.json"
    html_path = out_dir / "report.html"
    json_path.write_text(
        json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n",
        encoding="utf-8",
    )
    html_path.write_text(render_html(report), encoding="utf-8")
    return json_path, html_path
