"""Backtests: the same results as the engine, as of a time or just before each conversion."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stream_scorer.cli import cli
from stream_scorer.errors import InvalidEvent
from stream_scorer.event_files import FILE_LIMITS
from stream_scorer.events import Event, decode_event
from stream_scorer.review.backtest import backtest_file, read_history, run_backtest, score_row
from stream_scorer.scoring import (
    advance_in_place,
    alert_id,
    alert_payload,
    explain,
    load_model,
    parse_model,
    replay,
)
from stream_scorer.times import epoch_ms

from ..support.scenario import event_at, make_stream

MODEL_PATH = Path("config/scoring.yaml")
MODEL = load_model(MODEL_PATH)
T0 = datetime(2026, 3, 1, tzinfo=UTC)
DAY = 86_400_000


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _same_event(fast: Event, slow: Event) -> bool:
    return (
        type(fast) is Event
        and fast == slow
        and fast.model_dump_json() == slow.model_dump_json()
        and list(fast.__dict__) == list(slow.__dict__)
    )


def test_the_fast_reader_accepts_exactly_what_the_wire_validator_accepts(tmp_path: Path) -> None:
    good = make_stream(MODEL, contacts=20, events=300, seed=5)
    lines = [e.model_dump_json() for e in good]
    base = json.loads(lines[0])
    tricky = [
        {**base, "event_id": "t1", "type": "page_visit\n"},  # $ would match before \n
        {**base, "event_id": "t2", "contact_id": "{c-1}"},
        {**base, "event_id": ""},
        {**base, "event_id": "x" * 201},
        {**base, "event_id": "t3", "occurred_at": "2026-03-01T10:00:00"},  # no offset
        {**base, "event_id": "t4", "occurred_at": "2026-03-01 10:00:00+02:00"},  # space
        {**base, "event_id": "t5", "occurred_at": 1772352000},
        {**base, "event_id": "t6", "type": "Page_Visit"},
        {**base, "event_id": "t7", "properties": []},
        {**base, "event_id": "t8", "type": "page_scroll"},  # valid, but no rule scores it
        {"type": "track", "messageId": "m-1", "userId": "c-9", "event": "Demo Request",
         "timestamp": "2026-03-01T10:00:00Z"},
    ]  # fmt: skip
    lines += [json.dumps(d) for d in tricky] + ["{not json", "[]"]
    history = read_history(_write(tmp_path / "events.jsonl", lines), MODEL)

    expected: list[Event] = []
    reasons: dict[str, int] = {}
    for line in lines:
        try:
            event = decode_event(line.encode(), FILE_LIMITS)
        except InvalidEvent as exc:
            reasons[exc.reason] = reasons.get(exc.reason, 0) + 1
            continue
        if event.type not in MODEL.event_types:
            reasons["unknown_type"] = reasons.get("unknown_type", 0) + 1
            continue
        expected.append(event)
    expected.sort(key=lambda e: e.occurred_at)
    assert len(history.events) == len(expected)
    assert all(_same_event(a, b) for a, b in zip(history.events, expected, strict=True))
    assert history.times == [epoch_ms(e.occurred_at) for e in expected]
    assert dict(history.rejected) == reasons
    assert reasons["unknown_type"] >= 2  # page_scroll lines of the stream, and t8
    assert any(e.event_id == "t4" for e in history.events)  # a space is RFC 3339 too
    assert any(e.type == "demo_request" and e.contact_id == "c-9" for e in history.events)
    assert all(text.startswith(f"line {n}: ") for n, text in history.examples)


def test_a_backtest_is_the_engine_replay_as_of_the_last_event(tmp_path: Path) -> None:
    events = make_stream(MODEL, contacts=30, events=800, seed=9)
    shuffled = sorted(events, key=lambda e: e.event_id)  # a file need not be in time order
    path = _write(tmp_path / "events.jsonl", [e.model_dump_json() for e in shuffled])
    history = read_history(path, MODEL)
    result = run_backtest(MODEL, history.events, history.times)

    known = sorted((e for e in events if e.type in MODEL.event_types), key=lambda e: e.occurred_at)
    last = epoch_ms(known[-1].occurred_at)
    states, crossings = replay(known, MODEL, until=last)
    assert result.as_of == last
    assert set(result.states) == set(states)
    for contact, state in states.items():
        assert result.states[contact].to_json() == state.to_json()
        assert score_row(contact, result.states[contact], MODEL, last) == score_row(
            contact, state, MODEL, last
        )
    assert sorted(alert_id(c, MODEL) for c in result.crossings) == sorted(
        alert_id(c, MODEL) for c in crossings
    )


def test_as_of_ignores_later_events_and_counts_expiry_up_to_it() -> None:
    events = [
        event_at(T0, "e1", "page_visit", 0, url="https://a.io/pricing"),  # 10, expires in 30d
        event_at(T0, "e2", "demo_request", 40 * DAY),  # 30, after the cut-off
    ]
    times = [epoch_ms(e.occurred_at) for e in events]
    before = run_backtest(MODEL, events, times, as_of=times[0] + 29 * DAY)
    assert before.states["c1"].values["engagement"] == 11  # pricing 10 + a page visit 1
    assert before.events == 1
    expired = run_backtest(MODEL, events, times, as_of=times[0] + 31 * DAY)
    assert expired.states["c1"].values["engagement"] == 0
    assert expired.cutoffs["c1"] == times[0] + 31 * DAY
    row = score_row("c1", expired.states["c1"], MODEL, expired.cutoffs["c1"])
    assert row["as_of"] == "2026-04-01T00:00:00.000Z"
    assert row["awards"] == []


def test_converters_are_scored_just_before_they_converted() -> None:
    events = [
        event_at(T0, "a1", "demo_request", 0, contact="a"),
        event_at(T0, "a2", "free_trial", DAY, contact="a"),  # unknown type: ignored anyway
        event_at(T0, "a3", "trial_signup", 2 * DAY, contact="a"),  # after converting
        event_at(T0, "b1", "demo_request", 0, contact="b"),
        event_at(T0, "b2", "trial_signup", 2 * DAY, contact="b"),
    ]
    events.sort(key=lambda e: e.occurred_at)
    times = [epoch_ms(e.occurred_at) for e in events]
    converted = {"a": times[0] + DAY}
    result = run_backtest(MODEL, events, times, conversions=converted)
    assert result.point_in_time == "before_conversion"
    assert result.cutoffs == {"a": converted["a"] - 1, "b": times[-1]}
    a, b = result.states["a"], result.states["b"]
    assert a.values["engagement"] == 30
    assert b.values["engagement"] == 50  # 55, and behaviour is capped at 50
    assert [award.event_id for award in explain(a, MODEL)["engagement"].awards] == ["a1"]


def test_the_cli_writes_scores_alerts_and_a_summary(tmp_path: Path) -> None:
    events = make_stream(MODEL, contacts=25, events=600, seed=3)
    path = _write(tmp_path / "events.jsonl", [e.model_dump_json() for e in events] + ["{bad"])
    out = tmp_path / "out"
    args = ["backtest", "--model", str(MODEL_PATH), "--events", str(path), "--out", str(out)]
    result = CliRunner().invoke(cli, [*args, "--jobs", "2"])
    assert result.exit_code == 0, result.output
    assert "events/s" in result.output
    assert "malformed_json: 1" in result.output

    known = sorted((e for e in events if e.type in MODEL.event_types), key=lambda e: e.occurred_at)
    last = epoch_ms(known[-1].occurred_at)
    states, crossings = replay(known, MODEL)
    for contact, state in states.items():
        crossings += advance_in_place(state, last, MODEL, contact).crossings
    rows = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert [r["contact_id"] for r in rows] == sorted(states)
    for row in rows:
        assert row == score_row(row["contact_id"], states[row["contact_id"]], MODEL, last)
        assert row["scores"]["engagement"] == states[row["contact_id"]].values["engagement"]
    alerts = [line.encode() for line in (out / "alerts.jsonl").read_text().splitlines()]
    assert sorted(alerts) == sorted(alert_payload(c, MODEL) for c in crossings)
    meta = json.loads((out / "backtest.json").read_text())
    assert meta["rejected_by_reason"]["malformed_json"] == 1
    assert meta["contacts"] == len(states)
    assert meta["scores"]["engagement"]["thresholds"][0] == {
        "name": "mql",
        "at": 60,
        "rearm_below": 50,
    }


def test_the_cli_reads_csv_and_a_cut_off(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["event_id", "contact_id", "type", "occurred_at", "url"])
        writer.writerow(["e1", "c1", "page_visit", "2026-03-01T00:00:00Z", "/pricing"])
        writer.writerow(["e2", "c1", "demo_request", "2026-03-05T00:00:00Z", ""])
    out = tmp_path / "out"
    args = ["backtest", "--model", str(MODEL_PATH), "--events", str(path), "--out", str(out)]
    result = CliRunner().invoke(cli, [*args, "--as-of", "2026-03-02T00:00:00Z"])
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert row["scores"] == {"engagement": 11}
    assert row["as_of"] == "2026-03-02T00:00:00.000Z"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--as-of", "yesterday"], "--as-of: 'yesterday' is not an RFC 3339 time"),
        (["--as-of", "2026-03-02T00:00:00"], "has no UTC offset"),
    ],
)
def test_the_cli_names_a_bad_option(tmp_path: Path, extra: list[str], message: str) -> None:
    path = _write(tmp_path / "e.jsonl", [])
    args = ["backtest", "--model", str(MODEL_PATH), "--events", str(path), "--out", str(tmp_path)]
    result = CliRunner().invoke(cli, [*args, *extra])
    assert result.exit_code == 2
    assert message in result.output


def test_conversions_name_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "conversions.csv"
    path.write_text("contact_id,converted_at\nc1,2026-03-01T00:00:00Z\nc2,soon\n")
    events = _write(tmp_path / "e.jsonl", [])
    args = ["backtest", "--model", str(MODEL_PATH), "--events", str(events)]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path), "--conversions", str(path)])
    assert result.exit_code == 2
    assert f"{path}:3: converted_at: 'soon' is not an RFC 3339 time" in result.output


def test_a_history_with_nothing_to_score_is_an_error(tmp_path: Path) -> None:
    events = _write(tmp_path / "e.jsonl", ["{bad", ""])
    out = tmp_path / "out"
    args = ["backtest", "--model", str(MODEL_PATH), "--events", str(events), "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert "no events to score (1 line(s) rejected)" in result.output
    assert not out.exists()


def test_the_cut_off_before_a_conversion_is_exclusive() -> None:
    events = [
        event_at(T0, "a1", "webinar_attended", 0, contact="a"),
        event_at(T0, "a2", "demo_request", DAY, contact="a"),  # the instant it converted
    ]
    times = [epoch_ms(e.occurred_at) for e in events]
    result = run_backtest(MODEL, events, times, conversions={"a": times[1]})
    assert result.states["a"].values["engagement"] == 12
    assert result.cutoffs["a"] == times[1] - 1
    later = run_backtest(MODEL, events, times, conversions={"a": times[1] + 1})
    assert later.states["a"].values["engagement"] == 42


def test_rows_say_which_scores_their_gates_hold_back() -> None:
    model = parse_model(
        """
