"""Unit tests for stream_scorer.settings: defaults, SCORER_ env vars, error messages."""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError, field_validator

from stream_scorer.errors import ConfigError, ScorerError
from stream_scorer.settings import (
    ENV_PREFIX,
    MIN_WEBHOOK_SECRET,
    Settings,
    is_secret,
    load_settings,
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SCORER_ variable from the caller's shell may leak into a test."""
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


def test_env_prefix_is_scorer() -> None:
    assert ENV_PREFIX == "SCORER_"


def test_defaults() -> None:
    s = load_settings()
    assert s.kafka_bootstrap_servers == "localhost:9092"
    assert s.redis_url == "redis://localhost:6379/0"
    assert s.events_topic == "scorer.events"
    assert s.alerts_topic == "scorer.alerts"
    assert s.dlq_topic == "scorer.events.dlq"
    assert s.model_path == Path("config/scoring.yaml")
    assert s.app_id == "stream-scorer"
    assert s.web_port == 6066
    assert s.web_host == "127.0.0.1"
    assert s.topic_partitions == 8
    assert s.topic_replication_factor == 1
    assert s.batch_max_events == 1000
    assert s.batch_max_wait == pytest.approx(0.2)
    assert s.contact_ttl_days == 180
    assert s.redis_retry_max_backoff == pytest.approx(5.0)
    assert s.max_event_bytes == 65_536
    assert s.log_level == "INFO"


def test_default_kafka_url_and_ttl() -> None:
    s = load_settings()
    assert s.kafka_url == "kafka://localhost:9092"
    assert s.contact_ttl_seconds == 180 * 86_400


def test_env_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORER_WEB_PORT", "7000")
    monkeypatch.setenv("SCORER_KAFKA_BOOTSTRAP_SERVERS", "broker-1:9093")
    monkeypatch.setenv("SCORER_REDIS_URL", "rediss://cache.example:6380/2")
    monkeypatch.setenv("SCORER_EVENTS_TOPIC", "crm.events-v2")
    monkeypatch.setenv("SCORER_MODEL_PATH", "models/other.yaml")
    monkeypatch.setenv("SCORER_BATCH_MAX_WAIT", "1.5")
    monkeypatch.setenv("SCORER_CONTACT_TTL_DAYS", "0.5")
    s = load_settings()
    assert s.web_port == 7000
    assert s.kafka_bootstrap_servers == "broker-1:9093"
    assert s.redis_url == "rediss://cache.example:6380/2"
    assert s.events_topic == "crm.events-v2"
    assert s.model_path == Path("models/other.yaml")
    assert s.batch_max_wait == pytest.approx(1.5)
    assert s.contact_ttl_seconds == 43_200


def test_unprefixed_variable_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_PORT", "7000")
    assert load_settings().web_port == 6066


def test_unknown_scorer_variable_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORER_NO_SUCH_SETTING", "whatever")
    assert load_settings().web_port == 6066


def test_overrides_win_over_defaults() -> None:
    s = load_settings(web_port=9999, app_id="other-app")
    assert s.web_port == 9999
    assert s.app_id == "other-app"


def test_unix_redis_url_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORER_REDIS_URL", "unix:///run/redis.sock")
    assert load_settings().redis_url == "unix:///run/redis.sock"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis://cache:99999/0", "port that is not a number"),
        ("redis://cache:abc/0", "port that is not a number"),
        ("rediss://cache:6380/0?ssl_cert_reqs=none", "no options in its query"),
        ("redis://cache/0?foo=bar", "no options in its query"),
        ("unix:///run/redis.sock?db=1&socket_timeout=1", "no options in its query"),
    ],
)
def test_a_redis_url_redis_py_would_read_otherwise_is_refused(url: str, problem: str) -> None:
    """redis-py takes the query's options over the settings' (certificate checks off, say)
    and fails late on a bad port: both are refused at start, naming the variable."""
    with pytest.raises(ConfigError, match=f"SCORER_REDIS_URL.*{problem}"):
        load_settings(redis_url=url)
    assert load_settings(redis_url="unix:///run/redis.sock?db=2").redis_url.endswith("db=2")


