"""How the report looks: its colours, its CSS, and how it writes numbers (escaped)."""

from __future__ import annotations

import math
from html import escape
from typing import Any

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


def pct(value: Any, digits: int = 1) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "\N{EM DASH}"
    return f"{value * 100:.{digits}f}%"


def tick(value: float) -> str:
    """An axis percentage: whole when it is whole, else one decimal."""
    pct = value * 100
    return f"{pct:.0f}%" if abs(pct - round(pct)) < 1e-9 else f"{pct:.1f}%"


def num(value: Any, digits: int = 1) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "\N{EM DASH}"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


def ratio3(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "\N{EM DASH}"
    return f"{value:.3f}"


def fmt_lift(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "\N{EM DASH}"
    return f"{value:.2f}\N{MULTIPLICATION SIGN}"


def nice_max(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value - 1e-12:
            return float(step * power)
    return float(10 * power)


def auc_verdict(value: Any) -> str:
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
