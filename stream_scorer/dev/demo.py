"""The demo: real services, a worker, a synthetic producer, alerts on screen.

It runs the same worker a user deploys (``stream-scorer worker``, as a child
process) against Kafka and Redis started for the occasion, publishes a
plausible mix of engagement events for a few hundred contacts, and prints
every alert the worker publishes. Ctrl-C stops everything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from aiokafka import AIOKafkaProducer

from stream_scorer.alerts import format_alert
from stream_scorer.client import tail_alerts
from stream_scorer.dev import services as devservices
from stream_scorer.events import CONTACT_UPDATED
from stream_scorer.scoring.model import ScoringModel
from stream_scorer.settings import Settings
from stream_scorer.worker.topics import ensure_topics

#: Relative frequency of each behaviour in the synthetic stream.
EVENT_MIX = {
    "email_open": 30,
    "email_click": 12,
    "page_visit": 25,
    "website_session": 10,
    "content_download": 5,
    "form_submit": 4,
    "webinar_attended": 3,
    "trial_signup": 1,
    "demo_request": 1,
    "unsubscribe": 1,
    "email_bounce": 1,
}
ATTRIBUTES: dict[str, list[object]] = {
    "country": ["US", "US", "CA", "DE", "GB", "FR", "BR", "IN"],
    "job_title": [
        "VP Marketing",
        "Head of Sales",
        "Marketing Manager",
        "Engineer",
        "Analyst",
        "Chief Revenue Officer",
        "Student",
    ],
    "seniority": ["executive", "director", "manager", "individual"],
    "department": ["marketing", "sales", "engineering", "finance"],
    "company_size": [8, 40, 120, 600, 2500, 12000],
    "industry": ["software", "saas", "retail", "fintech", "manufacturing"],
    "age": [17, 25, 34, 41, 58],
    "budget": [0, 5000, 20000],
}
PROPERTIES: dict[str, list[object]] = {
    "url": [
        "https://example.com/pricing",
        "https://example.com/blog/lead-scoring",
        "https://example.com/careers",
        "https://example.com/",
    ],
    "form_id": ["newsletter", "consultation", "contact-us"],
    "kind": ["hard", "soft"],
}


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def synthetic_events(
    contacts: int, model: ScoringModel, rng: random.Random
) -> Iterator[dict[str, object]]:
    """Attributes for every contact, then endless behaviour; a fifth of contacts are hot."""
    known = model.event_types
    mix = {t: w for t, w in EVENT_MIX.items() if t in known} or {
        t: 1 for t in known if t != CONTACT_UPDATED
    }
    types, weights = list(mix), list(mix.values())
    ids = [f"c-{i:04d}" for i in range(contacts)]
    hot = ids[: max(1, contacts // 5)]
    for n, contact in enumerate(ids):
        yield {
            "event_id": f"attrs-{n}-{rng.getrandbits(32):08x}",
            "contact_id": contact,
            "type": CONTACT_UPDATED,
            "occurred_at": _now(),
            "properties": {k: rng.choice(v) for k, v in ATTRIBUTES.items()},
        }
    n = 0
    while True:
        n += 1
        contact = rng.choice(hot) if rng.random() < 0.6 else rng.choice(ids)
        yield {
            "event_id": f"demo-{n}-{rng.getrandbits(32):08x}",
            "contact_id": contact,
            "type": rng.choices(types, weights)[0],
            "occurred_at": _now(),
            "properties": {k: rng.choice(v) for k, v in PROPERTIES.items()},
        }


async def produce(
    settings: Settings, model: ScoringModel, contacts: int, rate: float, rng: random.Random
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", linger_ms=5
    )
    await producer.start()
    try:
        interval = 1.0 / rate
        next_at = time.monotonic()
        for event in synthetic_events(contacts, model, rng):
            await producer.send(
                settings.events_topic,
                json.dumps(event).encode(),
                key=str(event["contact_id"]).encode(),
            )
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
    finally:
        await producer.stop()


async def _show_alerts(settings: Settings, out: TextIO) -> None:
    async for alert in tail_alerts(settings):
        print(format_alert(alert), file=out, flush=True)


async def _run(
    settings: Settings,
    model: ScoringModel,
    contacts: int,
    rate: float,
    duration: float | None,
    worker: subprocess.Popen[bytes],
    out: TextIO,
) -> None:
    tasks = [
        asyncio.create_task(produce(settings, model, contacts, rate, random.Random(7))),
        asyncio.create_task(_show_alerts(settings, out)),
    ]

    async def watch_worker() -> None:
        while worker.poll() is None:  # noqa: ASYNC110 - polling a child process
            await asyncio.sleep(0.5)
        raise RuntimeError(f"the worker exited with code {worker.returncode}")

    tasks.append(asyncio.create_task(watch_worker()))
    try:
        done, _ = await asyncio.wait(tasks, timeout=duration, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def run_demo(
    model_path: Path,
    model: ScoringModel,
    contacts: int = 300,
    rate: float = 200.0,
    duration: float | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Start everything, show alerts until Ctrl-C (or ``duration``), stop everything."""
    # The client retries transient broker errors (new topics electing leaders) itself;
    # on a demo screen they are noise. The worker's own log keeps everything.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    root = Path(tempfile.mkdtemp(prefix="stream-scorer-demo-"))
    print(
        "starting Kafka and Redis (the first run downloads Kafka with Maven)...",
        file=out,
        flush=True,
    )
    worker: subprocess.Popen[bytes] | None = None
    try:
        with devservices.local_services() as (kafka, redis):
            env = {
                **os.environ,
                "SCORER_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
                "SCORER_REDIS_URL": redis.url,
                "SCORER_MODEL_PATH": str(model_path.resolve()),
                "SCORER_WEB_PORT": str(devservices.free_port()),
            }
            settings = Settings(
                kafka_bootstrap_servers=kafka.bootstrap_servers,
                redis_url=redis.url,
                model_path=model_path,
            )
            asyncio.run(ensure_topics(settings))
            log = root / "worker.log"
            worker = devservices.spawn(
                [sys.executable, "-m", "stream_scorer", "worker"], log, env=env
            )
            print(
                f"Kafka {devservices.KAFKA_VERSION} at {kafka.bootstrap_servers}, Redis at "
                f"{redis.url}, web port {env['SCORER_WEB_PORT']}",
                file=out,
            )
            print(
                f"pids: kafka={kafka.proc.pid} redis={redis.proc.pid} worker={worker.pid}", file=out
            )
            print(
                f"producing {rate:.0f} events/s for {contacts} contacts with model "
                f"'{model.name}'; alerts below. Ctrl-C to stop.",
                file=out,
                flush=True,
            )
            try:
                asyncio.run(_run(settings, model, contacts, rate, duration, worker, out))
            except KeyboardInterrupt:
                pass
            except RuntimeError as exc:
                print(f"error: {exc}\n{log.read_text(errors='replace')[-3000:]}", file=out)
                return 1
            finally:
                print("stopping...", file=out, flush=True)
                devservices.stop_process(worker)
        print("stopped: worker, Kafka and Redis are down.", file=out, flush=True)
        return 0
    finally:
        if worker is not None:
            devservices.stop_process(worker)
        with contextlib.suppress(OSError):
            for item in root.iterdir():
                item.unlink()
            root.rmdir()
        signal.signal(signal.SIGTERM, previous)
