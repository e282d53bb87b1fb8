"""A worker on secured services: SASL_SSL + SCRAM Kafka, TLS Redis as the minimal ACL user.

Real processes (:mod:`tests.support.secured`): Kafka 4 with SASL_SSL and
mutual-TLS listeners and SCRAM users made by Kafka's own tool, redis-server
with a TLS port and an ACL file whose worker user has exactly the documented
rules. Every Kafka client of the project goes through the same settings:
the worker (events consumer, Faust's producer, the webhook sink), ``stream-scorer
produce`` and ``alerts tail``. Wrong credentials and untrusted certificates
stop the worker within seconds, naming the setting, never printing a secret.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stream_scorer.connections.redis import RedisClient, check_redis, connect_settings
from stream_scorer.dev.services import start_redis
from stream_scorer.dev.tls import make_certificates
from stream_scorer.errors import ServiceRefused
from stream_scorer.scoring import load_model, replay
from stream_scorer.settings import Settings
from stream_scorer.worker.store import RedisStore

from ..support.scenario import make_stream
from ..support.secured import (
    KAFKA_PASSWORD,
    REDIS_ADMIN,
    REDIS_ADMIN_PASSWORD,
    REDIS_PASSWORD,
    REDIS_USER,
    Secured,
    acl_denials,
    acl_file,
    assert_scored_as_the_acl_user,
    reset_acl_log,
)
from ..support.services import Services
from ..support.workers import (
    Worker,
    assert_scored_like_engine,
    encoded,
    make_worker,
    pipeline_on,
    produce,
    refused_start,
)
from .test_webhooks import SECRET, Receiver, serving, until

pytestmark = pytest.mark.integration

#: A worker that refuses to start must say so within this many seconds.
FAIL_FAST_SECONDS = 30.0


@pytest.fixture
async def admin(secured: Secured) -> AsyncIterator[RedisClient]:
    """The secured Redis as its admin, emptied, its ACL log reset."""
    client = connect_settings(secured.admin_settings())
    await client.flushdb()
    await reset_acl_log(client)
    yield client
    await client.aclose()


async def test_scores_alerts_and_webhooks_over_sasl_ssl_and_tls_redis_with_the_minimal_acl(
    secured: Secured,
    services: Services,
    tmp_path: Path,
    worker_factory: list[Worker],
    admin: RedisClient,
) -> None:
    model = load_model("config/scoring.yaml")
    receiver = Receiver(lambda alert_id: 410 if alert_id.endswith(("0", "1")) else 204)
    worker = make_worker(
        worker_factory,
        services,
        tmp_path,
        **secured.worker_settings(),
        webhook_urls=receiver.url,
        webhook_secret=SECRET,
        webhook_start="earliest",
    )
    events = make_stream(model, contacts=100, events=1000, seed=15)
    async with serving(receiver):
        worker.start()
        await produce(worker.settings, encoded(events))
        records = await assert_scored_like_engine(worker.settings, admin, model, events)
        ids = [json.loads(value)["alert_id"] for _, value, _ in records]
        await until(lambda: sorted(receiver.attempts) == sorted(ids), "every alert POSTed")
    assert receiver.bad_signatures == 0
    assert await acl_denials(admin) == [], "the documented ACL lacks what the worker used"
    log = worker.tail(200_000)
    assert KAFKA_PASSWORD not in log
    assert REDIS_PASSWORD not in log


def run_cli(env: dict[str, str], *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream_scorer", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def test_produce_and_alerts_tail_connect_as_the_settings_say(
    secured: Secured,
    services: Services,
    tmp_path: Path,
    worker_factory: list[Worker],
    admin: RedisClient,
) -> None:
    model = load_model("config/scoring.yaml")
    worker = make_worker(worker_factory, services, tmp_path, **secured.worker_settings())
    events = [e for e in make_stream(model, contacts=20, events=200, seed=16)]
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("".join(e.model_dump_json() + "\n" for e in events))
    worker.start()

    produced = run_cli(worker.env, "produce", str(events_file), timeout=60)
    assert produced.returncode == 0, produced.stderr
    assert f"sent {len(events)}, rejected 0" in produced.stdout
    records = await assert_scored_like_engine(worker.settings, admin, model, events)

    tail = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "stream_scorer", "alerts", "tail", "--json", "--from-beginning"],
        env=worker.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    seen: list[str] = []
    try:
        assert tail.stdout is not None
        while len(seen) < len(records):
            line = await asyncio.wait_for(tail.stdout.readline(), 60)
            assert line, "alerts tail ended"
            seen.append(json.loads(line)["alert_id"])
    finally:
        tail.terminate()
        await tail.wait()
    assert sorted(seen) == sorted(json.loads(v)["alert_id"] for _, v, _ in records)

    # A wrong password: one line naming it, as the worker says it, and no traceback.
    wrong = {**worker.env, "SCORER_KAFKA_SASL_PASSWORD": "not-the-password-4f1c"}
    for command in (["produce", str(events_file)], ["alerts", "tail"]):
        refused = run_cli(wrong, *command, timeout=60)
        assert refused.returncode == 1, refused.stderr[-3000:]
        assert "error: " in refused.stderr
        assert "Kafka refused the SASL login as 'scorer'" in refused.stderr, refused.stderr[-3000:]
        assert "Traceback" not in refused.stderr + refused.stdout
        assert "Unclosed" not in refused.stderr, "a client left open"
        assert "not-the-password-4f1c" not in refused.stderr + refused.stdout


async def test_mutual_tls_to_kafka_and_redis(
    secured: Secured,
    services: Services,
    tmp_path: Path,
    worker_factory: list[Worker],
) -> None:
    """Both ask for a client certificate and refuse a client without one."""
    model = load_model("config/scoring.yaml")
    certs = secured.certs
    mtls = {"redis_ssl_certfile": certs.client_cert, "redis_ssl_keyfile": certs.client_key}
    admin = connect_settings(
        secured.admin_settings().model_copy(update={"redis_url": secured.redis_mtls.url, **mtls})
    )
    await admin.flushdb()
    await reset_acl_log(admin)
    settings = {
        **secured.worker_settings(),
        **{k: str(v) for k, v in mtls.items()},
        "redis_url": secured.redis_mtls.url,
        "kafka_bootstrap_servers": secured.kafka.mtls_servers,
        "kafka_security_protocol": "SSL",
        "kafka_sasl_username": None,
        "kafka_sasl_password": None,
        "kafka_ssl_certfile": str(certs.client_cert),
        "kafka_ssl_keyfile": str(certs.client_key),
    }
    settings = {k: v for k, v in settings.items() if v is not None}
    worker = make_worker(worker_factory, services, tmp_path, **settings)
    events = make_stream(model, contacts=30, events=300, seed=17)
    try:
        await assert_scored_as_the_acl_user(worker, admin, model, events)
    finally:
        await admin.aclose()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("kafka password", "Kafka refused the SASL login as 'scorer' with SCRAM-SHA-512"),
        ("kafka CA", "Kafka's certificate is not trusted"),
        ("kafka client certificate", "Kafka refused the client certificate"),
        ("redis password", "Redis refused the login"),
        ("redis CA", "Redis's certificate is not trusted"),
        ("redis client certificate", "Redis refused the client certificate"),
    ],
)
def test_a_refusal_stops_the_worker_within_seconds_naming_the_setting(
    secured: Secured,
    services: Services,
    tmp_path: Path,
    worker_factory: list[Worker],
    case: str,
    message: str,
) -> None:
    wrong = "not-the-password-4f1c"
    changes: dict[str, object] = {
        "kafka password": {"kafka_sasl_password": wrong},
        "kafka CA": {"kafka_ssl_cafile": str(secured.certs.other_ca)},
        "kafka client certificate": {
            "kafka_bootstrap_servers": secured.kafka.mtls_servers,
            "kafka_security_protocol": "SSL",
            "kafka_sasl_username": None,
            "kafka_sasl_password": None,
        },
        "redis password": {"redis_password": wrong},
        "redis CA": {"redis_ssl_cafile": str(secured.certs.other_ca)},
        "redis client certificate": {"redis_url": secured.redis_mtls.url},
    }[case]  # type: ignore[assignment]
    # At DEBUG, aiokafka logs every request: the SASL exchange must not be among them.
    settings = {**secured.worker_settings(), "log_level": "DEBUG", **changes}  # type: ignore[dict-item]
    worker = make_worker(
        worker_factory,
        services,
        tmp_path,
        **{k: v for k, v in settings.items() if v is not None},
    )
    code, output, took = refused_start(worker)
    assert code == 1, output[-3000:]
    assert message in output, output[-3000:]
    assert took < FAIL_FAST_SECONDS, f"took {took:.1f}s"
    for secret in (wrong, KAFKA_PASSWORD, REDIS_PASSWORD):
        assert secret not in output
    assert "Traceback" not in output, output[-3000:]
    if case == "kafka password":  # the login was attempted, with aiokafka at DEBUG
        assert "aiokafka.conn Request" in output
    for shown in ("SaslAuthenticateRequest", "SaslAuthenticateResponse", "sasl_auth_bytes"):
        assert shown not in output  # no request or response of the login, at DEBUG


@pytest.mark.parametrize("certificate", ["none", "signed by another CA"])
async def test_a_refused_redis_client_certificate_is_named_every_time(
    secured: Secured, tmp_path: Path, certificate: str
) -> None:
    """Over TLS 1.3 the refusal comes after the handshake; a client that already sent its
    login often sees only a reset (a server going away, retried for ever). The start-up
    check asks again, sending nothing, and reads the alert."""
    changes: dict[str, object] = {"redis_url": secured.redis_mtls.url}
    if certificate != "none":
        stranger = make_certificates(tmp_path / "stranger")
        changes |= {
            "redis_ssl_certfile": str(stranger.client_cert),
            "redis_ssl_keyfile": str(stranger.client_key),
        }
    settings = Settings(**{**secured.worker_settings(), **changes})  # type: ignore[arg-type]
    for _ in range(10):
        client = connect_settings(settings, socket_timeout=10, socket_connect_timeout=5)
        try:
            with pytest.raises(ServiceRefused, match="Redis refused the client certificate"):
                await check_redis(client, settings)
        finally:
            await client.aclose()


async def test_a_redis_with_the_documented_acl_file_keeps_every_write_across_a_crash(
    tmp_path: Path,
) -> None:
    """Redis replays its append-only file as its default user; the documented ACL lets it.

    The worker's compare-and-set is a script, in the file as MULTI/EXEC. Redis
    7.0 checks the default user's permissions again at each replayed EXEC, so
    an ACL file with a bare ``user default off`` makes a restarted Redis drop
    them all without an error to any client (redis/redis#14541). With the
    default user off but keeping its permissions, every write the worker was
    told succeeded is there after ``kill -9`` and a restart.
    """
    model = load_model("config/scoring.yaml")
    events = [e for e in make_stream(model, 200, 2000, seed=31) if e.type in model.event_types]
    redis = start_redis(tmp_path / "redis", appendonly=True, acl_file=acl_file(tmp_path))
    try:
        worker_user = connect_settings(
            Settings(redis_url=redis.url, redis_username=REDIS_USER, redis_password=REDIS_PASSWORD)
        )
        # Ids kept for ten years, as the replay keeps them all.
        store = RedisStore(worker_user, model, ttl_seconds=3600, dedupe_seconds=315_360_000)
        await pipeline_on(store).apply(events)
        await worker_user.aclose()
        redis.kill()
        redis.start()
        admin = connect_settings(
            Settings(
                redis_url=redis.url,
                redis_username=REDIS_ADMIN,
                redis_password=REDIS_ADMIN_PASSWORD,
            )
        )
        try:
            store = RedisStore(admin, model, ttl_seconds=3600)
            expected, _ = replay(events, model)
            for cid, state in expected.items():
                got = await store.read_state(cid)
                assert got is not None, f"{cid}: written, then gone after the restart"
                assert got.to_json() == state.to_json(), cid
        finally:
            await admin.aclose()
    finally:
        redis.stop()
    assert "NOPERM" not in (tmp_path / "redis" / "redis.log").read_text()
