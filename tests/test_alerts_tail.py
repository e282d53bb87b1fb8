"""``stream-scorer alerts tail`` follows the alerts topic of a running worker."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from stream_scorer.scoring import alert_id, load_model, replay

from .support.scenario import make_stream
from .support.services import Services
from .support.workers import Worker, encoded, make_worker, produce

pytestmark = pytest.mark.integration

MODEL = load_model("config/scoring.yaml")


def _tail(worker: Worker, *args: str, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # stopped below with SIGINT, as a user would
        [sys.executable, "-m", "stream_scorer", "alerts", "tail", *args],
        env=worker.env,
        stdout=out.open("wb"),
        stderr=subprocess.STDOUT,
    )


async def _lines(path: Path, count: int, wait: float = 60) -> list[str]:
    deadline = time.monotonic() + wait
    while True:
        lines = (await asyncio.to_thread(path.read_text)).splitlines()
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        await asyncio.sleep(0.3)


async def test_alerts_tail_prints_every_alert_as_json_and_as_text(
    services: Services, tmp_path: Path, worker_factory: list[Worker], redis_client: aioredis.Redis
) -> None:
    await redis_client.flushdb()
    worker = make_worker(worker_factory, services, tmp_path)
    worker.start()
    events = make_stream(MODEL, contacts=40, events=500, seed=71)
    crossings = replay([e for e in events if e.type in MODEL.event_types], MODEL)[1]
    assert crossings
    as_json = _tail(worker, "--json", "--from-beginning", out=tmp_path / "json.out")
    as_text = _tail(worker, "--from-beginning", out=tmp_path / "text.out")
    try:
        await produce(worker.settings, encoded(events))
        json_lines = await _lines(tmp_path / "json.out", len(crossings))
        text_lines = await _lines(tmp_path / "text.out", len(crossings))
    finally:
        for proc in (as_json, as_text):
            proc.send_signal(signal.SIGINT)
            assert proc.wait(30) == 0, "Ctrl-C stops the tail cleanly"
    alerts = [json.loads(line) for line in json_lines]
    assert {a["alert_id"] for a in alerts} == {alert_id(c, MODEL) for c in crossings}
    first = crossings[0]
    arrow = "▲" if first.direction == "up" else "▼"
    assert any(
        f"{arrow} {first.tier.upper()}" in line and first.contact_id in line for line in text_lines
    )