def test_a_contact_ttl_past_a_century_is_refused() -> None:
    """At most a century, as a model's durations are: past it is a typo, and far past it
    Redis would refuse every write's expiry. Refused at start, naming the variable."""
    assert load_settings(contact_ttl_days=36_500).contact_ttl_seconds == 36_500 * 86_400
    with pytest.raises(ConfigError, match="SCORER_CONTACT_TTL_DAYS"):
        load_settings(contact_ttl_days=36_501)


@pytest.mark.parametrize("given", ["debug", "Warning", "ERROR"])
def test_log_level_is_uppercased(monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    monkeypatch.setenv("SCORER_LOG_LEVEL", given)
    assert load_settings().log_level == given.upper()


def config_error(monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> str:
    """The message of the error that ``var=value`` in the environment gives."""
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    return str(info.value)


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("SCORER_WEB_PORT", "notaport"),
        ("SCORER_WEB_PORT", "70000"),
        ("SCORER_WEB_PORT", "0"),
        ("SCORER_KAFKA_BOOTSTRAP_SERVERS", "nohostport"),
        ("SCORER_KAFKA_BOOTSTRAP_SERVERS", "host:notaport"),
        ("SCORER_KAFKA_BOOTSTRAP_SERVERS", "host:0"),
        ("SCORER_KAFKA_BOOTSTRAP_SERVERS", "host:65536"),
        ("SCORER_KAFKA_BOOTSTRAP_SERVERS", ":9092"),
        ("SCORER_KAFKA_BOOTSTRAP_SERVERS", " , "),
        ("SCORER_KAFKA_BOOTSTRAP_SERVERS", "good:9092,bad"),
        ("SCORER_REDIS_URL", "http://x"),
        ("SCORER_LOG_LEVEL", "verbose"),
        ("SCORER_EVENTS_TOPIC", "bad topic"),
        ("SCORER_ALERTS_TOPIC", "a" * 250),
        ("SCORER_DLQ_TOPIC", "dlq/topic"),
        ("SCORER_TOPIC_PARTITIONS", "0"),
        ("SCORER_BATCH_MAX_WAIT", "0"),
        ("SCORER_MAX_EVENT_BYTES", "255"),
    ],
)
def test_invalid_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    message = config_error(monkeypatch, var, value)
    assert var in message
    assert repr(value) in message


def test_config_error_is_a_scorer_error_without_pydantic_cause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCORER_WEB_PORT", "notaport")
    with pytest.raises(ScorerError) as info:
        load_settings()
    assert isinstance(info.value, ConfigError)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__ is True


def test_every_bad_variable_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORER_WEB_PORT", "notaport")
    monkeypatch.setenv("SCORER_LOG_LEVEL", "loud")
    monkeypatch.setenv("SCORER_REDIS_URL", "http://x")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    for var in ("SCORER_WEB_PORT", "SCORER_LOG_LEVEL", "SCORER_REDIS_URL"):
        assert var in message
    # A good variable is not blamed.
    assert "SCORER_KAFKA_BOOTSTRAP_SERVERS" not in message


def test_settings_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(ValidationError):
        s.web_port = 1  # type: ignore[misc]
    assert s.web_port == 6066


def test_kafka_url_for_several_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORER_KAFKA_BOOTSTRAP_SERVERS", " k1:9092 , k2:9093,,[::1]:9094 ")
    s = load_settings()
    assert s.kafka_bootstrap_servers == "k1:9092,k2:9093,[::1]:9094"
    assert s.kafka_url == "kafka://k1:9092;kafka://k2:9093;kafka://[::1]:9094"


def test_settings_class_directly_raises_validation_error() -> None:
    with pytest.raises(ValidationError):
        Settings(web_port=70000)


