"""The report's SVG charts: score distribution, ROC curve, conversion rate by band.

Drawn as inline SVG strings with hover titles, so the page needs no script.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stream_scorer.review.evaluation.lift import SMALL_SAMPLE
from stream_scorer.review.report.style import (
    BAD,
    CONVERTER,
    GRID,
    INK,
    NON_CONVERTER,
    e,
    nice_max,
    num,
    pct,
    tick,
)


def histogram_svg(report: Mapping[str, Any]) -> str:
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
    ymax = nice_max(max((max(p, q) for p, q in shares), default=0.0))
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
            f"{e(tick(share))}</text>"
        )
    for b, (p, q) in zip(bins, shares, strict=True):
        x0, x1 = x(float(b["low"])) + 1, x(float(b["high"])) - 1
        w = max(x1 - x0, 1)
        title = (
            f"{b['label']}: {b['non_converters']} non-converters ({pct(q)}), "
            f"{b['converters']} converters ({pct(p)})"
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
            f'<text x="{x(v):.1f}" y="{top + plot_h + 16}" text-anchor="middle">{e(num(v))}</text>'
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
            f"{e(t['name'])} {e(num(at))}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def roc_svg(report: Mapping[str, Any]) -> str:
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
                f'stroke="{INK}" stroke-width="1.5"><title>{e(t["name"])} at {e(num(at))}: '
                f"recall {e(pct(p['tpr']))}, false-positive rate {e(pct(p['fpr']))}"
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


def bands_svg(report: Mapping[str, Any]) -> str:
    """Conversion rate per equal-width score band, with the overall rate as a reference."""
    bands: Sequence[Mapping[str, Any]] = report["bands"]
    overall = report["counts"]["conversion_rate"]
    width, height, left, right, top, bottom = 470, 296, 40, 8, 20, 54
    plot_w, plot_h = width - left - right, height - top - bottom
    rates = [b["conversion_rate"] or 0.0 for b in bands]
    ymax = nice_max(max([*rates, overall or 0.0, 0.01]))

    def y(rate: float) -> float:
        return top + plot_h - rate / ymax * plot_h

    slot = plot_w / max(len(bands), 1)
    out = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="Conversion rate by band">']
    for k in range(6):
        rate = ymax * k / 5
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(rate):.1f}" y2="{y(rate):.1f}" '
            f'stroke="{GRID}"/><text x="{left - 6}" y="{y(rate) + 4:.1f}" text-anchor="end">'
            f"{e(tick(rate))}</text>"
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
                f"{e(pct(rate, 0))}</text>"
            )
        out.append(
            f'<text x="{cx:.1f}" y="{top + plot_h + 15}" text-anchor="middle" class="title">'
            f"{e(b['label'])}</text>"
            f'<text x="{cx:.1f}" y="{top + plot_h + 29}" text-anchor="middle">'
            f"n={e(num(b['contacts']))}</text></g>"
        )
    out.append(
        f'<line x1="{left}" x2="{width - right}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#9aa1b1"/>'
    )
    if isinstance(overall, int | float):
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(overall):.1f}" y2="{y(overall):.1f}" '
            f'stroke="{BAD}" stroke-dasharray="5 4"><title>overall {e(pct(overall))}</title>'
            "</line>"
        )
    out.append(
        f'<text x="{left + plot_w / 2:.0f}" y="{height - 6}" text-anchor="middle" '
        f'class="title">{e(report["score"]["name"])} score band</text></svg>'
    )
    return "".join(out)
