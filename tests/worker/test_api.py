"""The worker's HTTP API against a running worker on real Kafka and Redis."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from stream_scorer.events import Event
from stream_scorer.scoring import alert_payload, explain, load_model, replay

from ..support.scenario import make_stream
from ..support.secured import RedisTarget
from ..support.services import Services
from ..support.workers import Worker, encoded, make_worker, produce, read_topic

pytestmark = pytest.mark.integration

MODEL = load_model("config/scoring.yaml")
TOKEN = "s3cret-token"


def _event(n: int, contact: str, kind: str, **props: Any) -> dict[str, Any]:
    return {
        "event_id": f"api-{contact}-{n}",
        "contact_id": contact,
        "type": kind,
        "occurred_at": f"2026-11-2{n % 8}T10:00:00Z",
        "properties": props,
    }


async def _call(
    worker: Worker,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = TOKEN,
    content_type: str | None = "application/json",
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """Status and JSON answer (None when the answer is not JSON) of one request."""
    sent = dict(headers or {})
    if token:
        sent["Authorization"] = f"Bearer {token}"
    if content_type and body is not None:
        sent["Content-Type"] = content_type
    data = body if isinstance(body, bytes) or hasattr(body, "__aiter__") else None
    if data is None and body is not None:
        data = json.dumps(body).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, f"http://127.0.0.1:{worker.port}{path}", data=data, headers=sent
        ) as response,
    ):
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, None


async def test_post_events_then_read_the_contact(
    services: Services, tmp_path: Path, worker_factory: list[Worker], redis_client: aioredis.Redis
) -> None:
    await redis_client.flushdb()
    worker = make_worker(
        worker_factory, services, tmp_path, api_token=TOKEN, api_max_body_bytes=4096
    )
    worker.start()
    cid = "api-c1"
    events = [
        _event(1, cid, "contact_updated", country="US", job_title="VP Sales", company_size=400),
        _event(2, cid, "demo_request"),
        _event(3, cid, "page_visit", url="https://a.io/pricing"),
    ]
    assert (await _call(worker, "GET", "/livez", token=None))[0] == 200

    # Every problem is listed, and nothing is sent.
    bad = [events[0], {"event_id": "x", "contact_id": cid}, "text", {**events[1], "type": "BAD"}]
    status, body = await _call(worker, "POST", "/events", bad)
    assert status == 422
    assert [(p["index"], p["reason"]) for p in body["problems"]] == [
        (1, "missing_field"),
        (2, "invalid_field"),
        (3, "invalid_field"),
    ]
    assert (await _call(worker, "POST", "/events", b"{not json"))[0] == 422
    assert (await _call(worker, "POST", "/events", events, token=None))[0] == 401
    assert (await _call(worker, "POST", "/events", events, token="wrong"))[0] == 401
    assert (await _call(worker, "POST", "/events", [events[0]] * 40))[0] == 413
    assert await read_topic(services.kafka_bootstrap, worker.settings.events_topic) == []

    status, body = await _call(worker, "POST", "/events", events[0])  # one event
    assert (status, body) == (202, {"accepted": 1})
    status, body = await _call(worker, "POST", "/events", events[1:])  # a batch
    assert (status, body) == (202, {"accepted": 2})
    records = await read_topic(services.kafka_bootstrap, worker.settings.events_topic)
    assert {k for k, _, _ in records} == {cid.encode()}

    states, _ = replay([Event.model_validate(e) for e in events], MODEL)
    want = explain(states[cid], MODEL)["engagement"]
    deadline = time.monotonic() + 60
    while True:
        status, body = await _call(worker, "GET", f"/contacts/{cid}")
        if status == 200 and body["scores"]["engagement"]["value"] == want.value:
            break
        assert time.monotonic() < deadline, (status, body)
        await asyncio.sleep(0.5)
    got = body["scores"]["engagement"]
    assert got["display"] == want.display
    assert got["tiers"] == want.tiers == ["mql"]
    assert sorted((a["rule"], a["points"], a["event_id"]) for a in got["awards"]) == sorted(
        (a.rule, a.points, a.event_id) for a in want.awards
    )
    pricing = next(a for a in got["awards"] if a["rule"] == "pricing-page")
    assert pricing["awarded_at"].startswith("2026-11-23T10:00:00")
    assert pricing["expires_at"].startswith("2026-12-23T10:00:00")

    assert (await _call(worker, "GET", "/contacts/nobody"))[0] == 404
    assert (await _call(worker, "GET", f"/contacts/{cid}", token=None))[0] == 401
    status, body = await _call(worker, "GET", "/readyz", token=None)
    assert (status, body["checks"]) == (200, {"partitions": True, "redis": True, "progress": True})


#: Faust's built-in views, each turned on below: topology, table data, sensors, the graph.
FAUST_VIEWS = [
    "/",
    "/router/",
    "/router/topics",
    "/router/t/",
    "/router/t/k/",
    "/table/",
    "/table/t/",
    "/table/t/k/",
    "/graph/",
    "/assignment/",
    "/performance/",
    "/nothing-here",
]


async def test_faust_views_are_not_served_token_or_not(
    services: Services, tmp_path: Path, worker_factory: list[Worker]
) -> None:
    worker = make_worker(worker_factory, services, tmp_path, api_token=TOKEN)
    # Faust reads these from the environment, whatever the app says: all on.
    flags = ["DEBUG", "WEB_STATS_ENABLED", "WEB_GRAPH_ENABLED", "WEB_METRICS_ENABLED"]
    worker.env.update({f"APP_{flag}": "true" for flag in flags})
    worker.env.update(APP_WEB_ROUTER_ENABLED="true", APP_WEB_TABLES_ENABLED="true")
    worker.start()
    for path in FAUST_VIEWS:
        for token in (None, TOKEN):
            status, _ = await _call(worker, "GET", path, token=token)
            assert status == 404, (path, token, status)
    # Ours are still there, and still guarded.
    assert (await _call(worker, "GET", "/livez", token=None))[0] == 200
    assert (await _call(worker, "GET", "/leaderboard", token=None))[0] == 401
    assert (await _call(worker, "GET", "/leaderboard"))[0] == 200
    assert (await _call(worker, "GET", "/events"))[0] == 405


def _cloudevent(n: int, contact: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"ce-{contact}-{n}",
        "source": "/tests",
        "type": "demo_request",
        "subject": contact,
        "time": "2026-11-28T12:00:00Z",
        "data": {},
    }


async def test_post_events_takes_only_json_content_types(
    services: Services, tmp_path: Path, worker_factory: list[Worker]
) -> None:
    worker = make_worker(worker_factory, services, tmp_path, api_token=TOKEN)
    worker.start()
    event = _event(1, "ct-1", "demo_request")
    # What a page in a browser can post cross-site without a preflight, and the rest.
    for refused in [
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/octet-stream",
        "text/json",
        "application/jsonx",
        "application/json; charset=latin-1",
        None,  # no Content-Type at all
    ]:
        status, body = await _call(worker, "POST", "/events", event, content_type=refused)
        assert status == 415, (refused, status, body)
        assert "application/json" in body["error"]
    # The token is checked first: no hint to a caller without it.
    status, _ = await _call(worker, "POST", "/events", event, token=None, content_type="text/plain")
    assert status == 401
    # A JSON post from a page elsewhere needs a CORS preflight: never granted.
    preflight = {
        "Origin": "https://elsewhere.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    async with (
        aiohttp.ClientSession() as session,
        session.options(f"http://127.0.0.1:{worker.port}/events", headers=preflight) as answer,
    ):
        assert answer.status >= 400
        assert "Access-Control-Allow-Origin" not in answer.headers
    assert await read_topic(services.kafka_bootstrap, worker.settings.events_topic) == []

    accepted = [
        ("application/json", event),
        ("Application/JSON; charset=UTF-8", _event(2, "ct-1", "demo_request")),
        ("application/cloudevents+json", _cloudevent(3, "ct-1")),
        ("application/cloudevents-batch+json", [_cloudevent(4, "ct-1"), _cloudevent(5, "ct-1")]),
    ]
    for content_type, body in accepted:
        status, answer = await _call(worker, "POST", "/events", body, content_type=content_type)
        assert status == 202, (content_type, answer)
    records = await read_topic(services.kafka_bootstrap, worker.settings.events_topic)
    assert len(records) == 5


def _padded(events: list[dict[str, Any]], size: int) -> bytes:
    """``events`` as a JSON array, padded with trailing spaces (still JSON) to ``size`` bytes."""
    body = json.dumps(events).encode()
    assert len(body) <= size
    return body + b" " * (size - len(body))


async def _chunks(body: bytes, size: int = 65_536) -> AsyncIterator[bytes]:
    """``body`` sent chunked: no Content-Length for the server to go by."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def test_post_events_reads_bodies_whole_up_to_the_limit(
    services: Services, tmp_path: Path, worker_factory: list[Worker]
) -> None:
    limit = 1_000_000
    worker = make_worker(worker_factory, services, tmp_path, api_max_body_bytes=limit)
    worker.start()
    # Twenty events of about 45 kB each: within every per-event limit, 0.9 MB in all.
    big = {f"p{i}": "x" * 9_000 for i in range(5)}
    events = [_event(n, "big-1", "page_visit", **big) for n in range(20)]
    at_limit = _padded(events, limit)
    status, body = await _call(worker, "POST", "/events", at_limit)
    assert (status, body) == (202, {"accepted": 20})
    over = at_limit + b" "
    status, body = await _call(worker, "POST", "/events", over)
    assert status == 413, body
    # Chunked: the same limits without a Content-Length.
    again = _padded([{**e, "event_id": e["event_id"] + "-chunked"} for e in events], limit)
    status, body = await _call(worker, "POST", "/events", _chunks(again))
    assert (status, body) == (202, {"accepted": 20})
    status, body = await _call(worker, "POST", "/events", _chunks(again + b" "))
    assert status == 413, body
    # A small gzip body that inflates past the limit is stopped there.
    bomb = gzip.compress(b"[" + b" " * (20 * limit) + b"]")
    assert len(bomb) < limit // 10
    headers = {"Content-Encoding": "gzip"}
    status, body = await _call(worker, "POST", "/events", bomb, headers=headers)
    assert status == 413, body
    records = await read_topic(services.kafka_bootstrap, worker.settings.events_topic)
    assert len(records) == 40


