"""deploy/: the scrape config, alert rules and dashboard name metrics the worker exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from stream_scorer.worker.metrics import Metrics

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
NAME = re.compile(r"\bscorer_[a-z_]+")


def _exported() -> set[str]:
    names = set()
    for family in Metrics().registry.collect():
        for sample in family.samples:
            names.add(sample.name)
        names.add(family.name + ("_total" if family.type == "counter" else ""))
        if family.type == "histogram":
            names |= {f"{family.name}_{s}" for s in ("bucket", "sum", "count")}
    return names


def test_dashboard_and_rules_use_only_exported_metrics() -> None:
    exported = _exported()
    dashboard = json.loads((DEPLOY / "grafana" / "stream-scorer.json").read_text())
    rules = yaml.safe_load((DEPLOY / "alerts.rules.yml").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    used = {n for e in exprs for n in NAME.findall(e)}
    assert used, "the dashboard shows no metric"
    assert used <= exported, f"not exported: {sorted(used - exported)}"


def test_every_metric_is_on_the_dashboard() -> None:
    dashboard = (DEPLOY / "grafana" / "stream-scorer.json").read_text()
    for family in Metrics().registry.collect():
        assert family.name in dashboard, f"{family.name} is on no panel"


def test_prometheus_scrapes_the_worker_metrics_path() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    job = config["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics"
    assert (DEPLOY / config["rule_files"][0]).exists()
