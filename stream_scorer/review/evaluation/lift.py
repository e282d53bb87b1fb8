"""Rule lift: which rules go with conversion, and which weights point the wrong way."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from stream_scorer.review.evaluation.contacts import Contact
from stream_scorer.review.evaluation.ranking import ratio

#: Below this many contacts with a rule, its lift is flagged as noisy.
SMALL_SAMPLE = 20


class RuleLift(TypedDict):
    rule: str
    category: str | None
    points: float | None
    contacts_with: int
    converters_with: int
    conversion_rate_with: float | None
    contacts_without: int
    converters_without: int
    conversion_rate_without: float | None
    lift: float | None
    small_sample: bool
    #: Points and lift point opposite ways (positive points, lift below 1, or the
    #: reverse): a weight to check.
    sign_disagrees: bool


def rule_lift(
    contacts: Sequence[Contact], rules: Mapping[str, Mapping[str, Any]], converters: int
) -> list[RuleLift]:
    total = len(contacts)
    overall = ratio(converters, total)
    with_n = dict.fromkeys(rules, 0)
    with_conv = dict.fromkeys(rules, 0)
    for c in contacts:
        for rid in {a.rule for a in c.awards}:
            if rid in with_n:
                with_n[rid] += 1
                with_conv[rid] += c.converted
    out: list[RuleLift] = []
    for rid, spec in rules.items():
        rate_with = ratio(with_conv[rid], with_n[rid])
        points = spec.get("points")
        points = points if isinstance(points, int | float) else None
        lift = None if rate_with is None or not overall else round(rate_with / overall, 6)
        out.append(
            {
                "rule": rid,
                "category": spec.get("category"),
                "points": points,
                "contacts_with": with_n[rid],
                "converters_with": with_conv[rid],
                "conversion_rate_with": rate_with,
                "contacts_without": total - with_n[rid],
                "converters_without": converters - with_conv[rid],
                "conversion_rate_without": ratio(converters - with_conv[rid], total - with_n[rid]),
                "lift": lift,
                "small_sample": with_n[rid] < SMALL_SAMPLE,
                "sign_disagrees": points is not None
                and lift is not None
                and ((points > 0 and lift < 1) or (points < 0 and lift > 1)),
            }
        )
    out.sort(key=lambda r: (r["lift"] is None, -(r["lift"] or 0.0), -r["contacts_with"], r["rule"]))
    return out
