"""Unit tests for stream_scorer.review.report: the self-contained HTML page and its JSON.

A few hundred synthetic contacts (seeded) go through evaluate(); the page must
carry everything inline, escape hostile data, and render in headless Chromium
with every section, no console message and a real screenshot.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from stream_scorer.review.evaluation import AwardRecord, ScoreRow, evaluate
from stream_scorer.review.report import render_html, write_report

AS_OF = "2026-03-01T00:00:00Z"
AS_OF_MS = 1_772_323_200_000
DAY = 86_400_000
HOSTILE_ID = "<script>alert(1)</script>"
HOSTILE_RULE = '"><img src=x onerror=alert(2)>'
RULES: dict[str, tuple[str, int]] = {
    "demo-request": ("behavior", 30),
    "free-trial": ("behavior", 25),
    "pricing-page": ("behavior", 10),
    "email-open": ("behavior", 1),
    "careers-page": ("behavior", -10),
    "senior-title": ("fit", 20),
    HOSTILE_RULE: ("behavior", 5),
}
SECTIONS = (
    "summary",
    "distribution",
    "roc",
    "bands",
    "thresholds",
    "lowest-converters",
    "highest-non-converters",
    "rules",
    "method",
)


def synthetic(seed: int = 42, contacts: int = 300) -> dict[str, Any]:
    """A report over generated contacts whose chance to convert grows with their score."""
    rng = random.Random(seed)
    meta: dict[str, Any] = {
        "model": "b2b-default",
        "model_version": 1,
        "as_of": AS_OF,
        "events": 4321,
        "rejected": 0,
        "contacts": contacts,
        "point_in_time": "as_of",
        "scores": {
            "engagement": {
                "min": 0,
                "max": 100,
                "thresholds": [
                    {"name": "mql", "at": 60, "rearm_below": 50},
                    {"name": "sql", "at": 85, "rearm_below": 75},
                ],
            }
        },
        "rules": {
            rule: {"score": "engagement", "category": category, "points": points}
            for rule, (category, points) in RULES.items()
        },
    }
    rows: list[ScoreRow] = []
    conversions: dict[str, int] = {}
    for i in range(contacts):
        awards = tuple(
            AwardRecord(
                rule=rule,
                points=points,
                score="engagement",
                category=category,
                event_id=f"e-{i}-{rule}",
                awarded_at=f"2026-02-{rng.randint(1, 28):02d}T10:00:00Z",
            )
            for rule, (category, points) in RULES.items()
            if rng.random() < 0.3
        )
        value = max(0, min(100, sum(a.points for a in awards) + rng.randint(0, 30)))
        contact = f"c-{i:04d}"
        rows.append(
            ScoreRow(
                contact_id=contact,
                as_of=AS_OF,
                as_of_ms=AS_OF_MS,
                scores={"engagement": value},
                awards=awards,
                gates_passed=rng.random() < 0.9,
                tiers={"engagement": ("mql",) if value >= 60 else ()},
            )
        )
        if rng.random() < value / 140:
            conversions[contact] = AS_OF_MS + rng.randint(1, 60) * DAY
    # A hostile contact id that tops the non-converters, so the page must show it.
    rows.append(
        ScoreRow(
            contact_id=HOSTILE_ID,
            as_of=AS_OF,
            as_of_ms=AS_OF_MS,
            scores={"engagement": 100},
            gates_passed=True,
        )
    )
    conversions["c-0000"] = AS_OF_MS - DAY  # converted before as_of: excluded
    return evaluate(rows, conversions, meta)


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return synthetic()


@pytest.fixture(scope="module")
def page(report: dict[str, Any]) -> str:
    return render_html(report)


def test_page_is_self_contained(page: str) -> None:
    assert page.startswith("<!doctype html>")
    lowered = page.lower()
    for forbidden in ('src="http', "<script", "<link", "@import", "url(", "http://", "https://"):
        assert forbidden not in lowered, forbidden
    assert "<svg" in page  # the charts are inline
    assert "Content-Security-Policy" in page


def test_page_escapes_hostile_data(report: dict[str, Any], page: str) -> None:
    # The hostile id is listed among the highest-scoring non-converters ...
    assert report["outliers"]["highest_non_converters"][0]["contact_id"] == HOSTILE_ID
    assert HOSTILE_ID not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # ... and the hostile rule id in the lift table cannot open a tag or an attribute.
    assert HOSTILE_RULE not in page
    assert "<img" not in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in page


def test_page_shows_the_figures(report: dict[str, Any], page: str) -> None:
    auc = report["roc"]["auc"]
    assert 0.6 < auc < 1  # the synthetic scores do predict conversion
    assert f"AUC {auc:.3f}" in page
    counts = report["counts"]
    assert counts["excluded_converted_before_as_of"] == 1
    assert f"{counts['conversion_rate'] * 100:.1f}%" in page
    assert "Conversion report \N{EM DASH} b2b-default v1 \N{MIDDLE DOT} engagement" in page
    for section in SECTIONS:
        assert f'id="{section}"' in page, section
    best = report["suggested_threshold"]
    assert re.search(rf"Suggested \(best F1\)</td><td class=\"num\">{best['at']}</td>", page)


def test_page_without_converters_renders(report: dict[str, Any]) -> None:
    empty = evaluate(
        [ScoreRow(contact_id="a", as_of=AS_OF, as_of_ms=AS_OF_MS, scores={"engagement": 5})],
        {},
        {
            "model": "m",
            "as_of": AS_OF,
            "scores": {"engagement": {"min": 0, "max": 100, "thresholds": []}},
            "rules": {},
        },
    )
    page = render_html(empty)
    assert "AUC n/a" in page
    assert "needs converters and non-converters" in page


def test_write_report(tmp_path: Path, report: dict[str, Any]) -> None:
    json_path, html_path = write_report(report, tmp_path / "out")
    assert (json_path.name, html_path.name) == ("report.json", "report.html")
    text = json_path.read_text(encoding="utf-8")
    assert json.loads(text) == json.loads(json.dumps(report))
    assert text.startswith('{\n  "as_of": ')  # indented, keys sorted
    assert html_path.read_text(encoding="utf-8") == render_html(report)


def _chromium() -> str:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "scripts/setup installs Debian's chromium for this test"
    return chromium


def _browse(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def test_report_in_headless_chromium(tmp_path: Path, report: dict[str, Any]) -> None:
    chromium = _chromium()
    _, html_path = write_report(report, tmp_path / "out")
    url = html_path.as_uri()
    common = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    common += ["--virtual-time-budget=3000", f"--user-data-dir={tmp_path / 'chrome'}"]
    logged = ["--enable-logging=stderr", "--v=0"]

    run = _browse([*common, *logged, "--dump-dom", url])
    dom = run.stdout
    for section in SECTIONS:
        assert f'id="{section}"' in dom, section
    assert f"AUC {report['roc']['auc']:.3f}" in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert "<script" not in dom  # the hostile id stayed text
    assert dom.count("<svg") == 3  # histogram, ROC, bands
    rows = re.search(r'id="rules".*?<tbody>(.*?)</tbody>', dom, re.S)
    assert rows is not None
    assert rows.group(1).count("<tr") == len(RULES)
    # Chromium logs console messages (CSP refusals included) as "CONSOLE" lines.
    assert ":CONSOLE" not in run.stderr, run.stderr

    # The same check does catch a page that tries to load something.
    bad = tmp_path / "bad.html"
    bad.write_text(
        render_html(report).replace("</main>", '<img src="https://example.invalid/x.png"></main>')
    )
    assert ":CONSOLE" in _browse([*common, *logged, "--dump-dom", bad.as_uri()]).stderr

    shot = tmp_path / "report.png"
    _browse([*common, "--window-size=1280,2800", f"--screenshot={shot}", url])
    png = shot.read_bytes()
    print(f"report screenshot: {shot}")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1280, 2800)
    assert len(png) > 100_000  # charts and tables, not a blank page