async def test_readyz_says_not_ready_without_redis(
    services: Services, tmp_path: Path, worker_factory: list[Worker]
) -> None:
    worker = make_worker(worker_factory, services, tmp_path)
    worker.start()
    # Partitions are assigned shortly after the worker says it is up: ready then.
    status, body = await _readyz_once(worker, lambda checks: all(checks.values()))
    assert (status, body["checks"]) == (200, {"partitions": True, "redis": True, "progress": True})
    broken = make_worker(worker_factory, services, tmp_path, redis_url="redis://127.0.0.1:1/0")
    broken.start()
    status, body = await _readyz_once(broken, lambda checks: checks["partitions"])
    assert status == 503
    assert body["checks"]["partitions"] is True
    assert body["checks"]["redis"] is False


async def _readyz_once(
    worker: Worker, settled: Callable[[dict[str, bool]], bool], wait: float = 60
) -> tuple[int, Any]:
    """``GET /readyz`` until ``settled(checks)`` holds, or ``wait`` seconds have passed."""
    deadline = time.monotonic() + wait
    while True:
        status, body = await _call(worker, "GET", "/readyz", token=None)
        if settled(body["checks"]) or time.monotonic() > deadline:
            return status, body
        await asyncio.sleep(0.3)


def _samples(text: str) -> dict[str, float]:
    """Samples by name and labels, labels sorted: ``name{a="1",b="2"}``."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            sample, _, value = line.rpartition(" ")
            name, _, labels = sample.partition("{")
            parts = sorted(p for p in labels.rstrip("}").split(",") if p)
            out[name + ("{" + ",".join(parts) + "}" if parts else "")] = float(value)
    return out


async def test_metrics_and_leaderboard_follow_what_the_worker_did(
    services: Services, tmp_path: Path, worker_factory: list[Worker], redis_target: RedisTarget
) -> None:
    # Again on the Redis Cluster: the leaderboard reads states across its nodes.
    redis_client = redis_target.client  # emptied
    worker = make_worker(worker_factory, services, tmp_path, **redis_target.settings)
    worker.start()
    events = make_stream(MODEL, contacts=40, events=400, seed=41)
    good = [e for e in events if e.type in MODEL.event_types]
    messages = [*encoded(events), (b"c-x", b"{broken"), (b"c-x", b"{broken too")]
    await produce(worker.settings, messages)
    _, crossings = replay(good, MODEL)
    want_alerts: dict[tuple[str, str, str], int] = {}
    for c in crossings:
        key = (c.score, c.tier, c.direction)
        want_alerts[key] = want_alerts.get(key, 0) + 1

    deadline = time.monotonic() + 60
    while True:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{worker.port}/metrics") as response,
        ):
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            samples = _samples(await response.text())
        # Every message read, and each batch's outcome counted (scored or
        # dead-lettered): consumed is counted when a batch is read, before it is scored.
        settled = samples.get("scorer_events_scored_total", 0) + sum(
            v for k, v in samples.items() if k.startswith("scorer_events_rejected_total")
        )
        if samples.get("scorer_events_consumed_total") == len(messages) == settled:
            break
        assert time.monotonic() < deadline, samples
        await asyncio.sleep(0.5)
    assert samples["scorer_events_scored_total"] == len(good)
    assert samples['scorer_events_rejected_total{reason="malformed_json"}'] == 2
    unknown = len(events) - len(good)
    assert samples.get('scorer_events_rejected_total{reason="unknown_type"}', 0) == unknown
    for (score, tier, direction), count in want_alerts.items():
        label = f'direction="{direction}",score="{score}",tier="{tier}"'
        got = samples.get(f"scorer_alerts_total{{{label}}}")
        assert got == count, sorted(k for k in samples if "alert" in k or "award" in k)
    assert sum(v for k, v in samples.items() if k.startswith("scorer_awards_total")) > 0
    assert samples["scorer_batch_duration_seconds_count"] >= 1
    assert samples['scorer_redis_duration_seconds_count{operation="apply"}'] >= 1
    lags = [v for k, v in samples.items() if k.startswith("scorer_consumer_lag{")]
    assert lags
    assert all(v == 0 for v in lags)
    assert not any("c-" in k for k in samples), "no contact ids in labels"

    # The leaderboard: the engine's top values, each row its contact's own value.
    states, _ = replay(good, MODEL)
    values = {cid: s.values["engagement"] for cid, s in states.items()}
    status, body = await _call(worker, "GET", "/leaderboard?score=engagement&limit=10")
    assert status == 200
    rows = body["contacts"]
    assert [r["value"] for r in rows] == sorted(values.values(), reverse=True)[:10]
    assert all(values[r["contact_id"]] == r["value"] for r in rows)
    top = rows[0]["contact_id"]
    assert rows[0]["display"] == MODEL.display("engagement", values[top], states[top].attributes)
    assert rows[0]["tiers"] == [
        t.name
        for t in MODEL.scores["engagement"].thresholds
        if t.name in states[top].tiers.get("engagement", [])
    ]
    assert (await _call(worker, "GET", "/leaderboard?score=nope"))[0] == 404
    assert (await _call(worker, "GET", "/leaderboard?limit=0"))[0] == 400
    # A contact whose keys expired leaves the board.
    await redis_client.delete(f"ss:{{{top}}}:state")
    status, body = await _call(worker, "GET", "/leaderboard?limit=10")
    assert top not in [r["contact_id"] for r in body["contacts"]]
    assert len(body["contacts"]) == 10


async def test_dashboard_in_headless_chromium(
    services: Services, tmp_path: Path, worker_factory: list[Worker], redis_client: aioredis.Redis
) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "scripts/setup installs Debian's chromium for this test"
    await redis_client.flushdb()
    worker = make_worker(worker_factory, services, tmp_path, api_token=TOKEN)
    worker.start()
    events = make_stream(MODEL, contacts=40, events=600, seed=61)
    await produce(worker.settings, encoded(events))
    good = [e for e in events if e.type in MODEL.event_types]
    states, crossings = replay(good, MODEL)
    assert crossings
    deadline = time.monotonic() + 60
    while True:  # until the worker has scored and relayed everything
        _, data = await _call(worker, "GET", "/dashboard/data")
        if len(data["alerts"]) == min(20, len(crossings)) and data["top"]:
            break
        assert time.monotonic() < deadline, data
        await asyncio.sleep(0.5)

    url = f"http://127.0.0.1:{worker.port}/dashboard?token={TOKEN}"
    common = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    common += ["--virtual-time-budget=5000", f"--user-data-dir={tmp_path / 'chrome'}"]
    dom = (await asyncio.to_thread(_browse, [*common, "--dump-dom", url])).decode()
    assert "b2b-default v1" in dom
    assert re.search(r'id="status"[^>]*>updated ', dom), "the page loaded its data"
    best = max(states, key=lambda c: (states[c].values["engagement"], c))
    assert f"<td>{best}</td>" in dom or any(
        f"<td>{c}</td>" in dom
        for c in states
        if states[c].values["engagement"] == states[best].values["engagement"]
    ), "the top lead is listed"
    last = json.loads(alert_payload(crossings[-1], MODEL))
    assert f"<td>{last['contact_id']}</td>" in dom, "the latest alert is listed"
    histogram = [int(n) for n in re.findall(r'<span class="count">(\d+)</span>', dom)]
    assert sum(histogram) == len(states), "every scored contact is in the distribution"

    shot = tmp_path / "dashboard.png"
    await asyncio.to_thread(
        _browse, [*common, "--window-size=1280,900", f"--screenshot={shot}", url]
    )
    png = await asyncio.to_thread(_keep, shot)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) > 10_000

    # Without the token, neither the page nor its data.
    assert (await _call(worker, "GET", "/dashboard", token=None))[0] == 401
    assert (await _call(worker, "GET", "/dashboard/data", token=None))[0] == 401


def _browse(command: list[str]) -> bytes:
    return subprocess.run(command, capture_output=True, timeout=120, check=True).stdout


def _keep(shot: Path) -> bytes:
    """The screenshot's bytes, copied to ``$SCORER_TEST_ARTIFACTS`` when that is set."""
    saved = os.environ.get("SCORER_TEST_ARTIFACTS")
    if saved:
        Path(saved).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(saved) / "dashboard.png")
    print(f"dashboard screenshot: {shot}")
    return shot.read_bytes()


