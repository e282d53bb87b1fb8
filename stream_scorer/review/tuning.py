"""Learned weights: new points for a model's rules, fitted on history and conversions.

The method is the explainable standard for lead scoring: an L2-regularised
logistic regression of "converted" on each rule's live awards (how many a
contact holds just before converting, or at the end of history). A lead
score adds points per award, so the fitted weights map straight back onto
rules: each rule's new points are its weight, scaled so that nearly every
contact's score fits the score's range and its categories' maxima. Nothing
else about a rule changes (conditions, expiry, caps, once, frequency); a cap
in points is rescaled so it still allows as many awards.

Thresholds are moved so each tier keeps the share of contacts it had (sales
see as many leads as before, but better ones). Old and new models are
compared by AUC on a held-out split of contacts that the fit never saw.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stream_scorer.errors import TuningError
from stream_scorer.events import Event
from stream_scorer.review.backtest import Backtest, run_backtest
from stream_scorer.review.evaluation import auc
from stream_scorer.scoring import ContactState, ScoringModel, parse_model
from stream_scorer.scoring.model import write_document

#: One contact's features: rule index to the number of live awards of that rule.
Row = dict[int, float]


def held_out(contact: str, fraction: float, seed: int) -> bool:
    """A stable pseudo-random split by contact id, the same on every run and machine."""
    digest = hashlib.sha256(f"{seed}:{contact}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def features(state: ContactState, rules: Sequence[str]) -> Row:
    """How many live awards of each rule a contact holds (fit rules: 0 or 1)."""
    index = {rule: i for i, rule in enumerate(rules)}
    row: Row = {}
    for award in state.live_awards():
        i = index.get(award.rule)
        if i is not None:
            row[i] = row.get(i, 0.0) + 1.0
    return row


@dataclass(frozen=True)
class Fit:
    """Weights per rule (per award, in log-odds) and the intercept."""

    weights: list[float]
    intercept: float
    iterations: int


def _solve(matrix: list[list[float]], vector: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (the systems are a few dozen wide)."""
    n = len(vector)
    a = [[*row, vector[i]] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        a[col], a[pivot] = a[pivot], a[col]
        lead = a[col][col]
        for r in range(col + 1, n):
            factor = a[r][col] / lead
            if factor:
                row, top = a[r], a[col]
                for c in range(col, n + 1):
                    row[c] -= factor * top[c]
    out = [0.0] * n
    for r in range(n - 1, -1, -1):
        out[r] = (a[r][n] - sum(a[r][c] * out[c] for c in range(r + 1, n))) / a[r][r]
    return out


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def fit_logistic(
    rows: Sequence[Row], labels: Sequence[int], width: int, l2: float = 1.0, steps: int = 50
) -> Fit:
    """L2-regularised logistic regression by Newton's method on sparse rows.

    Features are scaled to unit standard deviation for the penalty (so it
    treats rules alike) and the weights are returned on the original scale.
    """
    n = len(rows)
    scale = [1.0] * width
    if n:
        sums = [0.0] * width
        squares = [0.0] * width
        for row in rows:
            for j, x in row.items():
                sums[j] += x
                squares[j] += x * x
        for j in range(width):
            variance = squares[j] / n - (sums[j] / n) ** 2
            scale[j] = math.sqrt(variance) if variance > 1e-12 else 1.0
    scaled = [{j: x / scale[j] for j, x in row.items()} for row in rows]
    w = [0.0] * width
    positives = sum(labels)
    rate = min(max(positives / n, 1e-6), 1 - 1e-6) if n else 0.5
    b = math.log(rate / (1 - rate))
    iterations = 0
    while iterations < steps:
        iterations += 1
        size = width + 1  # the intercept is the last unknown and is not penalised
        hessian = [[0.0] * size for _ in range(size)]
        gradient = [0.0] * size
        for j in range(width):
            hessian[j][j] = l2
            gradient[j] = l2 * w[j]
        for row, y in zip(scaled, labels, strict=True):
            mu = _sigmoid(b + sum(w[j] * x for j, x in row.items()))
            residual = mu - y
            curvature = mu * (1.0 - mu)
            gradient[width] += residual
            hessian[width][width] += curvature
            items = list(row.items())
            for j, xj in items:
                gradient[j] += residual * xj
                hj = hessian[j]
                cx = curvature * xj
                hj[width] += cx
                hessian[width][j] += cx
                for k, xk in items:
                    hj[k] += cx * xk
        delta = _solve(hessian, gradient)
        for j in range(width):
            w[j] -= delta[j]
        b -= delta[width]
        if max(abs(d) for d in delta) < 1e-9:
            break
    return Fit([w[j] / scale[j] for j in range(width)], b, iterations)


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True)
class ScoreTuning:
    """What tuning one score did."""

    score: str
    rules: list[str]
    old_points: list[int]
    new_points: list[int]
    weights: list[float]
    thresholds: list[tuple[str, int, int]]  # name, old at, new at
    unseen: list[str]  # rules no training contact held: points kept
    auc_old: float
    auc_new: float
    train: int
    test: int
    test_converters: int