SECRET = "hunter2-Pa55"


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("SCORER_REDIS_URL", f"http://:{SECRET}@cache:6379/0"),
        ("SCORER_REDIS_URL", f"http://admin:{SECRET}@cache:6379/0"),
        ("SCORER_REDIS_URL", f"redis:/:{SECRET}@cache:6379"),  # a typo: no ://
        ("SCORER_REDIS_URL", f"http://:p@ss:{SECRET}@cache"),  # an @ in the password
        ("SCORER_REDIS_URL", f"tcp://cache:6379/0?password={SECRET}&db=1"),
        ("SCORER_REDIS_URL", f"tcp://cache:6379/0?pass%77ord={SECRET}&db=1"),  # parse_qs decodes
        ("SCORER_REDIS_URL", f"tcp://cache:6379/0?db=1&Auth+Token={SECRET}"),
        ("SCORER_REDIS_URL", f"tcp://cache:6379/0?db=1&api%5Fkey={SECRET}"),
        ("SCORER_KAFKA_BOOTSTRAP_SERVERS", f"b1:9092,user:{SECRET}@b2"),
        ("SCORER_KAFKA_BOOTSTRAP_SERVERS", f"b1:9092,user:{SECRET[:4]},{SECRET[4:]}@b2:9092"),
        ("SCORER_KAFKA_BOOTSTRAP_SERVERS", f"b1:9092,b2:9092?token={SECRET}"),
    ],
)
def test_a_password_in_a_url_is_never_printed(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    message = config_error(monkeypatch, var, value)
    assert var in message
    assert SECRET not in message
    assert "***" in message  # the rest of the value still helps find the mistake


@pytest.mark.parametrize(
    "given",
    [[SECRET], {"key": SECRET}, (SECRET, 1), SECRET.encode() + b"\xff"],  # not UTF-8
)
@pytest.mark.parametrize("field", ["api_token", "webhook_secret"])
def test_a_secret_setting_never_prints_its_value(field: str, given: object) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(**{field: given})
    message = str(info.value)
    assert f"SCORER_{field.upper()}" in message
    assert SECRET not in message
    assert "not shown" in message


def test_no_piece_of_a_bootstrap_list_with_a_password_is_quoted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A comma in the password cuts off a piece no mask recognises: servers go by number."""
    value = f"b1:9092,user:{SECRET[:7]},{SECRET[7:]}@b2:9092"
    message = config_error(monkeypatch, "SCORER_KAFKA_BOOTSTRAP_SERVERS", value)
    assert "server 2 of 3 is not host:port" in message
    assert SECRET[:7] not in message
    assert SECRET[7:] not in message
    # With nothing to hide, the bad server is quoted.
    message = config_error(monkeypatch, "SCORER_KAFKA_BOOTSTRAP_SERVERS", "b1:9092,b2")
    assert "'b2' is not host:port" in message


@pytest.mark.parametrize(
    "value",
    [
        f"https://hooks.slack.com/services/T0/B0/{SECRET},ftp://b.example",
        f"https://hooks.example/in?token={SECRET},ftp://b.example",
        f"ftp://hooks.example/{SECRET}",
        f"https://a.example, hooks.example/{SECRET}",
    ],
)
def test_webhook_urls_are_never_printed(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """A hook's URL is its credential (Slack's token is its path): only its number is said."""
    message = config_error(monkeypatch, "SCORER_WEBHOOK_URLS", value)
    assert "SCORER_WEBHOOK_URLS: Value error, URL " in message
    assert "is not http:// or https://" in message
    assert SECRET not in message
    assert "hooks" not in message
    assert "not shown" in message


def test_whatever_a_validator_quotes_has_its_password_hidden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The message of any non-secret setting is masked, not only the value it was given."""

    class Quoting(Settings):
        @field_validator("redis_url", mode="before")  # before the settings' own checks
        @classmethod
        def _quote_the_second(cls, value: str) -> str:
            raise ValueError(f"{value.split(',')[1]!r} is one too many")

    monkeypatch.setattr("stream_scorer.settings.Settings", Quoting)
    # Over-hiding a sentence is the cheap side: from its start to the @, after password=.
    for second, quoted in [
        (f"redis://:{SECRET}@b", "SCORER_REDIS_URL: ***@b' is one too many"),
        (f"redis://b/0?pass%77ord={SECRET}", "SCORER_REDIS_URL: Value error, 'redis://b/0?pass"),
    ]:
        with pytest.raises(ConfigError) as info:
            load_settings(redis_url=f"redis://a,{second}")
        message = str(info.value)
        assert quoted in message
        assert SECRET not in message


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("", "must be at least 16 characters when set"),
        ("Zq", "must be at least 16 characters when set"),
        ("Zq" * 7 + "!", "must be at least 16 characters when set"),
        # In that sentence the message would show the secret: only the error's type then.
        ("e", "invalid (secret_too_short)"),
        ("16", "invalid (secret_too_short)"),
    ],
)
def test_a_webhook_secret_is_long_or_unset(
    monkeypatch: pytest.MonkeyPatch, value: str, says: str
) -> None:
    """An empty or short key signs nothing worth checking; the error never shows it."""
    assert MIN_WEBHOOK_SECRET == 16
    message = config_error(monkeypatch, "SCORER_WEBHOOK_SECRET", value)
    assert message == (
        f"invalid configuration:\n  SCORER_WEBHOOK_SECRET: {says} (the value is secret: not shown)"
    )
    monkeypatch.setenv("SCORER_WEBHOOK_SECRET", "k" * MIN_WEBHOOK_SECRET)
    secret = load_settings().webhook_secret
    assert secret is not None
    assert secret.get_secret_value() == "k" * MIN_WEBHOOK_SECRET
    monkeypatch.delenv("SCORER_WEBHOOK_SECRET")
    assert load_settings().webhook_secret is None