async def _raw(worker: Worker, request: bytes, host: str = "127.0.0.1") -> tuple[int, Any]:
    """Status and JSON answer (None when not JSON) of a request sent byte for byte."""
    reader, writer = await asyncio.open_connection(host, worker.port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 30)  # each request says Connection: close
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    try:
        return int(head.split()[1]), json.loads(body)
    except ValueError:
        return int(head.split()[1]), None


def _request(method: str, target: str, *headers: bytes, body: bytes | None = None) -> bytes:
    """``headers`` as given, then ``Connection: close`` and the body's length, if any."""
    lines = [f"{method} {target} HTTP/1.1".encode(), *headers, b"Connection: close"]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join([*lines, b"", body or b""])


#: Every route that needs the token (or, without one, a local Host).
GUARDED = ["/contacts/nobody", "/leaderboard", "/dashboard", "/dashboard/data", "/events"]


def _guarded(path: str, *headers: bytes) -> bytes:
    """A request to one of :data:`GUARDED`: a JSON body for /events, which only takes POST."""
    if path.partition("?")[0] == "/events":
        return _request("POST", path, *headers, b"Content-Type: application/json", body=b"{}")
    return _request("GET", path, *headers)


async def test_post_events_caps_the_events_and_the_problems_listed(
    services: Services, tmp_path: Path, worker_factory: list[Worker]
) -> None:
    from stream_scorer.worker.api import MAX_EVENTS_PER_REQUEST, MAX_PROBLEMS_LISTED

    worker = make_worker(worker_factory, services, tmp_path, api_token=TOKEN)
    worker.start()
    # Over the cap: 413 saying the limit, before any event is looked at (no problems).
    status, body = await _call(worker, "POST", "/events", [{}] * (MAX_EVENTS_PER_REQUEST + 1))
    assert status == 413, body
    assert f"limit of {MAX_EVENTS_PER_REQUEST}" in body["error"]
    assert "problems" not in body
    # The reviewer's body: 1 MiB of empty objects (it made a 57 MB answer).
    flood = b"[" + b",".join([b"{}"] * 349_000) + b"]"
    status, body = await _call(worker, "POST", "/events", flood)
    assert status == 413, body
    assert "problems" not in body
    # At the cap, every event bad: the first problems listed, all of them counted.
    status, body = await _call(worker, "POST", "/events", [{}] * MAX_EVENTS_PER_REQUEST)
    assert status == 422, body
    assert body["problem_count"] == MAX_EVENTS_PER_REQUEST
    assert [p["index"] for p in body["problems"]] == list(range(MAX_PROBLEMS_LISTED))
    status, body = await _call(worker, "POST", "/events", b"{not json")
    assert status == 422, body
    assert body["problem_count"] == len(body["problems"]) == 1
    # Within the cap, good events still go.
    events = [_event(n, "cap-1", "demo_request") for n in range(MAX_EVENTS_PER_REQUEST)]
    status, body = await _call(worker, "POST", "/events", events)
    assert (status, body) == (202, {"accepted": MAX_EVENTS_PER_REQUEST})


