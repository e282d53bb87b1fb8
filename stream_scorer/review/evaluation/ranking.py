"""Ranking metrics: how well a score orders converters above non-converters.

AUC and ROC rank by score alone; bands and histograms count contacts per
equal-width score range; a cut is what a threshold would flag (score ``>=
at`` and gates passed, as the engine's tiers do), swept over every observed
score for the suggested (best F1) and Youden thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypedDict

from stream_scorer.errors import EvaluationError
from stream_scorer.review.evaluation.contacts import Contact


class RocPoint(TypedDict):
    """Contacts scoring ``>= threshold`` flagged; ``threshold`` None is the (0, 0) start."""

    threshold: float | None
    fpr: float
    tpr: float


class Bin(TypedDict):
    label: str
    low: float
    high: float
    converters: int
    non_converters: int


class Band(TypedDict):
    label: str
    low: float
    high: float
    contacts: int
    converters: int
    conversion_rate: float | None


class Cut(TypedDict):
    """How a threshold performs: contacts scoring ``>= at`` with gates passed are flagged."""

    at: float
    contacts_above: int
    converters_above: int
    share_of_contacts: float | None
    precision: float | None
    recall: float | None
    f1: float | None
    fpr: float | None
    lift: float | None


class TierCut(Cut):
    name: str
    rearm_below: float | None


class YoudenCut(Cut):
    j: float | None


def _both(scores_pos: Sequence[float], scores_neg: Sequence[float], what: str) -> None:
    if not scores_pos or not scores_neg:
        raise EvaluationError(f"{what} needs at least one converter and one non-converter")


def auc(scores_pos: Sequence[float], scores_neg: Sequence[float]) -> float:
    """Area under the ROC curve: the chance a random converter outscores a random non-converter.

    Mann-Whitney U with ties counted half, in O(n log n): one sort, then each
    group of equal scores credits its positives with every negative below it
    and half of the negatives tied with it.
    """
    _both(scores_pos, scores_neg, "AUC")
    labelled = sorted([(s, 0) for s in scores_neg] + [(s, 1) for s in scores_pos])
    wins = 0.0
    negatives_below = 0
    i = 0
    while i < len(labelled):
        j = i
        pos = neg = 0
        while j < len(labelled) and labelled[j][0] == labelled[i][0]:
            if labelled[j][1]:
                pos += 1
            else:
                neg += 1
            j += 1
        wins += pos * (negatives_below + neg / 2)
        negatives_below += neg
        i = j
    return wins / (len(scores_pos) * len(scores_neg))


def roc(scores_pos: Sequence[float], scores_neg: Sequence[float]) -> list[RocPoint]:
    """ROC points from (0, 0) to (1, 1), one per distinct score, highest threshold first.

    The point for threshold ``t`` flags every contact scoring ``>= t``; the
    trapezoids under these points add up to :func:`auc`.
    """
    _both(scores_pos, scores_neg, "ROC")
    labelled = sorted(
        [(s, 0) for s in scores_neg] + [(s, 1) for s in scores_pos], key=lambda p: -p[0]
    )
    points: list[RocPoint] = [{"threshold": None, "fpr": 0.0, "tpr": 0.0}]
    tp = fp = 0
    i = 0
    while i < len(labelled):
        value = labelled[i][0]
        while i < len(labelled) and labelled[i][0] == value:
            if labelled[i][1]:
                tp += 1
            else:
                fp += 1
            i += 1
        points.append(
            {"threshold": value, "fpr": fp / len(scores_neg), "tpr": tp / len(scores_pos)}
        )
    return points


def ratio(a: float, b: float) -> float | None:
    return None if b == 0 else round(a / b, 6)


def number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True, slots=True)
class Bins:
    """Equal-width bins over a score's [low, high], the last one including ``high``.

    With integer scores the arithmetic is exact (no float edge landing a
    score in the wrong bin), there are never more bins than integers, and
    labels name the integers a bin holds ("60-69" with an en dash).
    """

    low: float
    high: float
    n: int
    integral: bool

    @classmethod
    def over(cls, low: float, high: float, wanted: int, integral: bool) -> Bins:
        span = high - low
        n = 1 if span == 0 else wanted if not integral else min(wanted, int(span) + 1)
        return cls(low, high, n, integral)

    def index(self, value: float) -> int:
        span = self.high - self.low
        if span == 0:
            return 0
        if self.integral:
            i = (int(value) - int(self.low)) * self.n // int(span)
        else:
            i = math.floor((value - self.low) * self.n / span)
        return min(max(i, 0), self.n - 1)

    def edges(self) -> list[tuple[float, float, str]]:
        span = self.high - self.low
        if span == 0:
            return [(float(self.low), float(self.high), number_text(self.low))]
        out = []
        for i in range(self.n):
            lo = self.low + i * span / self.n
            hi = self.high if i == self.n - 1 else self.low + (i + 1) * span / self.n
            if self.integral:
                low, width = int(self.low), int(span)
                first = low + -(-i * width // self.n)
                last = (
                    int(self.high) if i == self.n - 1 else low + -(-(i + 1) * width // self.n) - 1
                )
                label = number_text(first) if first == last else f"{first}\N{EN DASH}{last}"
            else:
                label = f"[{lo:g}, {hi:g}{']' if i == self.n - 1 else ')'}"
            out.append((round(float(lo), 6), round(float(hi), 6), label))
        return out


def cut_at(contacts: Sequence[Contact], at: float, converters: int, negatives: int) -> Cut:
    above = [c for c in contacts if c.flaggable and c.value >= at]
    tp = sum(1 for c in above if c.converted)
    return cut_from(at, len(above), tp, len(contacts), converters, negatives)


def cut_from(at: float, flagged: int, tp: int, total: int, converters: int, negatives: int) -> Cut:
    fp = flagged - tp
    fn = converters - tp
    precision = ratio(tp, flagged)
    rate = ratio(converters, total)
    return {
        "at": at,
        "contacts_above": flagged,
        "converters_above": tp,
        "share_of_contacts": ratio(flagged, total),
        "precision": precision,
        "recall": ratio(tp, converters),
        "f1": ratio(2 * tp, 2 * tp + fp + fn) if converters else None,
        "fpr": ratio(fp, negatives),
        "lift": None if precision is None or not rate else round(precision / rate, 6),
    }


def sweep(contacts: Sequence[Contact], converters: int, negatives: int) -> list[Cut]:
    """Every distinct score as a threshold, highest first, in one pass over a sort."""
    eligible = sorted((c for c in contacts if c.flaggable), key=lambda c: -c.value)
    cuts: list[Cut] = []
    flagged = tp = 0
    i = 0
    while i < len(eligible):
        value = eligible[i].value
        while i < len(eligible) and eligible[i].value == value:
            flagged += 1
            tp += eligible[i].converted
            i += 1
        cuts.append(cut_from(value, flagged, tp, len(contacts), converters, negatives))
    return cuts


def best_f1(cuts: Iterable[Cut]) -> Cut | None:
    """Highest F1; on a tie the higher threshold, which sends sales fewer contacts."""
    best: Cut | None = None
    for cut in cuts:  # highest threshold first, so ">" keeps the higher on ties
        if cut["f1"] is not None and (best is None or cut["f1"] > (best["f1"] or 0.0)):
            best = cut
    return best if best is not None and best["f1"] else None


def best_youden(cuts: Iterable[Cut]) -> YoudenCut | None:
    """Highest Youden J = recall - false-positive rate; ties go to the higher threshold."""
    best: YoudenCut | None = None
    for cut in cuts:
        if cut["recall"] is None or cut["fpr"] is None:
            continue
        j = round(cut["recall"] - cut["fpr"], 6)
        if best is None or j > (best["j"] or 0.0):
            best = {**cut, "j": j}
    return best if best is not None and (best["j"] or 0.0) > 0 else None