def test_the_demo_reports_a_settings_error_without_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The demo reads the rest of the environment too: through load_settings, never raw."""
    from stream_scorer.dev import demo
    from stream_scorer.scoring import load_model

    @contextlib.contextmanager
    def no_services() -> Iterator[tuple[SimpleNamespace, SimpleNamespace]]:
        yield SimpleNamespace(bootstrap_servers="127.0.0.1:9"), SimpleNamespace(url="redis://x")

    monkeypatch.setattr(demo.devservices, "local_services", no_services)
    monkeypatch.setenv("SCORER_WEBHOOK_URLS", f"https://hooks.example/{SECRET},ftp://b.example")
    monkeypatch.setenv("SCORER_WEBHOOK_SECRET", SECRET)  # too short
    out = io.StringIO()
    path = Path("config/scoring.yaml")
    assert demo.run_demo(path, load_model(path), duration=1, out=out) == 2
    shown = out.getvalue()
    assert "error: invalid configuration" in shown
    assert "SCORER_WEBHOOK_URLS" in shown
    assert "SCORER_WEBHOOK_SECRET" in shown
    assert SECRET not in shown


def test_which_settings_are_secret() -> None:
    secret = {name for name in Settings.model_fields if is_secret(name)}
    assert secret == {
        "api_token",
        "webhook_secret",
        "webhook_urls",
        "kafka_sasl_password",
        "kafka_ssl_key_password",
        "redis_password",
        "redis_ssl_key_password",
    }
    assert is_secret("some_new_password")  # by name, should one be added
    assert is_secret("?")  # a model-wide error's input is every value


# Marked at both ends: a leak of either end of the secret shows.
secrets = st.text(min_size=1).map(lambda text: f"S3CR3T{text}T3RC3S")


@settings(max_examples=500, deadline=None)
@given(
    secret=secrets,
    where=st.sampled_from(
        [
            ("redis_url", "http://:{}@cache:6379/0"),
            ("redis_url", "http://user:{}@cache"),
            ("redis_url", ":{}@cache"),
            ("redis_url", "tcp://cache/0?password={}"),
            ("redis_url", "tcp://cache/0?pass%77ord={}"),  # redis-py's parse_qs decodes the key
            ("redis_url", "tcp://cache/0?db=1&X%2DAuth%2DToken={}&ssl=1"),
            ("redis_url", "redis://cache:6379/0?password={}"),  # a query redis-py would take
            ("redis_url", "rediss://:{}@cache:99999/0"),  # a port out of range
            ("webhook_urls", "ftp://user:{}@hooks.example/a"),
            ("webhook_urls", "https://a.example,gopher://{}@b.example"),
            ("webhook_urls", "https://hooks.example/services/{},ftp://b.example"),  # in the path
            ("webhook_urls", "https://hooks.example/in?code={},ftp://b.example"),  # in the query
            ("kafka_bootstrap_servers", "b1:9092,user:{}@b2"),  # a comma in it splits the list
            ("kafka_bootstrap_servers", "b1:9092,user:{}@b2:9092,b3"),
            ("kafka_bootstrap_servers", "b1:9092,b2:9092?pass%77ord={}"),
            ("api_token", ["{}"]),
            ("kafka_sasl_password", ["{}"]),
            ("redis_password", {"k": "{}"}),
            ("webhook_secret", {"k": "{}"}),
        ]
    ),
)
def test_no_settings_error_prints_a_secret(secret: str, where: tuple[str, object]) -> None:
    field, template = where
    if isinstance(template, str):
        value: object = template.format(secret)
    elif isinstance(template, list):
        value = [secret]
    else:
        value = {"k": secret}
    with pytest.raises(ConfigError) as info:
        load_settings(**{field: value})
    message = str(info.value)
    assert f"SCORER_{field.upper()}" in message
    assert "S3CR3T" not in message
    assert "T3RC3S" not in message


def test_credentials_in_a_bootstrap_address_are_refused_unprinted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = config_error(monkeypatch, "SCORER_KAFKA_BOOTSTRAP_SERVERS", "user:pw-0123@kafka:9092")
    assert "SCORER_KAFKA_BOOTSTRAP_SERVERS" in message
    assert "pw-0123" not in message


@given(
    st.floats(min_value=6, max_value=300, allow_nan=False),
    st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9._-]{1,40}", fullmatch=True)),
)
def test_every_group_gets_the_session_a_fast_heartbeat_and_its_own_static_id(
    session: float, instance: str | None
) -> None:
    made = Settings(kafka_session_timeout_seconds=session, instance_id=instance)
    events, faust = made.group_membership("g"), made.group_membership("g-faust")
    assert events["session_timeout_ms"] == int(session * 1000)
    # Kafka wants at most a third of the session; at most 1 s, so a handover is quick.
    assert events["heartbeat_interval_ms"] <= min(1000, events["session_timeout_ms"] / 3)
    assert events["heartbeat_interval_ms"] >= 500
    if instance is None:
        assert events["group_instance_id"] is None
    else:  # one static member id per group the worker joins
        assert events["group_instance_id"] == f"{instance}.g"
        assert faust["group_instance_id"] != events["group_instance_id"]


@pytest.mark.parametrize("bad", ["a b", "", "x/y", "é"])
def test_an_instance_id_kafka_would_refuse_is_a_config_error(bad: str) -> None:
    with pytest.raises(ValidationError):
        Settings(instance_id=bad)


@pytest.mark.parametrize(("grace", "ok"), [(0, True), (10_000, True), (-1, False), (10_001, False)])
def test_the_reordering_grace_is_bounded(grace: int, ok: bool) -> None:
    if ok:
        assert Settings(reorder_grace_ms=grace).reorder_grace_ms == grace
    else:
        with pytest.raises(ValidationError):
            Settings(reorder_grace_ms=grace)


ANY_FILE = "config/scoring.yaml"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "needs SCORER_KAFKA_SASL_USERNAME and"),
        (
            {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_username": "u"},
            "needs SCORER_KAFKA_SASL_USERNAME and SCORER_KAFKA_SASL_PASSWORD",
        ),
        ({"kafka_sasl_username": "u", "kafka_sasl_password": "p"}, "are used only with"),
        ({"kafka_ssl_cafile": ANY_FILE}, "SCORER_KAFKA_SSL_* files are used only with"),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_keyfile": ANY_FILE},
            "SCORER_KAFKA_SSL_KEYFILE needs SCORER_KAFKA_SSL_CERTFILE",
        ),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_cafile": "/nope.pem"}, "is not a file"),
        ({"redis_ssl_cafile": ANY_FILE}, "used only with a rediss:// URL"),
        (
            {"redis_url": "rediss://r:6380/0", "redis_ssl_keyfile": ANY_FILE},
            "SCORER_REDIS_SSL_KEYFILE needs SCORER_REDIS_SSL_CERTFILE",
        ),
        ({"redis_cluster": True, "redis_url": "unix:///tmp/r.sock"}, "needs a redis://"),
        ({"redis_cluster": True, "redis_url": "redis://r:6379/2"}, "only database 0"),
        (
            {"redis_url": "redis://u:pw@r:6379/0", "redis_password": "other"},
            "given twice",
        ),
        ({"kafka_security_protocol": "TLS"}, "SCORER_KAFKA_SECURITY_PROTOCOL"),
        ({"kafka_sasl_mechanism": "OAUTHBEARER"}, "SCORER_KAFKA_SASL_MECHANISM"),
    ],
)
def test_connection_settings_that_would_be_ignored_or_cannot_work_are_refused(
    given: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(**given)


@pytest.mark.parametrize(
    "given",
    [
        {
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_username": "u",
            "kafka_sasl_password": "p",
            "kafka_ssl_cafile": ANY_FILE,
        },
        {
            "kafka_security_protocol": "SASL_PLAINTEXT",
            "kafka_sasl_mechanism": "SCRAM-SHA-256",
            "kafka_sasl_username": "u",
            "kafka_sasl_password": "p",
        },
        {
            "kafka_security_protocol": "SSL",
            "kafka_ssl_certfile": ANY_FILE,
            "kafka_ssl_keyfile": ANY_FILE,
            "kafka_ssl_check_hostname": False,
        },
        {
            "redis_url": "rediss://r:6380/0",
            "redis_username": "scorer",
            "redis_password": "p",
            "redis_ssl_cafile": ANY_FILE,
            "redis_ssl_certfile": ANY_FILE,
        },
        {"redis_url": "redis://r:6379", "redis_cluster": True},
        {"redis_url": "rediss://u:p@r:6379/0", "redis_cluster": True},
    ],
)
def test_consistent_connection_settings_are_accepted(given: dict[str, object]) -> None:
    settings = load_settings(**given)
    for name, value in given.items():
        got = getattr(settings, name)
        shown = got.get_secret_value() if hasattr(got, "get_secret_value") else got
        assert str(shown) == str(value)


@settings(max_examples=300, deadline=None)
@given(
    secret=secrets,
    protocol=st.sampled_from(["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL", "bogus"]),
    url=st.sampled_from(["redis://r:1/0", "rediss://x:{}@r:1/0", "unix:///s", "redis://r/3"]),
    cluster=st.booleans(),
    files=st.sampled_from([None, ANY_FILE, "/no/such/file.pem"]),
)
def test_combined_settings_errors_never_print_a_secret(
    secret: str, protocol: str, url: str, cluster: bool, files: str | None
) -> None:
    """Every mix of the connection settings is a value or a ConfigError without secrets."""
    given: dict[str, object] = {
        "kafka_security_protocol": protocol,
        "kafka_sasl_password": secret,
        "kafka_ssl_key_password": secret,
        "redis_url": url.format(secret),
        "redis_password": secret,
        "redis_cluster": cluster,
    }
    if files is not None:
        given["kafka_ssl_keyfile"] = files
        given["redis_ssl_cafile"] = files
    message = ""
    try:
        load_settings(**given)
    except ConfigError as exc:  # anything else fails the test
        message = str(exc)
    assert "S3CR3T" not in message
    assert "T3RC3S" not in message