@dataclass(frozen=True)
class Tuning:
    """The tuned model document and a report per score."""

    document: dict[str, Any]
    model: ScoringModel
    scores: list[ScoreTuning]


def _scale_points(
    model: ScoringModel,
    score: str,
    rules: Sequence[str],
    weights: Sequence[float],
    rows: Sequence[Row],
) -> list[int]:
    """Points proportional to the weights, sized so 99% of contacts fit the range and categories."""
    compiled = model.scores[score]
    category = [model.by_id[r].category for r in rules]
    span = (compiled.max if compiled.max is not None else compiled.min + 100) - compiled.min
    factor = math.inf
    totals = [sum(weights[j] * x for j, x in row.items()) for row in rows]
    top = _quantile([t for t in totals if t > 0], 0.99)
    if top > 0:
        factor = span / top
    for name, (_, high) in compiled.categories.items():
        if high is None:
            continue
        parts = [sum(weights[j] * x for j, x in row.items() if category[j] == name) for row in rows]
        top = _quantile([p for p in parts if p > 0], 0.99)
        if top > 0:
            factor = min(factor, high / top)
    if not math.isfinite(factor):
        factor = 1.0
    points = []
    for w in weights:
        p = round(w * factor)
        points.append(p if p else (1 if w >= 0 else -1))  # a rule must award something
    return points


def _share_at_or_above(values: Sequence[int | None], at: int) -> float:
    """The share of contacts a tier at ``at`` would hold (None: held back by a gate)."""
    return sum(1 for v in values if v is not None and v >= at) / len(values) if values else 0.0


def _matched_threshold(
    old: Sequence[int | None], new: Sequence[int | None], at: int, ceiling: int
) -> int:
    """The new score value above which the same share of contacts lies as above ``at``.

    When no contact reached the old tier, the new one sits just above the
    highest new score: as empty, yet reachable. When gates hold every contact
    back, there is nothing to match and the threshold stays.
    """
    share = _share_at_or_above(old, at)
    reached = [v for v in new if v is not None]
    if not reached:
        return at  # every contact is held back by a gate: no evidence to move it
    candidates = set(reached) | {ceiling}
    if reached and max(reached) < ceiling:
        candidates.add(max(reached) + 1)
    best, gap = ceiling, math.inf
    for candidate in sorted(candidates):
        miss = abs(_share_at_or_above(new, candidate) - share)
        if miss < gap:
            best, gap = candidate, miss
    return best


def _values(result: Backtest, score: str, contacts: Sequence[str]) -> list[int | None]:
    """Each contact's score, or None where the score's gates hold it back from any tier."""
    gates = result.model.scores[score].gates
    out: list[int | None] = []
    for c in contacts:
        state = result.states[c]
        passes = all(gate(state.attributes) for _, gate in gates)
        out.append(state.values[score] if passes else None)
    return out


def _auc_of(
    result: Backtest, score: str, contacts: Sequence[str], converted: Mapping[str, int]
) -> float:
    positives = [float(result.states[c].values[score]) for c in contacts if c in converted]
    negatives = [float(result.states[c].values[score]) for c in contacts if c not in converted]
    return auc(positives, negatives)


