"""Tuning: a logistic regression that recovers weights, and a tuned model that ranks better."""

from __future__ import annotations

import copy
import math
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from stream_scorer.cli import cli
from stream_scorer.review.backtest import Backtest, History, read_history, run_backtest
from stream_scorer.review.conversions import read_conversions
from stream_scorer.review.evaluation import auc
from stream_scorer.review.simulation import simulate
from stream_scorer.review.tuning import Tuning, features, fit_logistic, held_out, tune
from stream_scorer.scoring import load_model, parse_model
from stream_scorer.scoring.model import read_document, write_document
from stream_scorer.times import epoch_ms

MODEL_PATH = Path("config/scoring.yaml")
MODEL = load_model(MODEL_PATH)


def _logistic_data(weights: list[float], intercept: float, n: int, seed: int) -> tuple[
    list[dict[int, float]], list[int]
]:  # fmt: skip
    rng = random.Random(seed)
    rows, labels = [], []
    for _ in range(n):
        row = {j: float(rng.randrange(1, 4)) for j in range(len(weights)) if rng.random() < 0.4}
        z = intercept + sum(weights[j] * x for j, x in row.items())
        labels.append(1 if rng.random() < 1 / (1 + math.exp(-z)) else 0)
        rows.append(row)
    return rows, labels


def test_the_regression_recovers_known_weights() -> None:
    truth = [1.2, -0.8, 0.0, 0.4, -1.5]
    rows, labels = _logistic_data(truth, -1.0, 20_000, seed=3)
    fit = fit_logistic(rows, labels, len(truth), l2=1.0)
    for got, want in zip(fit.weights, truth, strict=True):
        assert abs(got - want) < 0.1, (fit.weights, truth)
    assert abs(fit.intercept + 1.0) < 0.15
    assert fit.iterations < 20


def test_the_penalty_shrinks_weights_towards_zero() -> None:
    rows, labels = _logistic_data([1.0, -1.0], -0.5, 2_000, seed=4)
    loose = fit_logistic(rows, labels, 2, l2=0.1)
    tight = fit_logistic(rows, labels, 2, l2=5_000.0)
    assert all(abs(t) < abs(w) / 2 for t, w in zip(tight.weights, loose.weights, strict=True))


def test_the_held_out_split_is_stable_and_about_the_share_asked() -> None:
    contacts = [f"c-{i}" for i in range(10_000)]
    chosen = [c for c in contacts if held_out(c, 0.3, seed=0)]
    assert chosen == [c for c in contacts if held_out(c, 0.3, seed=0)]
    assert 0.27 < len(chosen) / len(contacts) < 0.33
    assert chosen != [c for c in contacts if held_out(c, 0.3, seed=1)]


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("simulated")
    simulate(3_000, 120, out, seed=11)
    return out


@pytest.fixture(scope="module")
def tuned(history: Path) -> tuple[History, dict[str, int], dict[str, Any], Tuning]:
    events = read_history(history / "events.jsonl", MODEL)
    conversions = read_conversions(history / "conversions.csv")
    document = read_document(MODEL_PATH.read_text())
    return (
        events,
        conversions,
        document,
        tune(MODEL, document, events.events, events.times, conversions),
    )


def _held_out_auc(result: Backtest, conversions: dict[str, int]) -> float:
    test = [c for c in result.states if held_out(c, 0.3, 0)]
    pos = [float(result.states[c].values["engagement"]) for c in test if c in conversions]
    neg = [float(result.states[c].values["engagement"]) for c in test if c not in conversions]
    return auc(pos, neg)


def _random_weights(document: dict[str, Any], seed: int) -> str:
    rng = random.Random(seed)
    doc = copy.deepcopy(document)
    for rule in doc["rules"]:
        low = 1 if "cap" in rule else -30  # a capped rule cannot subtract
        rule["points"] = rng.choice([p for p in range(low, 31) if p])
        if "cap" in rule and "points" in rule["cap"]:
            rule["cap"]["points"] = rule["points"] * 5
    return write_document(doc)


def test_tuned_weights_rank_held_out_contacts_better_than_random_and_default(
    tuned: tuple[History, dict[str, int], dict[str, Any], Tuning],
) -> None:
    events, conversions, document, tuning = tuned

    (report,) = tuning.scores
    assert report.test > 500
    assert report.test_converters > 20
    after = run_backtest(tuning.model, events.events, events.times, conversions=conversions)
    assert _held_out_auc(after, conversions) == pytest.approx(report.auc_new)
    default = run_backtest(MODEL, events.events, events.times, conversions=conversions)
    assert _held_out_auc(default, conversions) == pytest.approx(report.auc_old)
    assert report.auc_new > report.auc_old

    for seed in range(3):
        model = parse_model(_random_weights(document, seed))
        scored = run_backtest(model, events.events, events.times, conversions=conversions)
        assert report.auc_new > _held_out_auc(scored, conversions) + 0.05, seed


