"""The project's Dockerfile, built on a local Debian base and run with podman.

The image runs as the worker against the session's Kafka and Redis (host
network), with a read-only root filesystem: events are scored like the
engine's replay and alerts come out; it runs as a non-root user, its
engine is compiled, and its health check passes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from stream_scorer.dev.container import build_image, podman
from stream_scorer.scoring import load_model

from ..support.scenario import make_stream
from ..support.services import Services
from ..support.workers import Worker, assert_scored_like_engine, encoded, make_worker, produce

# The first test builds the image: debootstrap, pip and mypyc take minutes on a cold cache.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def image() -> str:
    """The project's image, built once per session (a few minutes the first time)."""
    return build_image(ROOT)


@pytest.fixture
def containers() -> Iterator[list[str]]:
    started: list[str] = []
    yield started
    for name in started:
        podman("rm", "--force", "--time=5", name, check=False)


def test_the_image_runs_as_a_non_root_user_with_the_compiled_engine(image: str) -> None:
    inspected = json.loads(podman("image", "inspect", image).stdout)[0]
    config = inspected["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["stream-scorer"]
    assert config["Cmd"] == ["worker"]
    check = inspected["Healthcheck"]["Test"]  # kept: a docker-format image
    assert "/livez" in " ".join(check)
    uid = podman("run", "--rm", "--entrypoint=id", image, "-u").stdout.strip()
    assert uid == "10001"
    engine = podman(
        "run",
        "--rm",
        "--entrypoint=python3",
        image,
        "-c",
        "from stream_scorer.scoring import native; print(native.describe())",
    ).stdout.strip()
    assert engine == "compiled (mypyc)"
    shown = podman("run", "--rm", image, "model", "check", "/etc/stream-scorer/scoring.yaml")
    assert "b2b-default" in shown.stdout, shown.stdout


def test_a_mounted_model_replaces_the_default_one(image: str, tmp_path: Path) -> None:
    model = (ROOT / "config" / "scoring.yaml").read_text()
    mine = tmp_path / "scoring.yaml"
    mine.write_text(model.replace("name: b2b-default", "name: my-own-model"))
    shown = podman(
        "run",
        "--rm",
        f"-v={mine}:/etc/stream-scorer/scoring.yaml:ro",
        image,
        "model",
        "check",
        "/etc/stream-scorer/scoring.yaml",
    )
    assert "my-own-model" in shown.stdout, shown.stdout


async def test_the_image_scores_events_and_publishes_alerts_read_only_and_healthy(
    image: str,
    services: Services,
    tmp_path: Path,
    worker_factory: list[Worker],
    redis_client: aioredis.Redis,
    containers: list[str],
) -> None:
    model = load_model("config/scoring.yaml")
    worker = make_worker(worker_factory, services, tmp_path)  # its settings; podman runs it
    env = {
        k: v
        for k, v in worker.env.items()
        if k.startswith("SCORER_") and k != "SCORER_MODEL_PATH"  # the image's own model
    }
    env["SCORER_API_TOKEN"] = "image-test-token-0123456789"  # it listens on 0.0.0.0
    name = f"scorer-{worker.settings.app_id}"
    containers.append(name)  # removed whatever happens
    podman(
        "run",
        "--detach",
        f"--name={name}",
        "--network=host",
        "--read-only",
        "--tmpfs=/tmp",
        *(f"--env={k}={v}" for k, v in env.items()),
        image,
    )
    events = make_stream(model, contacts=60, events=600, seed=41)
    await produce(worker.settings, encoded(events))
    try:
        records = await assert_scored_like_engine(worker.settings, redis_client, model, events)
    except AssertionError:
        logs = podman("logs", name, check=False)
        print((logs.stdout + logs.stderr)[-6000:])
        raise
    assert records, "no alert came out"
    deadline = time.monotonic() + 60
    while True:  # the health check: what docker and podman run at its interval
        checked = podman("healthcheck", "run", name, check=False)
        if checked.returncode == 0:
            break
        assert time.monotonic() < deadline, checked.stdout + checked.stderr
        await asyncio.sleep(1)
    state = json.loads(podman("inspect", name).stdout)[0]["State"]
    assert state["Running"], state
    assert state["Health"]["Status"] == "healthy", state
    assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
