"""The conversion report as one self-contained HTML page (and its JSON).

Marketing ops read it once a month, often offline or as an e-mail
attachment, so the page carries everything inline: CSS and SVG charts, no
scripts, fonts, images or network requests (a Content-Security-Policy makes
the browser refuse any that slip in). Every value from the data is escaped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from stream_scorer.review.evaluate import SMALL_SAMPLE

CONVERTER = "#2563eb"
NON_CONVERTER = "#94a3b8"
GOOD = "#15803d"
BAD = "#b42318"
INK = "#1d2330"
MUTED = "#5a6275"
GRID = "#e5e8ee"

CSS = """
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
  background: #f3f4f7; color: #1d2330; }
header { background: #1d2330; color: #fff; padding: 20px 32px 18px; }
header h1 { font-size: 22px; margin: 0 0 4px; font-weight: 600; }
header .meta { opacity: .75; font-size: 13px; }
header .meta span + span::before { content: "·"; margin: 0 8px; opacity: .6; }
main { max-width: 1240px; margin: 0 auto; padding: 20px 24px 32px; }
section { background: #fff; border-radius: 10px; padding: 16px 20px;
  box-shadow: 0 1px 2px rgba(16,24,40,.06), 0 1px 3px rgba(16,24,40,.08); min-width: 0; }
h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .05em; color: #5a6275;
  margin: 0 0 10px; font-weight: 600; }