async def test_credentials_that_are_not_utf8_are_refused_not_a_crash(
    services: Services, tmp_path: Path, worker_factory: list[Worker]
) -> None:
    """aiohttp decodes header bytes that are not UTF-8 to lone surrogates."""
    worker = make_worker(worker_factory, services, tmp_path, api_token=TOKEN)
    worker.start()
    host = b"Host: 127.0.0.1"
    bearers = [b"\xff", b"\xed\xa0\x80", TOKEN.encode() + b"\xff"]
    for path in GUARDED:
        for bearer in bearers:
            status, body = await _raw(
                worker, _guarded(path, host, b"Authorization: Bearer " + bearer)
            )
            assert status == 401, (path, bearer, status, body)
            assert body == {"error": "a bearer token is required"}
        for query in ("%FF", "%ED%A0%80", f"{TOKEN}%FF"):
            status, body = await _raw(worker, _guarded(f"{path}?token={query}", host))
            assert status == 401, (path, query, status, body)
    # The token itself still opens them.
    assert (await _raw(worker, _guarded(f"/leaderboard?token={TOKEN}", host)))[0] == 200
    assert "Traceback" not in worker.tail(1_000_000)


async def test_a_body_that_cannot_be_decoded_answers_400(
    services: Services, tmp_path: Path, worker_factory: list[Worker]
) -> None:
    """With aiohttp's C parser (as deployed) and its pure-Python one: they raise differently."""
    auth = f"Authorization: Bearer {TOKEN}".encode()
    for python_parser in (False, True):
        worker = make_worker(worker_factory, services, tmp_path, api_token=TOKEN)
        if python_parser:
            worker.env["AIOHTTP_NO_EXTENSIONS"] = "1"
        worker.start()
        gzipped = {"Content-Encoding": "gzip"}
        for body in (b"not gzip at all", gzip.compress(b"[{}]")[:10] + b"not deflate data"):
            for sent in (body, _chunks(body)):
                status, answer = await _call(worker, "POST", "/events", sent, headers=gzipped)
                assert status == 400, (python_parser, body, status, answer)
                assert "Content-Encoding" in answer["error"]
        # Broken chunked framing: the C parser answers 400 itself when it comes with the
        # headers, and never tells the view when it comes later, so only the Python one here.
        framing = [b"zz\r\nabc\r\n0\r\n\r\n", b"3\r\nabcdef\r\n0\r\n\r\n"] if python_parser else []
        for chunks in framing:
            head = _request(
                "POST",
                "/events",
                b"Host: 127.0.0.1",
                auth,
                b"Content-Type: application/json",
                b"Transfer-Encoding: chunked",
            )
            reader, writer = await asyncio.open_connection("127.0.0.1", worker.port)
            writer.write(head)
            await writer.drain()
            await asyncio.sleep(0.3)  # the view is reading the body when the bad chunk comes
            writer.write(chunks)
            answer = await asyncio.wait_for(reader.read(), 30)
            writer.close()
            assert answer.startswith(b"HTTP/1.1 400 "), (chunks, answer)
            assert b"chunked framing" in answer, answer
        assert "Traceback" not in worker.tail(1_000_000)
        assert await read_topic(services.kafka_bootstrap, worker.settings.events_topic) == []