def test_a_tuned_model_keeps_every_rule_but_its_points(
    tuned: tuple[History, dict[str, int], dict[str, Any], Tuning],
) -> None:
    _, _, document, tuning = tuned
    old = {r["id"]: r for r in document["rules"]}
    new = {r["id"]: r for r in tuning.document["rules"]}
    assert list(new) == list(old)
    for rule_id, rule in new.items():
        before = old[rule_id]
        assert {k: v for k, v in rule.items() if k not in ("points", "cap")} == {
            k: v for k, v in before.items() if k not in ("points", "cap")
        }
        assert rule["points"] != 0
        if "cap" in before:
            assert rule["points"] > 0, "a capped rule cannot subtract"
            if "points" in before["cap"]:  # still as many awards per window
                awards = before["cap"]["points"] // before["points"]
                assert rule["cap"]["points"] == max(1, round(awards * rule["points"]))
            else:
                assert rule["cap"] == before["cap"]
    thresholds = tuning.document["scores"]["engagement"]["thresholds"]
    assert [t["name"] for t in thresholds] == ["mql", "sql"]
    assert 0 < thresholds[0]["at"] < thresholds[1]["at"] <= 100
    assert all(t["rearm_below"] < t["at"] for t in thresholds)
    assert tuning.document["version"] == document["version"] + 1


def test_features_count_live_awards_per_rule(history: Path) -> None:
    events = read_history(history / "events.jsonl", MODEL)
    result = run_backtest(MODEL, events.events, events.times)
    rules = [r.id for r in MODEL.spec.rules]
    for contact in sorted(result.states)[:50]:
        state = result.states[contact]
        row = features(state, rules)
        assert sum(row.values()) == len(state.live_awards())
        for i, count in row.items():
            assert count == sum(1 for a in state.live_awards() if a.rule == rules[i])


def test_the_cli_writes_a_valid_model_and_prints_both_aucs(history: Path, tmp_path: Path) -> None:
    out = tmp_path / "tuned.yaml"
    args = ["tune", "--model", str(MODEL_PATH), "--events", str(history / "events.jsonl")]
    args += ["--conversions", str(history / "conversions.csv"), "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "held-out AUC: old 0." in result.output
    assert "threshold mql: 60 -> " in result.output
    text = out.read_text()
    assert text.startswith("# Tuned by `stream-scorer tune` from events.jsonl.")
    tuned = load_model(out)
    assert [r.id for r in tuned.spec.rules] == [r.id for r in MODEL.spec.rules]
    assert tuned.version == MODEL.version + 1
    check = CliRunner().invoke(cli, ["model", "check", str(out)])
    assert check.exit_code == 0, check.output


def test_rules_nobody_earned_keep_their_points_and_tiers_stay_reachable(history: Path) -> None:
    path = Path("config/examples/gate-blocks-class-digit.yaml")
    model = load_model(path)
    document = read_document(path.read_text())
    events = read_history(history / "events.jsonl", model)
    conversions = read_conversions(history / "conversions.csv")
    tuning = tune(model, document, events.events, events.times, conversions)
    old = {r["id"]: r["points"] for r in document["rules"]}
    new = {r["id"]: r["points"] for r in tuning.document["rules"]}
    unseen = [rule for report in tuning.scores for rule in report.unseen]
    assert unseen, "the simulated history never sets some of this model's attributes"
    for rule in unseen:
        assert new[rule] == old[rule]
    # Every simulated contact fails this model's gates: its thresholds have nothing to match.
    for report in tuning.scores:
        assert all(old_at == new_at for _, old_at, new_at in report.thresholds)


def test_a_tier_nobody_reached_moves_just_above_the_highest_new_score() -> None:
    from stream_scorer.review.tuning import _matched_threshold

    assert _matched_threshold([10, 20, 30], [1, 2, 3], at=50, ceiling=100) == 4
    assert _matched_threshold([10, 20, 30], [1, 2, 3], at=20, ceiling=100) == 2
    assert _matched_threshold([10, None, 30], [None, 2, 3], at=40, ceiling=100) == 4
    assert _matched_threshold([10, 30], [None, None], at=25, ceiling=100) == 25


def test_a_split_without_converters_is_a_clear_error() -> None:
    from stream_scorer.errors import TuningError

    from ..support.scenario import event_at

    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    events = [event_at(t0, f"e{i}", "demo_request", i, contact=f"c-{i}") for i in range(40)]
    times = [epoch_ms(e.occurred_at) for e in events]
    document = read_document(MODEL_PATH.read_text())
    with pytest.raises(TuningError, match="converters and non-converters in both splits"):
        tune(MODEL, document, events, times, {})
    with pytest.raises(TuningError, match="no events to learn from"):
        tune(MODEL, document, [], [], {})


def test_the_cli_refuses_no_penalty(history: Path, tmp_path: Path) -> None:
    args = ["tune", "--model", str(MODEL_PATH), "--events", str(history / "events.jsonl")]
    args += ["--conversions", str(history / "conversions.csv"), "--out", str(tmp_path / "t.yaml")]
    result = CliRunner().invoke(cli, [*args, "--l2", "0"])
    assert result.exit_code == 2
    assert "--l2" in result.output
