"""Unit tests for stream_scorer.review.evaluation, with every expected number worked out by hand.

Contacts are built directly as ScoreRow values (or written as scores.jsonl
lines for the readers); expected figures are computed in the comments, never
by asking the module.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from stream_scorer.errors import ScorerError
from stream_scorer.review.evaluation import (
    AwardRecord,
    EvaluationError,
    ScoreRow,
    auc,
    evaluate,
    read_meta,
    read_scores,
    roc,
)

AS_OF = "2026-03-01T00:00:00Z"
AS_OF_MS = 1_772_323_200_000  # 20513 days * 86_400_000 ms
DAY = 86_400_000


def meta(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": "b2b-default",
        "model_version": 1,
        "as_of": AS_OF,
        "events": 100,
        "rejected": 0,
        "contacts": 0,
        "point_in_time": "as_of",
        "scores": {
            "engagement": {
                "min": 0,
                "max": 100,
                "thresholds": [{"name": "mql", "at": 60, "rearm_below": 50}],
            }
        },
        "rules": {
            "demo-request": {"score": "engagement", "category": "behavior", "points": 30},
            "email-open": {"score": "engagement", "category": "behavior", "points": 1},
            "webinar": {"score": "engagement", "category": "behavior", "points": 12},
            "careers-page": {"score": "engagement", "category": "behavior", "points": -10},
            "fit-only": {"score": "fit", "category": "fit", "points": 10},
        },
    }
    base.update(changes)
    return base


def award(
    rule: str, points: int = 10, day: int = 1, score: str | None = "engagement"
) -> AwardRecord:
    return AwardRecord(
        rule=rule,
        points=points,
        score=score,
        category="behavior",
        event_id=f"e-{rule}-{day}",
        awarded_at=f"2026-02-{day:02d}T10:00:00Z",
    )


def row(
    contact: str,
    value: float,
    *awards: AwardRecord,
    gates: bool = True,
    as_of_ms: int = AS_OF_MS,
) -> ScoreRow:
    return ScoreRow(
        contact_id=contact,
        as_of=AS_OF,
        as_of_ms=as_of_ms,
        scores={"engagement": value},
        awards=awards,
        gates_passed=gates,
    )


AFTER = AS_OF_MS + 5 * DAY  # a conversion after as_of: a converter
BEFORE = AS_OF_MS - 5 * DAY  # a conversion before as_of: excluded


# --- AUC and ROC ---------------------------------------------------------------


def test_auc_perfect_ranking_is_one() -> None:
    assert auc([3, 4], [1, 2]) == 1.0


def test_auc_reversed_ranking_is_zero() -> None:
    assert auc([1, 2], [3, 4]) == 0.0


def test_auc_all_ties_is_one_half() -> None:
    assert auc([5, 5], [5, 5, 5]) == 0.5


def test_auc_mixed_case_by_hand() -> None:
    # Pairs (converter, non-converter), 3 x 3 = 9:
    #   3 vs 1, 5, 4: win, loss, loss           -> 1
    #   5 vs 1, 5, 4: win, tie (1/2), win       -> 2.5
    #   5 vs 1, 5, 4: same                      -> 2.5
    # AUC = 6 / 9.
    assert auc([3, 5, 5], [1, 5, 4]) == pytest.approx(6 / 9)


def test_auc_matches_counting_every_pair() -> None:
    rng = random.Random(5)
    pos = [rng.randint(0, 20) for _ in range(60)]
    neg = [rng.randint(0, 15) for _ in range(90)]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    assert auc(pos, neg) == pytest.approx(wins / (len(pos) * len(neg)))


def test_auc_needs_both_groups() -> None:
    with pytest.raises(EvaluationError, match="converter"):
        auc([], [1, 2])
    with pytest.raises(ScorerError):
        auc([1], [])


def test_roc_points_by_hand() -> None:
    # Converters 3, 5, 5; non-converters 1, 5, 4. Flag score >= t:
    #   t=5: 2 of 3 converters, 1 of 3 non-converters
    #   t=4: 2/3, 2/3;  t=3: 3/3, 2/3;  t=1: 3/3, 3/3
    points = roc([3, 5, 5], [1, 5, 4])
    assert [p["threshold"] for p in points] == [None, 5, 4, 3, 1]
    assert [p["fpr"] for p in points] == pytest.approx([0, 1 / 3, 2 / 3, 2 / 3, 1])
    assert [p["tpr"] for p in points] == pytest.approx([0, 2 / 3, 2 / 3, 1, 1])


def test_roc_runs_from_origin_to_one_one_monotonically() -> None:
    rng = random.Random(11)
    pos = [rng.randint(0, 100) for _ in range(50)]
    neg = [rng.randint(0, 80) for _ in range(200)]
    points = roc(pos, neg)
    assert (points[0]["fpr"], points[0]["tpr"], points[0]["threshold"]) == (0, 0, None)
    assert (points[-1]["fpr"], points[-1]["tpr"]) == (1, 1)
    assert points[-1]["threshold"] == min(pos + neg)
    for a, b in itertools.pairwise(points):
        assert b["fpr"] >= a["fpr"]
        assert b["tpr"] >= a["tpr"]
        assert b["threshold"] is not None
        assert a["threshold"] is None or b["threshold"] < a["threshold"]
    area = sum(
        (b["fpr"] - a["fpr"]) * (a["tpr"] + b["tpr"]) / 2 for a, b in itertools.pairwise(points)
    )
    assert area == pytest.approx(auc(pos, neg))


# --- thresholds ----------------------------------------------------------------

# a 80 converted; b 70 no; c 65 converted but fails a gate; d 50 converted;
# e 40 no; f 90 no. Converters a, c, d (3); non-converters b, e, f (3).
THRESHOLD_ROWS = [
    row("a", 80),
    row("b", 70),
    row("c", 65, gates=False),
    row("d", 50),
    row("e", 40),
    row("f", 90),
]
THRESHOLD_CONVERSIONS = {"a": AFTER, "c": AFTER, "d": AFTER}


def test_precision_and_recall_at_a_tier_count_only_contacts_passing_gates() -> None:
    report = evaluate(THRESHOLD_ROWS, THRESHOLD_CONVERSIONS, meta())
    (mql,) = report["thresholds"]
    # At 60 with gates passed: a, b, f (c is gated out). One converter among three.
    assert mql["name"] == "mql"
    assert mql["contacts_above"] == 3
    assert mql["converters_above"] == 1
    assert mql["precision"] == pytest.approx(1 / 3, abs=1e-6)
    assert mql["recall"] == pytest.approx(1 / 3, abs=1e-6)  # a of a, c, d
    assert mql["f1"] == pytest.approx(2 / 6, abs=1e-6)  # 2TP / (2TP + FP + FN) = 2/(2+2+2)
    assert mql["fpr"] == pytest.approx(2 / 3, abs=1e-6)  # b, f of b, e, f
    assert mql["lift"] == pytest.approx((1 / 3) / (3 / 6), abs=1e-5)
    assert mql["share_of_contacts"] == pytest.approx(3 / 6, abs=1e-6)


def test_suggested_threshold_maximises_f1() -> None:
    # Candidates among contacts passing gates (f90, a80, b70, d50, e40):
    #   90: TP0 FP1 FN3 -> 0      80: TP1 FP1 FN2 -> 2/5
    #   70: TP1 FP2 FN2 -> 2/6    50: TP2 FP2 FN1 -> 4/7 (best)
    #   40: TP2 FP3 FN1 -> 4/8
    report = evaluate(THRESHOLD_ROWS, THRESHOLD_CONVERSIONS, meta())
    best = report["suggested_threshold"]
    assert best["at"] == 50
    assert best["f1"] == pytest.approx(4 / 7, abs=1e-6)
    assert best["precision"] == pytest.approx(2 / 4, abs=1e-6)
    assert best["recall"] == pytest.approx(2 / 3, abs=1e-6)
    assert best["contacts_above"] == 4
    # Youden J = recall - FPR: -1/3, 0, -1/3, 0, -1/3: never better than chance.
    assert report["youden_threshold"] is None


def test_youden_threshold_by_hand() -> None:
    # Converters 90, 80, 20; non-converters 70, 30, 10.
    #   t=90: 1/3 - 0 = 1/3;  t=80: 2/3 - 0 = 2/3 (best);  t=70: 2/3 - 1/3 = 1/3
    #   t=30: 2/3 - 2/3 = 0;  t=20: 1 - 2/3 = 1/3;  t=10: 1 - 1 = 0
    rows = [row("p1", 90), row("p2", 80), row("p3", 20)]
    rows += [row("n1", 70), row("n2", 30), row("n3", 10)]
    report = evaluate(rows, {"p1": AFTER, "p2": AFTER, "p3": AFTER}, meta())
    youden = report["youden_threshold"]
    assert youden["at"] == 80
    assert youden["j"] == pytest.approx(2 / 3, abs=1e-6)


# --- point in time ---------------------------------------------------------------


def test_converted_at_or_before_as_of_is_excluded_and_counted() -> None:
    rows = [
        row("on-the-dot", 95, award("demo-request", 30)),  # converted exactly at as_of
        row("earlier", 90),  # converted before as_of
        row("later", 40),  # converted after as_of: a converter
        row("never", 20),
        row("also-never", 10),
    ]
    conversions = {"on-the-dot": AS_OF_MS, "earlier": BEFORE, "later": AFTER}
    report = evaluate(rows, conversions, meta())
    counts = report["counts"]
    assert counts["excluded_converted_before_as_of"] == 2
    assert counts["rows"] == 5
    assert counts["contacts"] == 3
    assert counts["converters"] == 1
    assert counts["non_converters"] == 2
    assert counts["conversion_rate"] == pytest.approx(1 / 3, abs=1e-6)
    assert report["averages"]["converters"] == 40
    assert report["averages"]["non_converters"] == 15
    listed = [
        o["contact_id"]
        for group in report["outliers"].values()
        for o in group  # the excluded contacts explain nothing
    ]
    assert sorted(listed) == ["also-never", "later", "never"]
    # "later" (40) outscores both non-converters (20, 10).
    assert report["roc"]["auc"] == 1.0
    assert any("left out" in note for note in report["notes"])


def test_conversions_without_rows_count_as_minimum_score_converters() -> None:
    rows = [row("a", 70), row("b", 30)]
    conversions = {"a": AFTER, "ghost": AFTER, "old-ghost": BEFORE}
    report = evaluate(rows, conversions, meta())
    counts = report["counts"]
    assert counts["conversions_without_scores"] == 2
    assert counts["conversions_without_scores_included"] == 1  # old-ghost converted before
    assert counts["excluded_converted_before_as_of"] == 1
    assert counts["contacts"] == 3  # a, b, ghost
    assert counts["converters"] == 2
    lowest = report["outliers"]["lowest_converters"]
    assert lowest[0]["contact_id"] == "ghost"
    assert lowest[0]["score"] == 0  # the score's min
    assert lowest[0]["no_history"] is True
    assert lowest[0]["awards"] == []
    # Converters 70 and 0 against non-converter 30: one win, one loss.
    assert report["roc"]["auc"] == 0.5


def test_before_conversion_backtest_keeps_every_rowless_converter() -> None:
    rows = [row("a", 70), row("b", 30)]
    report = evaluate(rows, {"ghost": BEFORE}, meta(point_in_time="before_conversion"))
    assert report["counts"]["conversions_without_scores_included"] == 1
    assert report["counts"]["excluded_converted_before_as_of"] == 0


def test_a_customer_before_the_history_starts_is_left_out() -> None:
    rows = [row("a", 70), row("b", 30)]
    starts = "2026-01-01T00:00:00Z"
    history_ms = AS_OF_MS - 59 * DAY  # 2026-01-01
    early, late = history_ms - DAY, history_ms + DAY
    report = evaluate(
        rows,
        {"old-customer": early, "new-customer": late},
        meta(point_in_time="before_conversion", first_event_at=starts),
    )
    assert report["counts"]["excluded_converted_before_history"] == 1
    assert report["counts"]["conversions_without_scores_included"] == 1
    assert report["counts"]["converters"] == 1
    assert any("before the history starts" in n for n in report["notes"])


def test_a_gate_on_another_score_does_not_hold_this_one_back() -> None:
    held = ScoreRow(
        contact_id="a",
        as_of=AS_OF,
        as_of_ms=AS_OF_MS,
        scores={"engagement": 70},
        gates_passed=False,  # some gate fails...
        gates_passed_by_score={"engagement": True, "fit": False},  # ...but not engagement's
    )
    report = evaluate([held, row("b", 30)], {"a": AFTER}, meta())
    (mql,) = report["thresholds"]
    assert (mql["contacts_above"], mql["converters_above"]) == (1, 1)
    assert report["counts"]["gated_out"] == 0


def test_no_converter_left_says_how_to_backtest() -> None:
    report = evaluate([row("a", 70), row("b", 30)], {"a": BEFORE}, meta())
    assert report["counts"]["converters"] == 0
    assert any("--conversions" in n for n in report["notes"])


def test_an_open_ended_score_spans_the_observed_values() -> None:
    open_ended = meta(scores={"engagement": {"min": 0, "max": None, "thresholds": []}})
    report = evaluate([row("a", 240), row("b", 30)], {"a": AFTER}, open_ended)
    assert report["score"]["max"] == 240
    assert sum(b["contacts"] for b in report["bands"]) == 2


# --- lift --------------------------------------------------------------------------


def test_rule_lift_by_hand() -> None:
    rows = [
        row("a", 60, award("demo-request", 30), award("email-open", 1), award("email-open", 1, 2)),
        row("b", 50, award("demo-request", 30), award("careers-page", -10)),
        row("c", 20, award("email-open", 1)),
        row("d", 10),
        row("e", 5, award("fit-only", 10, score="fit")),
    ]
    report = evaluate(rows, {"a": AFTER, "b": AFTER}, meta())
    rules = {r["rule"]: r for r in report["rules"]}
    # Overall rate 2/5. demo-request: a, b both converted -> 1.0, lift 2.5; without 0/3.
    demo = rules["demo-request"]
    assert (demo["contacts_with"], demo["converters_with"]) == (2, 2)
    assert (demo["contacts_without"], demo["converters_without"]) == (3, 0)
    assert demo["conversion_rate_with"] == 1.0
    assert demo["conversion_rate_without"] == 0.0
    assert demo["lift"] == pytest.approx(2.5)
    # email-open: a (twice, counted once) and c -> 1/2, lift 1.25; without b, d, e -> 1/3.
    opens = rules["email-open"]
    assert (opens["contacts_with"], opens["converters_with"]) == (2, 1)
    assert opens["lift"] == pytest.approx(1.25)
    assert opens["conversion_rate_without"] == pytest.approx(1 / 3, abs=1e-6)
    # webinar: nobody has it, so no rate and no lift; fit-only belongs to another score.
    assert rules["webinar"]["contacts_with"] == 0
    assert rules["webinar"]["lift"] is None
    assert "fit-only" not in rules
    # careers-page: b alone, converted -> 1.0, lift 2.5 like demo-request, with fewer contacts.
    careers = rules["careers-page"]
    assert (careers["contacts_with"], careers["lift"]) == (1, pytest.approx(2.5))
    order = ["demo-request", "careers-page", "email-open", "webinar"]
    assert [r["rule"] for r in report["rules"]] == order
    assert demo["small_sample"] is True  # 2 contacts
    # Negative points on a rule that goes with conversion: a weight to check.
    assert careers["sign_disagrees"] is True
    assert (demo["sign_disagrees"], rules["webinar"]["sign_disagrees"]) == (False, False)


# --- outliers ------------------------------------------------------------------------


def test_outliers_are_ordered_and_explained() -> None:
    rows = [row(f"conv-{i:02d}", 5 * i, award("webinar", 12, day=i + 1)) for i in range(12)]
    rows += [row(f"non-{i:02d}", 100 - 3 * i) for i in range(12)]
    rows.append(row("tie-b", 0, award("email-open", 1, day=9), award("demo-request", 30, day=3)))
    rows.append(row("tie-a", 0))
    conversions = {f"conv-{i:02d}": AFTER for i in range(12)} | {"tie-a": AFTER, "tie-b": AFTER}
    report = evaluate(rows, conversions, meta())
    lowest = report["outliers"]["lowest_converters"]
    highest = report["outliers"]["highest_non_converters"]
    assert len(lowest) == len(highest) == 10
    # Scores 0 (conv-00, tie-a, tie-b: ties by id), then 5, 10, ...
    assert [o["contact_id"] for o in lowest[:5]] == [
        "conv-00",
        "tie-a",
        "tie-b",
        "conv-01",
        "conv-02",
    ]
    assert [o["score"] for o in lowest] == sorted(o["score"] for o in lowest)
    assert [o["score"] for o in highest] == [100 - 3 * i for i in range(10)]
    tie_b = lowest[2]
    assert [(a["rule"], a["points"], a["awarded_at"]) for a in tie_b["awards"]] == [
        ("demo-request", 30, "2026-02-03T10:00:00Z"),  # chronological
        ("email-open", 1, "2026-02-09T10:00:00Z"),
    ]
    assert lowest[0]["converted_at"] == "2026-03-06T00:00:00Z"
    assert all(o["converted_at"] is None for o in highest)


# --- distribution and bands --------------------------------------------------------


def test_bands_and_histogram_cover_every_contact() -> None:
    rows = [row(f"c{v}", v) for v in (0, 9, 10, 59, 60, 99, 100)]
    report = evaluate(rows, {"c60": AFTER, "c100": AFTER, "c9": AFTER}, meta())
    bands = report["bands"]
    assert [b["label"] for b in bands][:2] == ["0\N{EN DASH}9", "10\N{EN DASH}19"]
    assert bands[-1]["label"] == "90\N{EN DASH}100"
    by_label = {b["label"]: b for b in bands}
    assert by_label["0\N{EN DASH}9"]["contacts"] == 2
    assert by_label["0\N{EN DASH}9"]["conversion_rate"] == 0.5
    assert by_label["60\N{EN DASH}69"]["contacts"] == 1
    assert by_label["90\N{EN DASH}100"]["contacts"] == 2  # 99 and 100 (max is included)
    assert by_label["20\N{EN DASH}29"]["conversion_rate"] is None  # nobody there
    assert sum(b["contacts"] for b in bands) == 7
    bins = report["distribution"]["bins"]
    assert len(bins) == 20
    assert sum(b["converters"] for b in bins) == 3
    assert sum(b["non_converters"] for b in bins) == 4
    assert bins[-1]["converters"] == 1  # 100
    # The report is plain JSON (no NaN, no tuples).
    assert json.loads(json.dumps(report, allow_nan=False))["counts"]["contacts"] == 7


def test_unknown_score_and_missing_score_are_errors() -> None:
    with pytest.raises(EvaluationError, match=r"no score 'fit' \(it has engagement\)"):
        evaluate([row("a", 1)], {}, meta(), score="fit")
    bare = ScoreRow(contact_id="x", as_of=AS_OF, as_of_ms=AS_OF_MS, scores={}, line=7)
    with pytest.raises(EvaluationError, match=r"scores.jsonl:7: contact 'x' has no 'engagement'"):
        evaluate([bare], {}, meta())


def test_no_converters_still_reports() -> None:
    report = evaluate([row("a", 10), row("b", 20)], {}, meta())
    assert report["roc"] == {"auc": None, "points": []}
    assert report["suggested_threshold"] is None
    assert report["counts"]["conversion_rate"] == 0.0


# --- readers ---------------------------------------------------------------------------


def _line(**changes: Any) -> str:
    base: dict[str, Any] = {
        "contact_id": "c-1",
        "as_of": AS_OF,
        "scores": {"engagement": 57},
        "display": {"engagement": 2057},
        "tiers": {"engagement": ["mql"]},
        "gates_passed": True,
        "gates": {"service-region": True},
        "grade": None,
        "awards": [
            {
                "score": "engagement",
                "rule": "demo-request",
                "category": "behavior",
                "points": 30,
                "event_id": "e-9",
                "awarded_at": "2026-02-27T10:00:00Z",
                "expires_at": None,
            }
        ],
    }
    base.update(changes)
    return json.dumps(base)


def test_read_scores_parses_rows(tmp_path: Path) -> None:
    path = tmp_path / "scores.jsonl"
    path.write_text(_line() + "\n\n" + _line(contact_id="c-2", awards=[]) + "\n")
    first, second = read_scores(path)
    assert first.contact_id == "c-1"
    assert first.as_of_ms == AS_OF_MS
    assert first.scores == {"engagement": 57}
    assert first.tiers == {"engagement": ("mql",)}
    assert first.awards[0].rule == "demo-request"
    assert first.awards[0].points == 30
    assert (second.contact_id, second.line, second.awards) == ("c-2", 3, ())


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "expected an object"),
        (_line(contact_id=""), "contact_id is missing"),
        (_line(as_of="yesterday"), "as_of: 'yesterday' is not an RFC 3339 time"),
        (_line(scores={"engagement": "high"}), "scores.engagement: 'high' is not a number"),
        (_line(awards=[{"points": 3}]), r"awards\[0\]: rule is missing"),
        (_line(gates_passed="yes"), "gates_passed"),
        (_line(), r"contact 'c-1' already has a row \(line 1\)"),
    ],
)
def test_read_scores_errors_name_the_line(tmp_path: Path, bad: str, message: str) -> None:
    path = tmp_path / "scores.jsonl"
    path.write_text(_line() + "\n\n" + bad + "\n" + _line(contact_id="c-9") + "\n")
    with pytest.raises(EvaluationError, match=f"^{re.escape(str(path))}:3: .*{message}"):
        read_scores(path)


def test_read_scores_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match=r"scores\.jsonl: No such file"):
        read_scores(tmp_path / "scores.jsonl")


def test_read_meta(tmp_path: Path) -> None:
    path = tmp_path / "backtest.json"
    path.write_text(json.dumps(meta(), indent=2))
    assert read_meta(path)["scores"]["engagement"]["max"] == 100
    path.write_text('{\n  "model": "x",\n  "as_of": nope\n}\n')
    with pytest.raises(EvaluationError, match=f"^{re.escape(str(path))}:3: not JSON"):
        read_meta(path)
    path.write_text(json.dumps(meta(scores={"engagement": {"min": 5, "max": 1}})))
    with pytest.raises(EvaluationError, match="min 5 is above max 1"):
        read_meta(path)
    path.write_text(json.dumps(meta(point_in_time="whenever")))
    with pytest.raises(EvaluationError, match="point_in_time"):
        read_meta(path)


# --- the command line --------------------------------------------------------------


def test_the_cli_reports_and_refuses_a_report_with_no_converter_left(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from stream_scorer.cli import cli
    from stream_scorer.scoring import load_model

    from ..support.scenario import make_stream

    events = make_stream(load_model("config/scoring.yaml"), contacts=30, events=500, seed=8)
    history = tmp_path / "events.jsonl"
    history.write_text("".join(e.model_dump_json() + "\n" for e in events))
    conversions = tmp_path / "conversions.csv"
    conversions.write_text(
        "contact_id,converted_at\nc-001,2026-10-15T00:00:00Z\nc-002,2026-10-20T00:00:00Z\n"
    )
    runner = CliRunner()
    common = ["--model", "config/scoring.yaml", "--events", str(history)]

    # Scored at the end of the history, after both converted: nothing left to evaluate.
    late = tmp_path / "late"
    assert runner.invoke(cli, ["backtest", *common, "--out", str(late)]).exit_code == 0
    args = ["evaluate", "--scores", str(late / "scores.jsonl"), "--conversions", str(conversions)]
    result = runner.invoke(cli, [*args, "--out", str(late)])
    assert result.exit_code == 1
    assert "warning: No converter is left" in result.output

    fair = tmp_path / "fair"
    backtest = ["backtest", *common, "--conversions", str(conversions), "--out", str(fair)]
    assert runner.invoke(cli, backtest).exit_code == 0
    args = ["evaluate", "--scores", str(fair / "scores.jsonl"), "--conversions", str(conversions)]
    result = runner.invoke(cli, [*args, "--out", str(fair)])
    assert result.exit_code == 0, result.output
    report = json.loads((fair / "report.json").read_text())
    assert report["counts"]["converters"] == 2
    assert report["point_in_time"] == "before_conversion"
    assert (fair / "report.html").stat().st_size > 10_000