.lede { color: #5a6275; font-size: 13px; margin: -4px 0 10px; }
.cards { display: grid; grid-template-columns: repeat(6, 1fr); gap: 12px; margin-bottom: 16px; }
.card { background: #fff; border-radius: 10px; padding: 12px 16px;
  box-shadow: 0 1px 2px rgba(16,24,40,.06), 0 1px 3px rgba(16,24,40,.08); }
.card .label { font-size: 12px; color: #5a6275; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 28px; font-weight: 600; margin: 2px 0;
  font-variant-numeric: tabular-nums; }
.card .sub { font-size: 12px; color: #5a6275; }
.card.conv .value { color: #2563eb; }
.grid { display: grid; gap: 16px; margin-bottom: 16px; }
.grid.two { grid-template-columns: 3fr 2fr; }
.grid.half { grid-template-columns: 1fr 1fr; }
.grid.rev { grid-template-columns: 2fr 3fr; }
@media (max-width: 900px) {
  .cards { grid-template-columns: repeat(2, 1fr); }
  .grid.two, .grid.half, .grid.rev { grid-template-columns: 1fr; }
}
.notes { background: #fff8e6; border: 1px solid #f5d48a; border-radius: 10px;
  padding: 10px 16px; margin-bottom: 16px; font-size: 13px; }
.notes ul { margin: 0; padding-left: 18px; }
svg { display: block; width: 100%; height: auto; font-family: inherit; }
svg text { font-size: 11px; fill: #5a6275; }
svg .title { font-size: 12px; fill: #1d2330; }
svg .big { font-size: 16px; font-weight: 600; fill: #1d2330; }
.legend { display: flex; gap: 16px; font-size: 12px; color: #5a6275; margin-bottom: 4px; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px;
  margin-right: 6px; vertical-align: -1px; }
table { width: 100%; border-collapse: collapse; font-size: 13px; }
th { text-align: left; font-weight: 600; color: #5a6275; font-size: 12px;
  border-bottom: 1px solid #d9dde5; padding: 6px 8px; white-space: nowrap; }
td { padding: 6px 8px; border-bottom: 1px solid #eef0f3; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.date { white-space: nowrap; }
tr.suggested td { background: #eef4ff; font-weight: 600; }
tr.small td { color: #8a91a3; }
.id { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px;
  word-break: break-all; }
.tag { display: inline-block; font-size: 11px; padding: 0 6px; border-radius: 8px;
  background: #eef0f3; color: #5a6275; margin-left: 4px; }
.tag.warn { background: #fdecea; color: #7a1a12; }
.chips { display: flex; flex-wrap: wrap; gap: 4px; }
.chip { display: inline-block; font-size: 11.5px; padding: 1px 7px; border-radius: 10px;
  background: #eef0f3; white-space: nowrap; }
.chip.pos { background: #e7f5ec; color: #14532d; }
.chip.neg { background: #fdecea; color: #7a1a12; }
.chip small { opacity: .7; margin-left: 4px; }
td.why { width: 72%; }
.none { color: #8a91a3; font-style: italic; }
.bar { position: relative; height: 10px; width: 140px; background: #f3f4f7; border-radius: 2px; }
.bar i { position: absolute; top: 0; bottom: 0; left: 0; border-radius: 2px; }
.bar b { position: absolute; top: -3px; bottom: -3px; width: 1px; background: #1d2330; }
.method { font-size: 13px; color: #3a4254; }
.method dt { font-weight: 600; margin-top: 8px; }
.method dd { margin: 2px 0 0; }
footer { color: #8a91a3; font-size: 12px; text-align: center; padding: 8px 0 24px; }
"""


def e(value: Any) -> str:
    """Escape anything for HTML text and attribute values."""
    return escape(str(value), quote=True)


def _pct(value: Any, digits: int = 1) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "\N{EM DASH}"
    return f"{value * 100:.{digits}f}%"


def _tick(value: float) -> str:
    """An axis percentage: whole when it is whole, else one decimal."""
    pct = value * 100
    return f"{pct:.0f}%" if abs(pct - round(pct)) < 1e-9 else f"{pct:.1f}%"


def _num(value: Any, digits: int = 1) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "\N{EM DASH}"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


def _ratio3(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "\N{EM DASH}"
    return f"{value:.3f}"


def _lift(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "\N{EM DASH}"
    return f"{value:.2f}\N{MULTIPLICATION SIGN}"


def _nice_max(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value - 1e-12:
            return float(step * power)
    return float(10 * power)


def _auc_verdict(value: Any) -> str:
    if not isinstance(value, int | float):
        return "needs converters and non-converters"
    if value >= 0.9:
        return "excellent ranking"
    if value >= 0.8:
        return "good ranking"
    if value >= 0.7:
        return "fair ranking"
    if value > 0.55:
        return "weak ranking"
    return "no better than chance"


# --- charts --------------------------------------------------------------------


def _histogram_svg(report: Mapping[str, Any]) -> str:
    """Overlaid histograms, each group as shares of itself so sizes do not matter.

    Non-converters are wide grey bars, converters narrower blue bars in front,
    so neither hides the other and no blended colour needs a legend.
    """
    bins: Sequence[Mapping[str, Any]] = report["distribution"]["bins"]
    score = report["score"]
    lo, hi = float(score["min"]), float(score["max"])
    n_pos = sum(b["converters"] for b in bins)
    n_neg = sum(b["non_converters"] for b in bins)
    width, height, left, right, top, bottom = 640, 330, 44, 12, 28, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    shares = [
        (
            b["converters"] / n_pos if n_pos else 0.0,
            b["non_converters"] / n_neg if n_neg else 0.0,
        )
        for b in bins
    ]
    ymax = _nice_max(max((max(p, q) for p, q in shares), default=0.0))
    span = (hi - lo) or 1.0

    def x(v: float) -> float:
        return left + (v - lo) / span * plot_w

    def y(share: float) -> float:
        return top + plot_h - share / ymax * plot_h

    out = [
        f'<svg viewBox="0 0 {width} {height}" role="img" '
        'aria-label="Score distribution of converters and non-converters">'
    ]
    for k in range(6):
        share = ymax * k / 5
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(share):.1f}" y2="{y(share):.1f}" '
            f'stroke="{GRID}"/>'
            f'<text x="{left - 6}" y="{y(share) + 4:.1f}" text-anchor="end">'
            f"{e(_tick(share))}</text>"
        )
    for b, (p, q) in zip(bins, shares, strict=True):
        x0, x1 = x(float(b["low"])) + 1, x(float(b["high"])) - 1
        w = max(x1 - x0, 1)
        title = (
            f"{b['label']}: {b['non_converters']} non-converters ({_pct(q)}), "
            f"{b['converters']} converters ({_pct(p)})"
        )
        out.append(
            f"<g><title>{e(title)}</title>"
            f'<rect x="{x0:.1f}" y="{y(q):.1f}" width="{w:.1f}" height="{y(0) - y(q):.1f}" '
            f'fill="{NON_CONVERTER}" fill-opacity=".6"/>'
            f'<rect x="{x0 + w * 0.2:.1f}" y="{y(p):.1f}" width="{w * 0.6:.1f}" '
            f'height="{y(0) - y(p):.1f}" fill="{CONVERTER}" fill-opacity=".9"/></g>'
        )
    out.append(
        f'<line x1="{left}" x2="{width - right}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#9aa1b1"/>'
    )
    for k in range(11):
        v = lo + span * k / 10
        out.append(
            f'<text x="{x(v):.1f}" y="{top + plot_h + 16}" text-anchor="middle">{e(_num(v))}</text>'
        )
    out.append(
        f'<text x="{left + plot_w / 2:.0f}" y="{height - 8}" text-anchor="middle" '
        f'class="title">{e(score["name"])} score</text>'
    )
    for t in score.get("thresholds", []):
        at = float(t["at"])
        if not lo <= at <= hi:
            continue
        out.append(
            f'<line x1="{x(at):.1f}" x2="{x(at):.1f}" y1="{top - 6}" y2="{y(0):.1f}" '
            f'stroke="{INK}" stroke-dasharray="4 3" stroke-width="1"/>'
            f'<text x="{x(at) + 4:.1f}" y="{top - 8}" class="title">'
            f"{e(t['name'])} {e(_num(at))}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def _roc_svg(report: Mapping[str, Any]) -> str:
    """ROC curve with the chance diagonal, the AUC and where each tier sits on it."""
    points: Sequence[Mapping[str, Any]] = report["roc"]["points"]
    pad, top, plot = 54, 12, 268
    width, height = pad + plot + 14, top + plot + 46

    def px(v: float) -> float:
        return pad + v * plot

    def py(v: float) -> float:
        return top + plot - v * plot

    out = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="ROC curve" '
        'style="max-width:420px;margin:0 auto">'
    ]
    for k in range(5):
        v = k / 4
        out.append(
            f'<line x1="{px(0)}" x2="{px(1)}" y1="{py(v):.1f}" y2="{py(v):.1f}" stroke="{GRID}"/>'
            f'<line x1="{px(v):.1f}" x2="{px(v):.1f}" y1="{py(0)}" y2="{py(1)}" stroke="{GRID}"/>'
            f'<text x="{px(0) - 6}" y="{py(v) + 4:.1f}" text-anchor="end">{v:g}</text>'
            f'<text x="{px(v):.1f}" y="{py(0) + 15}" text-anchor="middle">{v:g}</text>'
        )
    out.append(
        f'<line x1="{px(0)}" y1="{py(0)}" x2="{px(1)}" y2="{py(1)}" stroke="#9aa1b1" '
        'stroke-dasharray="5 4"/>'
        f'<text x="{px(0.62):.1f}" y="{py(0.55):.1f}" transform="rotate(-45 {px(0.62):.1f} '
        f'{py(0.55):.1f})" text-anchor="middle">chance</text>'
    )
    if points:
        line = " ".join(f"{px(p['fpr']):.1f},{py(p['tpr']):.1f}" for p in points)
        out.append(
            f'<polygon points="{px(1)},{py(0)} {px(0)},{py(0)} {line}" fill="{CONVERTER}" '
            'fill-opacity=".08"/>'
            f'<polyline points="{line}" fill="none" stroke="{CONVERTER}" stroke-width="2.2" '
            'stroke-linejoin="round"/>'
        )
        for t in report["score"].get("thresholds", []):
            at = float(t["at"])
            flagged = [p for p in points if p["threshold"] is not None and p["threshold"] >= at]
            p = flagged[-1] if flagged else points[0]
            out.append(
                f'<circle cx="{px(p["fpr"]):.1f}" cy="{py(p["tpr"]):.1f}" r="4" fill="#fff" '
                f'stroke="{INK}" stroke-width="1.5"><title>{e(t["name"])} at {e(_num(at))}: '
                f"recall {e(_pct(p['tpr']))}, false-positive rate {e(_pct(p['fpr']))}"
                "</title></circle>"
                f'<text x="{px(p["fpr"]) + 7:.1f}" y="{py(p["tpr"]) + 12:.1f}" class="title">'
                f"{e(t['name'])}</text>"
            )
    auc = report["roc"]["auc"]
    label = f"AUC {auc:.3f}" if isinstance(auc, int | float) else "AUC n/a"
    out.append(
        f'<text x="{px(0.96):.1f}" y="{py(0.06):.1f}" text-anchor="end" class="big">'
        f"{e(label)}</text>"
        f'<text x="{px(0.5):.1f}" y="{height - 6}" text-anchor="middle" class="title">'
        "False-positive rate (non-converters flagged)</text>"
        f'<text x="12" y="{py(0.5):.1f}" transform="rotate(-90 12 {py(0.5):.1f})" '
        'text-anchor="middle" class="title">True-positive rate (recall)</text></svg>'
    )
    return "".join(out)


def _bands_svg(report: Mapping[str, Any]) -> str:
    """Conversion rate per equal-width score band, with the overall rate as a reference."""
    bands: Sequence[Mapping[str, Any]] = report["bands"]
    overall = report["counts"]["conversion_rate"]
    width, height, left, right, top, bottom = 470, 296, 40, 8, 20, 54
    plot_w, plot_h = width - left - right, height - top - bottom
    rates = [b["conversion_rate"] or 0.0 for b in bands]
    ymax = _nice_max(max([*rates, overall or 0.0, 0.01]))

    def y(rate: float) -> float:
        return top + plot_h - rate / ymax * plot_h

    slot = plot_w / max(len(bands), 1)
    out = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="Conversion rate by band">']
    for k in range(6):
        rate = ymax * k / 5
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(rate):.1f}" y2="{y(rate):.1f}" '
            f'stroke="{GRID}"/><text x="{left - 6}" y="{y(rate) + 4:.1f}" text-anchor="end">'
            f"{e(_tick(rate))}</text>"
        )
    for i, b in enumerate(bands):
        x0 = left + i * slot + slot * 0.14
        w = slot * 0.72
        rate = b["conversion_rate"]
        cx = x0 + w / 2
        pale = ' fill-opacity=".45"' if b["contacts"] < SMALL_SAMPLE else ""
        out.append(f"<g><title>{e(b['label'])}: {b['converters']} of {b['contacts']}</title>")
        if rate is not None:
            out.append(
                f'<rect x="{x0:.1f}" y="{y(rate):.1f}" width="{w:.1f}" '
                f'height="{y(0) - y(rate):.1f}" rx="2" fill="{CONVERTER}"{pale}/>'
                f'<text x="{cx:.1f}" y="{y(rate) - 4:.1f}" text-anchor="middle" class="title">'
                f"{e(_pct(rate, 0))}</text>"
            )
        out.append(
            f'<text x="{cx:.1f}" y="{top + plot_h + 15}" text-anchor="middle" class="title">'
            f"{e(b['label'])}</text>"
            f'<text x="{cx:.1f}" y="{top + plot_h + 29}" text-anchor="middle">'
            f"n={e(_num(b['contacts']))}</text></g>"
        )
    out.append(
        f'<line x1="{left}" x2="{width - right}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#9aa1b1"/>'
    )
    if isinstance(overall, int | float):
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(overall):.1f}" y2="{y(overall):.1f}" '
            f'stroke="{BAD}" stroke-dasharray="5 4"><title>overall {e(_pct(overall))}</title>'
            "</line>"
        )
    out.append(
        f'<text x="{left + plot_w / 2:.0f}" y="{height - 6}" text-anchor="middle" '
        f'class="title">{e(report["score"]["name"])} score band</text></svg>'
    )
    return "".join(out)


# --- tables --------------------------------------------------------------------


def _threshold_rows(report: Mapping[str, Any]) -> str:
    def row(label: str, cut: Mapping[str, Any], cls: str = "") -> str:
        return (
            f'<tr class="{cls}"><td>{label}</td><td class="num">{e(_num(cut["at"]))}</td>'
            f'<td class="num">{e(_num(cut["contacts_above"]))} '
            f'<span class="tag">{e(_pct(cut["share_of_contacts"]))}</span></td>'
            f'<td class="num">{e(_num(cut["converters_above"]))}</td>'
            f'<td class="num">{e(_pct(cut["precision"]))}</td>'
            f'<td class="num">{e(_pct(cut["recall"]))}</td>'
            f'<td class="num">{e(_ratio3(cut["f1"]))}</td>'
            f'<td class="num">{e(_lift(cut["lift"]))}</td></tr>'
        )

    rows = [row(f"Tier <b>{e(t['name'])}</b>", t) for t in report["thresholds"]]
    best = report.get("suggested_threshold")
    if best:
        rows.append(row("Suggested (best F1)", best, "suggested"))
    youden = report.get("youden_threshold")
    if youden:
        rows.append(row(f"Youden J {e(_ratio3(youden.get('j')))}", youden))
    if not rows:
        return '<p class="none">No tiers and no converters to suggest a threshold from.</p>'
    head = (
        "<table><thead><tr><th>Threshold</th><th class=num>Score \N{GREATER-THAN OR EQUAL TO}"
        "</th><th class=num>Contacts above</th><th class=num>Converters</th>"
        "<th class=num>Precision</th><th class=num>Recall</th><th class=num>F1</th>"
        "<th class=num>Lift</th></tr></thead><tbody>"
    )
    return head + "".join(rows) + "</tbody></table>"


def _threshold_summary(report: Mapping[str, Any]) -> str:
    best = report.get("suggested_threshold")
    if not best:
        return ""
    text = (
        f"A threshold of <b>{e(_num(best['at']))}</b> would flag {e(_num(best['contacts_above']))}"
        f" contacts ({e(_pct(best['share_of_contacts']))}) and catch "
        f"{e(_pct(best['recall']))} of converters at {e(_pct(best['precision']))} precision."
    )
    tiers = report["thresholds"]
    if tiers:
        first = tiers[0]
        text += (
            f" Today <b>{e(first['name'])}</b> at {e(_num(first['at']))} catches "
            f"{e(_pct(first['recall']))} at {e(_pct(first['precision']))}."
        )
    return f'<p class="lede">{text}</p>'


#: Rules shown per contact in the outlier tables; the rest are counted.
CHIPS = 8


def _chips(awards: Iterable[Mapping[str, Any]]) -> str:
    """Awards grouped by rule, the largest totals first: what drives the score, at a glance.

    A busy contact holds dozens of awards (every open, every visit); one chip
    per rule with its total and count keeps the row readable, and the chip's
    title lists each award's time.
    """
    by_rule: dict[str, list[Mapping[str, Any]]] = {}
    for a in awards:
        by_rule.setdefault(str(a.get("rule")), []).append(a)
    totals = {
        rule: sum(a["points"] for a in group if isinstance(a.get("points"), int | float))
        for rule, group in by_rule.items()
    }
    ordered = sorted(by_rule, key=lambda rule: (-abs(totals[rule]), rule))
    out = []
    for rule in ordered[:CHIPS]:
        group = by_rule[rule]
        total = totals[rule]
        times = sorted(str(a.get("awarded_at") or "") for a in group)
        title = "; ".join(
            f"{a.get('points')} at {a.get('awarded_at')}"
            + (f" (expires {a['expires_at']})" if a.get("expires_at") else "")
            for a in group
        )
        count = f" \N{MULTIPLICATION SIGN}{len(group)}" if len(group) > 1 else ""
        out.append(
            f'<span class="chip {"pos" if total > 0 else "neg"}" title="{e(title)}">'
            f"{e(rule)} {e(f'{total:+g}')}{e(count)}<small>{e(times[-1][:10])}</small></span>"
        )
    if len(ordered) > CHIPS:
        rest = ordered[CHIPS:]
        points = sum(totals[rule] for rule in rest)
        out.append(
            f'<span class="chip" title="{e(", ".join(rest))}">+{len(rest)} more rules '
            f"({e(f'{points:+g}')})</span>"
        )
    return '<div class="chips">' + "".join(out) + "</div>"


def _outlier_table(items: Sequence[Mapping[str, Any]], converters: bool) -> str:
    if not items:
        return '<p class="none">None.</p>'
    head = "<table><thead><tr><th>Contact</th><th class=num>Score</th>"
    head += "<th>Converted</th>" if converters else "<th>Tiers</th>"
    head += "<th>Why this score (live awards)</th></tr></thead><tbody>"
    rows = []
    for o in items:
        if o.get("no_history"):
            why = '<span class="none">no events: no score row, minimum score</span>'
        elif o.get("awards"):
            why = _chips(o["awards"])
        else:
            why = '<span class="none">no live awards</span>'
        if converters:
            extra = e(str(o.get("converted_at") or "")[:10])
        else:
            extra = e(", ".join(o.get("tiers") or [])) or '<span class="none">none</span>'
        gate = "" if o.get("gates_passed") is not False else '<span class="tag">gated</span>'
        rows.append(
            f'<tr><td class="id">{e(o["contact_id"])}{gate}</td>'
            f'<td class="num">{e(_num(o["score"]))}</td><td class="date">{extra}</td>'
            f'<td class="why">{why}</td></tr>'
        )
    return head + "".join(rows) + "</tbody></table>"


def _rules_table(report: Mapping[str, Any]) -> str:
    rules: Sequence[Mapping[str, Any]] = report["rules"]
    if not rules:
        return '<p class="none">The model has no rules for this score.</p>'
    top = max([r["lift"] for r in rules if isinstance(r["lift"], int | float)] + [1.0])
    scale = _nice_max(top)
    rows = []
    for r in rules:
        lift = r["lift"]
        if isinstance(lift, int | float):
            colour = GOOD if lift >= 1 else BAD
            bar = (
                f'<div class="bar"><i style="width:{min(lift / scale, 1) * 100:.1f}%;'
                f'background:{colour}"></i><b style="left:{100 / scale:.1f}%"></b></div>'
            )
        else:
            bar = ""
        few = ' <span class="tag">few contacts</span>' if r["small_sample"] else ""
        if r.get("sign_disagrees"):
            few += ' <span class="tag warn">check weight</span>'
        rows.append(
            f'<tr class="{"small" if r["small_sample"] else ""}">'
            f'<td class="id">{e(r["rule"])}{few}</td><td>{e(r["category"] or "")}</td>'
            f'<td class="num">{e(_num(r["points"]))}</td>'
            f'<td class="num">{e(_num(r["contacts_with"]))}</td>'
            f'<td class="num">{e(_pct(r["conversion_rate_with"]))}</td>'
            f'<td class="num">{e(_pct(r["conversion_rate_without"]))}</td>'
            f'<td class="num">{e(_lift(lift))}</td><td>{bar}</td></tr>'
        )
    head = (
        "<table><thead><tr><th>Rule</th><th>Category</th><th class=num>Points</th>"
        "<th class=num>Contacts with</th><th class=num>Conv. rate with</th>"
        "<th class=num>Conv. rate without</th><th class=num>Lift</th>"
        f"<th>0\N{EN DASH}{e(_num(scale))}\N{MULTIPLICATION SIGN} (tick = 1\N{MULTIPLICATION SIGN})"
        "</th></tr></thead><tbody>"
    )
    return head + "".join(rows) + "</tbody></table>"


def _card(label: str, value: str, sub: str, cls: str = "") -> str:
    return (
        f'<div class="card {cls}"><div class="label">{e(label)}</div>'
        f'<div class="value">{e(value)}</div><div class="sub">{sub}</div></div>'
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
            _card(
                "Contacts",
                _num(counts["contacts"]),
                f"{e(_num(excluded))} excluded (converted before)",
            ),
            _card(
                "Converters",
                _num(counts["converters"]),
                f"{e(_num(rowless))} with no events",
                "conv",
            ),
            _card(
                "Conversion rate",
                _pct(counts["conversion_rate"]),
                f"{e(_num(counts['non_converters']))} non-converters",
            ),
            _card("AUC", _ratio3(auc), e(_auc_verdict(auc))),
            _card(
                "Avg score, converters",
                _num(averages["converters"]),
                f"median {e(_num(averages['median_converters']))}",
                "conv",
            ),
            _card(
                "Avg score, non-converters",
                _num(averages["non_converters"]),
                f"median {e(_num(averages['median_non_converters']))}",
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
        f"Converters ({e(_num(counts['converters']))})</span>"
        f'<span><i style="background:{NON_CONVERTER};opacity:.6"></i>'
        f"Non-converters ({e(_num(counts['non_converters']))})</span></div>"
    )
    outliers = report["outliers"]
    meta = (
        f"<span>model {e(model_name)}</span><span>score {e(score['name'])} "
        f"({e(_num(score['min']))}\N{EN DASH}{e(_num(score['max']))})</span>"
        f"<span>as of {e(report['as_of'])}</span>"
        f"<span>point in time: {e(report['point_in_time'])}</span>"
    )
    backtest = report.get("backtest") or {}
    replayed = backtest.get("applied", backtest.get("events"))
    if isinstance(replayed, int):
        meta += f"<span>{e(_num(replayed))} events replayed</span>"
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
{legend}{_histogram_svg(report)}</section>
<section id="roc"><h2>ROC curve</h2>
<p class="lede">Recall against false-positive rate as the threshold falls.</p>
{_roc_svg(report)}</section>
</div>
<div class="grid rev">
<section id="bands"><h2>Conversion rate by score band</h2>
<p class="lede">Higher bands should convert more. Dashed line: the overall rate
({e(_pct(counts["conversion_rate"]))}); paler bars have fewer than {SMALL_SAMPLE} contacts.</p>
{_bands_svg(report)}</section>
<section id="thresholds"><h2>Thresholds</h2>
{_threshold_summary(report)}{_threshold_rows(report)}
<p class="lede" style="margin-top:10px">Counted above a threshold: contacts at or above it that
pass every gate, as a tier would hand them to sales.</p></section>
</div>
<div class="grid">
<section id="lowest-converters"><h2>Lowest-scoring converters</h2>
<p class="lede">Converted, yet scored low: missing or under-weighted rules?</p>
{_outlier_table(outliers["lowest_converters"], converters=True)}</section>
<section id="highest-non-converters"><h2>Highest-scoring non-converters</h2>
<p class="lede">Scored high, did not convert: over-weighted rules or bots?</p>
{_outlier_table(outliers["highest_non_converters"], converters=False)}</section>
</div>
<section id="rules" style="margin-bottom:16px"><h2>Rule lift</h2>
<p class="lede">Conversion rate with a live award of each rule, relative to the overall
{e(_pct(counts["conversion_rate"]))}.</p>
{_rules_table(report)}</section>
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