async def test_without_a_token_only_a_host_naming_this_machine_is_served(
    services: Services, tmp_path: Path, worker_factory: list[Worker]
) -> None:
    """DNS rebinding: a page on attacker.example whose name resolves to the bound address."""
    bound = "127.0.0.2"  # any of 127.0.0.0/8 is loopback; this one proves the bind address counts
    worker = make_worker(worker_factory, services, tmp_path, web_host=bound)
    worker.start()
    port = worker.port
    refused = ["attacker.example", f"attacker.example:{port}", f"127.0.0.1.attacker.example:{port}"]
    refused += [f"localhost.attacker.example:{port}", f"127.0.0.3:{port}", f"[::2]:{port}", ""]
    refused += [f"localhost:{port}x", "localhost:", "[::1", f"[::1]x:{port}", f"{bound}:{port}:1"]
    allowed = ["localhost", f"localhost:{port}", f"LocalHost:{port}", "127.0.0.1", "[::1]"]
    allowed += [f"127.0.0.1:{port}", f"[::1]:{port}", bound, f"{bound}:{port}"]
    for path in GUARDED:
        for name in refused:
            status, body = await _raw(worker, _guarded(path, f"Host: {name}".encode()), bound)
            assert status == 403, (path, name, status, body)
            assert "Host" in body["error"]
        for name in allowed:
            status, body = await _raw(worker, _guarded(path, f"Host: {name}".encode()), bound)
            assert status in (200, 404, 422), (path, name, status, body)  # past the check
    # Probes and scrapers reach the health checks and the metrics by any name.
    for path in ("/livez", "/readyz", "/metrics"):
        status, _ = await _raw(worker, _guarded(path, b"Host: attacker.example"), bound)
        assert status in ((200, 503) if path == "/readyz" else (200,)), (path, status)