def tune(
    model: ScoringModel,
    document: Mapping[str, Any],
    events: list[Event],
    times: list[int],
    conversions: Mapping[str, int],
    *,
    holdout: float = 0.3,
    seed: int = 0,
    l2: float = 1.0,
) -> Tuning:
    """Fit each score's rule weights on the training contacts; compare on the held-out ones.

    ``document`` is the model file as loaded YAML; the tuned copy keeps
    everything but points, point caps, thresholds and the version.
    """
    if not events:
        raise TuningError("the history has no events to learn from")
    before = run_backtest(model, events, times, conversions=conversions)
    contacts = sorted(before.states)
    train = [c for c in contacts if not held_out(c, holdout, seed)]
    test = [c for c in contacts if held_out(c, holdout, seed)]
    labels = [1 if c in conversions else 0 for c in train]
    for split, members, hint in (
        ("training", train, "more history"),
        ("held-out", test, "more history or a larger --holdout"),
    ):
        converted = sum(1 for c in members if c in conversions)
        if not converted or converted == len(members):
            raise TuningError(
                f"the {split} split has {len(members)} contact(s), {converted} converted: "
                f"tuning needs converters and non-converters in both splits; use {hint}"
            )

    tuned: dict[str, Any] = copy.deepcopy(dict(document))
    by_id = {rule["id"]: rule for rule in tuned.get("rules", [])}
    fitted: dict[str, tuple[list[str], Fit, list[int], list[str]]] = {}
    for score in model.scores:
        rules = [r.id for r in model.spec.rules if r.score == score]
        if not rules:
            continue
        rows = [features(before.states[c], rules) for c in train]
        # No training contact ever earned these: nothing to learn, so they keep their points.
        unseen = {j for j in range(len(rules)) if not any(j in row for row in rows)}
        # A capped rule cannot subtract (caps limit gains): where its weight comes
        # out negative, it is held at zero and the others are fitted without it.
        caps = {r.id for r in model.spec.rules if r.cap is not None}
        capped = {j for j, r in enumerate(rules) if r in caps}
        held: set[int] = set()
        while True:
            kept = [{j: x for j, x in row.items() if j not in held} for row in rows]
            fit = fit_logistic(kept, labels, len(rules), l2=l2)
            negative = {j for j in capped - held if fit.weights[j] < 0}
            if not negative:
                break
            held |= negative
        points = _scale_points(model, score, rules, fit.weights, rows)
        points = [model.by_id[r].points if j in unseen else p for j, (r, p) in
                  enumerate(zip(rules, points, strict=True))]  # fmt: skip
        fitted[score] = (rules, fit, points, sorted(rules[j] for j in unseen))
        for j, (rule_id, new) in enumerate(zip(rules, points, strict=True)):
            if j in unseen:
                continue
            rule = by_id[rule_id]
            cap = rule.get("cap")
            if isinstance(cap, dict) and cap.get("points") is not None:
                old = abs(int(rule["points"]))  # as many awards as before
                cap["points"] = max(1, round(int(cap["points"]) * new / old))
            rule["points"] = new
    tuned["version"] = int(tuned.get("version", 1)) + 1
    interim = parse_model(write_document(tuned), "<tuned model>")
    after = run_backtest(interim, events, times, conversions=conversions)

    reports: list[ScoreTuning] = []
    for score, (rules, fit, points, unseen_rules) in fitted.items():
        compiled = model.scores[score]
        ceiling = compiled.max
        if ceiling is None:
            ceiling = max([compiled.min + 1, *(after.states[c].values[score] for c in train)])
        old_values = _values(before, score, train)
        new_values = _values(after, score, train)
        moved: list[tuple[str, int, int]] = []
        floor = compiled.min
        for spec in tuned["scores"][score].get("thresholds", []):
            old_at = int(spec["at"])
            new_at = _matched_threshold(old_values, new_values, old_at, ceiling)
            new_at = min(max(new_at, floor + 1), ceiling)
            if "rearm_below" in spec and spec["rearm_below"] is not None:
                gap = old_at - int(spec["rearm_below"])
                ratio = new_at / old_at if old_at else 1.0
                spec["rearm_below"] = max(compiled.min, new_at - max(1, round(gap * ratio)))
            spec["at"] = new_at
            moved.append((str(spec["name"]), old_at, new_at))
            floor = new_at
        reports.append(
            ScoreTuning(
                score=score,
                rules=rules,
                old_points=[model.by_id[r].points for r in rules],
                new_points=points,
                weights=fit.weights,
                thresholds=moved,
                unseen=unseen_rules,
                auc_old=_auc_of(before, score, test, conversions),
                auc_new=_auc_of(after, score, test, conversions),
                train=len(train),
                test=len(test),
                test_converters=sum(1 for c in test if c in conversions),
            )
        )
    final = parse_model(write_document(tuned), "<tuned model>")
    return Tuning(tuned, final, reports)


def dump_model(tuning: Tuning, source: str) -> str:
    """The tuned model as YAML, headed by a comment that says where it came from."""
    lines = [f"# Tuned by `stream-scorer tune` from {source}."]
    for report in tuning.scores:
        lines.append(
            f"# {report.score}: held-out AUC {report.auc_old:.3f} (old) -> "
            f"{report.auc_new:.3f} (new) on {report.test} contacts"
        )
    lines.append("# Check it with: stream-scorer model check <this file>")
    body = write_document(tuning.document)
    return "\n".join(lines) + "\n" + body
