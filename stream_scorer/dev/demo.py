"""The demo: real services, a worker, a synthetic producer, alerts on screen.

It runs the same worker a user deploys (``stream-scorer worker``, as a child
process) against Kafka and Redis started for the occasion, publishes the
simulator's engagement events for a few hundred contacts as they happen
(:func:`~stream_scorer.review.simulation.live_events`), and prints every
alert the worker publishes. Ctrl-C stops everything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from aiokafka import AIOKafkaProducer

from stream_scorer.alerts import format_alert
from stream_scorer.client import tail_alerts
from stream_scorer.connections.kafka import kafka_options
from stream_scorer.dev import services as devservices
from stream_scorer.errors import ConfigError
from stream_scorer.events import CONTACT_UPDATED
from stream_scorer.review.simulation import live_events
from stream_scorer.scoring import ScoringModel
from stream_scorer.settings import Settings, load_settings
from stream_scorer.worker.topics import ensure_topics

#: The demo's people and their behaviour: the same on every run.
SEED = 7


async def produce(
    settings: Settings,
    model: ScoringModel,
    contacts: int,
    rate: float,
    duration: float | None = None,
) -> None:
    """Publish the live stream of ``contacts`` simulated contacts at ``rate`` events a second,
    for ``duration`` seconds from the first event (None: until cancelled).

    Only events of types the model scores (:func:`scored_stream`): the worker
    would dead-letter the rest. A Kafka that cannot be reached raises.
    """
    stream = scored_stream(model, live_events(contacts, seed=SEED))
    producer = AIOKafkaProducer(**kafka_options(settings), acks="all", linger_ms=5)
    try:
        await producer.start()
        interval = 1.0 / rate
        next_at = time.monotonic()
        stop_at = None if duration is None else next_at + duration
        for event in stream:
            if stop_at is not None and time.monotonic() >= stop_at:
                break
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


def scored_stream(
    model: ScoringModel, stream: Iterator[dict[str, Any]], look_ahead: int = 1000
) -> Iterator[dict[str, Any]]:
    """The events of ``stream`` whose types ``model`` scores.

    A model that scores none of the simulator's engagement types (its own
    event names) gets them renamed to its own types instead, each simulated
    type always to the same one, so that its demo still shows scores move.
    """
    known = model.event_types
    head = list(itertools.islice(stream, look_ahead))
    own = sorted(t for t in known if t != CONTACT_UPDATED)
    rename = bool(own) and not any(e["type"] in own for e in head)
    for event in itertools.chain(head, stream):
        kind = event["type"]
        if rename and kind != CONTACT_UPDATED:
            event = {**event, "type": own[zlib.crc32(kind.encode()) % len(own)]}
        elif kind not in known:
            continue
        yield event


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
        asyncio.create_task(produce(settings, model, contacts, rate)),
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
            try:  # the rest of the environment is the user's: errors without its secrets
                settings = load_settings(
                    kafka_bootstrap_servers=kafka.bootstrap_servers,
                    redis_url=redis.url,
                    model_path=model_path,
                )
            except ConfigError as exc:
                print(f"error: {exc}", file=out, flush=True)
                return 2
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