version: 1
name: two-scores
scores:
  fit: {min: 0, max: 100, thresholds: [{name: good, at: 10}]}
  engagement: {min: 0, max: 100, thresholds: [{name: hot, at: 10}]}
rules:
  - {id: demo, score: engagement, on: {type: demo_request}, points: 30}
  - {id: size, score: fit, when: {company_size: {gte: 50}}, points: 30}
gates:
  - {id: in-region, when: {country: US}, scores: [fit]}
"""
    )
    events = [
        event_at(T0, "e1", "contact_updated", 0, company_size=500, country="DE"),
        event_at(T0, "e2", "demo_request", DAY),
    ]
    states, _ = replay(events, model)
    row = score_row("c1", states["c1"], model, epoch_ms(T0) + DAY)
    assert row["gates_passed_by_score"] == {"fit": False, "engagement": True}
    assert row["gates_passed"] is False
    assert row["gates"] == {"in-region": False}
    assert row["tiers"] == {"fit": [], "engagement": ["hot"]}


def test_time_strings_round_trip() -> None:
    from stream_scorer.times import format_ms as _time

    for ms in (0, 1, 999, DAY - 1, epoch_ms(T0) + 123, epoch_ms(T0 + timedelta(days=400))):
        assert epoch_ms(datetime.fromisoformat(_time(ms))) == ms


def test_processes_sharing_the_contacts_write_the_same_bytes(tmp_path: Path) -> None:
    events = make_stream(MODEL, contacts=40, events=1500, seed=12)
    lines = [e.model_dump_json() for e in events]
    base = json.loads(lines[0])
    lines += [
        # Lines only decoding can place: an escape, another format, a nested contact_id.
        json.dumps({**base, "event_id": "x1", "contact_id": 'c-"q"', "type": "demo_request"}),
        json.dumps({"type": "track", "messageId": "m-1", "userId": "c-001",
                    "event": "Demo Request", "timestamp": "2026-09-02T10:00:00Z"}),
        json.dumps({"event_id": "x2", "properties": {"contact_id": "c-002"}, "contact_id": "c-003",
                    "type": "trial_signup", "occurred_at": "2026-09-03T10:00:00Z"}),
        json.dumps({**base, "event_id": "x3", "contact_id": ""}),
        json.dumps({"specversion": "1.0", "id": "ce-1", "source": "/crm", "type": "demo_request",
                    "subject": "c-004", "time": "2026-09-04T10:00:00Z",
                    "data": {"contact_id": "c-005"}}),
        "{not json",
        json.dumps({**base, "event_id": "x4", "occurred_at": "later"}),
    ]  # fmt: skip
    path = _write(tmp_path / "events.jsonl", lines)
    conversions = {"c-001": epoch_ms(datetime(2026, 10, 1, tzinfo=UTC))}
    outputs = []
    for jobs in (1, 3):
        out = tmp_path / f"jobs-{jobs}"
        meta, examples = backtest_file(path, MODEL, out, jobs=jobs, conversions=conversions)
        files = {name: (out / name).read_bytes() for name in ("scores.jsonl", "alerts.jsonl")}
        outputs.append((files, meta, examples))
    (one, meta, examples), (three, meta3, examples3) = outputs
    assert one == three
    assert meta == meta3
    assert examples == examples3
    assert meta["rejected_by_reason"]["malformed_json"] == 1
    assert meta["rejected_by_reason"]["invalid_field"] == 2
    contacts = [json.loads(line)["contact_id"] for line in one["scores.jsonl"].splitlines()]
    assert 'c-"q"' in contacts
    assert "c-002" not in contacts or any(e.contact_id == "c-002" for e in events)
    assert len(one["alerts.jsonl"].splitlines()) == meta["alerts"] > 0
