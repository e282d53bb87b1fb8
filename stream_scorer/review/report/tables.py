"""The report's HTML tables: thresholds, outliers with their awards, rule lift; summary cards."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from stream_scorer.review.report.style import (
    BAD,
    GOOD,
    e,
    fmt_lift,
    nice_max,
    num,
    pct,
    ratio3,
)


def threshold_rows(report: Mapping[str, Any]) -> str:
    def row(label: str, cut: Mapping[str, Any], cls: str = "") -> str:
        return (
            f'<tr class="{cls}"><td>{label}</td><td class="num">{e(num(cut["at"]))}</td>'
            f'<td class="num">{e(num(cut["contacts_above"]))} '
            f'<span class="tag">{e(pct(cut["share_of_contacts"]))}</span></td>'
            f'<td class="num">{e(num(cut["converters_above"]))}</td>'
            f'<td class="num">{e(pct(cut["precision"]))}</td>'
            f'<td class="num">{e(pct(cut["recall"]))}</td>'
            f'<td class="num">{e(ratio3(cut["f1"]))}</td>'
            f'<td class="num">{e(fmt_lift(cut["lift"]))}</td></tr>'
        )

    rows = [row(f"Tier <b>{e(t['name'])}</b>", t) for t in report["thresholds"]]
    best = report.get("suggested_threshold")
    if best:
        rows.append(row("Suggested (best F1)", best, "suggested"))
    youden = report.get("youden_threshold")
    if youden:
        rows.append(row(f"Youden J {e(ratio3(youden.get('j')))}", youden))
    if not rows:
        return '<p class="none">No tiers and no converters to suggest a threshold from.</p>'
    head = (
        "<table><thead><tr><th>Threshold</th><th class=num>Score \N{GREATER-THAN OR EQUAL TO}"
        "</th><th class=num>Contacts above</th><th class=num>Converters</th>"
        "<th class=num>Precision</th><th class=num>Recall</th><th class=num>F1</th>"
        "<th class=num>Lift</th></tr></thead><tbody>"
    )
    return head + "".join(rows) + "</tbody></table>"


def threshold_summary(report: Mapping[str, Any]) -> str:
    best = report.get("suggested_threshold")
    if not best:
        return ""
    text = (
        f"A threshold of <b>{e(num(best['at']))}</b> would flag {e(num(best['contacts_above']))}"
        f" contacts ({e(pct(best['share_of_contacts']))}) and catch "
        f"{e(pct(best['recall']))} of converters at {e(pct(best['precision']))} precision."
    )
    tiers = report["thresholds"]
    if tiers:
        first = tiers[0]
        text += (
            f" Today <b>{e(first['name'])}</b> at {e(num(first['at']))} catches "
            f"{e(pct(first['recall']))} at {e(pct(first['precision']))}."
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


def outlier_table(items: Sequence[Mapping[str, Any]], converters: bool) -> str:
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
            f'<td class="num">{e(num(o["score"]))}</td><td class="date">{extra}</td>'
            f'<td class="why">{why}</td></tr>'
        )
    return head + "".join(rows) + "</tbody></table>"


def rules_table(report: Mapping[str, Any]) -> str:
    rules: Sequence[Mapping[str, Any]] = report["rules"]
    if not rules:
        return '<p class="none">The model has no rules for this score.</p>'
    top = max([r["lift"] for r in rules if isinstance(r["lift"], int | float)] + [1.0])
    scale = nice_max(top)
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
            f'<td class="num">{e(num(r["points"]))}</td>'
            f'<td class="num">{e(num(r["contacts_with"]))}</td>'
            f'<td class="num">{e(pct(r["conversion_rate_with"]))}</td>'
            f'<td class="num">{e(pct(r["conversion_rate_without"]))}</td>'
            f'<td class="num">{e(fmt_lift(lift))}</td><td>{bar}</td></tr>'
        )
    head = (
        "<table><thead><tr><th>Rule</th><th>Category</th><th class=num>Points</th>"
        "<th class=num>Contacts with</th><th class=num>Conv. rate with</th>"
        "<th class=num>Conv. rate without</th><th class=num>Lift</th>"
        f"<th>0\N{EN DASH}{e(num(scale))}\N{MULTIPLICATION SIGN} (tick = 1\N{MULTIPLICATION SIGN})"
        "</th></tr></thead><tbody>"
    )
    return head + "".join(rows) + "</tbody></table>"


def card(label: str, value: str, sub: str, cls: str = "") -> str:
    return (
        f'<div class="card {cls}"><div class="label">{e(label)}</div>'
        f'<div class="value">{e(value)}</div><div class="sub">{sub}</div></div>'
    )
