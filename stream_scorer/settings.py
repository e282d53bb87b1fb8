"""Service configuration, read once from the environment (twelve-factor).

Every variable carries the ``SCORER_`` prefix; nested groups would use ``__``.
Settings are frozen so a running worker cannot drift from what it logged at
start, and :func:`load_settings` turns pydantic's errors into one message
that names each offending environment variable, without printing a secret.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import parse_qs, unquote_plus, urlsplit

from pydantic import (
    Field,
    SecretBytes,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream_scorer.errors import ConfigError

ENV_PREFIX = "SCORER_"

#: Settings whose names say they hold a secret; SecretStr fields are secret too.
_SECRET_NAME = re.compile(r"token|secret|passw|credential|private|api_?key", re.IGNORECASE)
#: Settings whose values are secret whatever their names: webhook URLs carry
#: their token in the path or query (Slack, Teams, Discord hooks).
_SECRET_VALUES = frozenset({"webhook_urls"})
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_PASSWORD_PARAMETER = re.compile(r"password=", re.IGNORECASE)
_QUERY_KEY = re.compile(r"[?&;]([^?&;=#]*)=")
#: A query parameter whose key (percent-decoded, as parse_qs does) holds one of these is secret.
_SECRET_KEY_WORDS = ("pass", "secret", "token", "key")

#: The shortest SCORER_WEBHOOK_SECRET accepted: receivers trust what it signs.
MIN_WEBHOOK_SECRET = 16


def without_passwords(text: str) -> str:
    """``text`` with URL credentials hidden: ``redis://:pw@host`` is ``redis://***@host``.

    Hidden: everything from the scheme's ``://`` (or the start) to the last
    ``@``, and everything after ``password=`` or after a query key that
    percent-decodes to one with pass, secret, token or key in it (redis-py
    reads ``?pass%77ord=``). Over-hiding a list of URLs or an ``@`` in a path
    is the cheap side.
    """
    spans: list[tuple[int, int]] = []
    at = text.rfind("@")
    if at >= 0:
        scheme = _SCHEME.match(text)
        spans.append((scheme.end() if scheme and scheme.end() <= at else 0, at))
    parameter = _PASSWORD_PARAMETER.search(text)
    if parameter:
        spans.append((parameter.end(), len(text)))
    for key in _QUERY_KEY.finditer(text):
        if any(word in unquote_plus(key.group(1)).lower() for word in _SECRET_KEY_WORDS):
            spans.append((key.end(), len(text)))
            break
    merged: list[list[int]] = []
    for begin, end in sorted(spans):  # overlapping spans hide as one
        if merged and begin <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([begin, end])
    shown, position = [], 0
    for begin, end in merged:
        shown += [text[position:begin], "***"]
        position = end
    return "".join([*shown, text[position:]])


class Settings(BaseSettings):
    """Everything a worker, the demo and the CLI need to find their services."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        frozen=True,
        extra="ignore",
    )

    kafka_bootstrap_servers: str = Field(
        default="localhost:9092",
        description="Comma-separated host:port list of Kafka brokers.",
    )
    redis_url: str = Field(
        default="redis://localhost:6379/0", description="redis:// or rediss:// URL."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="How every Kafka client connects: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="PLAIN",
        description="SASL mechanism with SASL_*: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.",
    )
    kafka_sasl_username: str | None = Field(
        default=None, min_length=1, description="SASL user name (with SASL_*)."
    )
    kafka_sasl_password: SecretStr | None = Field(
        default=None, description="SASL password (with SASL_*; never printed)."
    )
    kafka_ssl_cafile: Path | None = Field(
        default=None,
        description="PEM file of the CAs that sign Kafka's certificates (none: the system's).",
    )
    kafka_ssl_certfile: Path | None = Field(
        default=None, description="PEM client certificate, for mutual TLS (with SSL or SASL_SSL)."
    )
    kafka_ssl_keyfile: Path | None = Field(
        default=None, description="PEM private key of SCORER_KAFKA_SSL_CERTFILE."
    )
    kafka_ssl_key_password: SecretStr | None = Field(
        default=None, description="Password of an encrypted SCORER_KAFKA_SSL_KEYFILE."
    )
    kafka_ssl_check_hostname: bool = Field(
        default=True, description="Check that Kafka's certificate names the broker's host."
    )
    redis_cluster: bool = Field(
        default=False,
        description="SCORER_REDIS_URL is a node of a Redis Cluster: use the cluster client.",
    )
    redis_username: str | None = Field(
        default=None,
        min_length=1,
        description="Redis ACL user (instead of one in SCORER_REDIS_URL).",
    )
    redis_password: SecretStr | None = Field(
        default=None,
        description="Redis password (instead of one in SCORER_REDIS_URL; never printed).",
    )
    redis_ssl_cafile: Path | None = Field(
        default=None,
        description="PEM file of the CAs that sign Redis's certificate (rediss://; none: the "
        "system's).",
    )
    redis_ssl_certfile: Path | None = Field(
        default=None, description="PEM client certificate for Redis (rediss://, mutual TLS)."
    )
    redis_ssl_keyfile: Path | None = Field(
        default=None, description="PEM private key of SCORER_REDIS_SSL_CERTFILE."
    )
    redis_ssl_key_password: SecretStr | None = Field(
        default=None, description="Password of an encrypted SCORER_REDIS_SSL_KEYFILE."
    )
    redis_ssl_check_hostname: bool = Field(
        default=True, description="Check that Redis's certificate names its host (rediss://)."
    )
    redis_allow_eviction: bool = Field(
        default=False,
        description="Start even when Redis may evict keys (maxmemory with a policy other than "
        "noeviction), which loses scores: a loud warning instead of a refusal.",
    )
    events_topic: str = Field(default="scorer.events", description="Engagement events in.")
    alerts_topic: str = Field(default="scorer.alerts", description="Threshold alerts out.")
    dlq_topic: str = Field(
        default="scorer.events.dlq", description="Events that could not be scored, with reasons."
    )
    model_path: Path = Field(
        default=Path("config/scoring.yaml"), description="The scoring model (YAML)."
    )
    app_id: str = Field(
        default="stream-scorer",
        description="Faust app id; also the Kafka consumer group id.",
    )
    instance_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9._-]+$",
        description=(
            "Stable name of this worker (a StatefulSet pod name): static group membership, "
            "so a restarted worker gets its partitions back without a rebalance."
        ),
    )
    kafka_session_timeout_seconds: float = Field(
        default=10,
        ge=6,
        le=300,
        description="Seconds Kafka waits for a silent worker before its partitions go to others.",
    )
    web_port: int = Field(default=6066, ge=1, le=65535, description="Worker web server port.")
    web_host: str = Field(default="127.0.0.1", description="Worker web server bind address.")
    web_allow_no_token: bool = Field(
        default=False,
        description="Serve a non-loopback SCORER_WEB_HOST without SCORER_API_TOKEN.",
    )
    topic_partitions: int = Field(
        default=8, ge=1, le=10_000, description="Partitions for topics the scorer creates."
    )
    topic_replication_factor: int = Field(
        default=1, ge=1, le=32, description="Replication factor for topics the scorer creates."
    )
    batch_max_events: int = Field(
        default=1000, ge=1, le=100_000, description="Largest batch applied to Redis at once."
    )
    batch_max_wait: float = Field(
        default=0.2, gt=0, le=60, description="Seconds to wait for a batch to fill."
    )
    reorder_grace_ms: int = Field(
        default=0,
        ge=0,
        le=10_000,
        description=(
            "Milliseconds to gather events before applying them, each contact's in event-time "
            "order (0: applied as they arrive)."
        ),
    )
    state_format: int = Field(
        default=3,
        ge=1,
        le=3,
        description=(
            "Format of the contact states the worker writes: 3 (compact), or the format of "
            "an older release (2, or 1 for JSON) while workers of it still run (a rolling "
            "upgrade)."
        ),
    )
    contact_ttl_days: float = Field(
        default=180,
        gt=0,
        le=36_500,
        description="Days an idle contact's keys live in Redis (at most a century).",
    )
    dedupe_days: float = Field(
        default=30, gt=0, description="Days a contact remembers event ids to ignore repeats."
    )
    dedupe_max_ids: int = Field(
        default=10_000,
        ge=1,
        description=(
            "Most event ids a contact remembers (16 bytes each in Redis); past it the oldest "
            "are forgotten, and events as old are refused as too old."
        ),
    )
    state_cache_contacts: int = Field(
        default=20_000,
        ge=0,
        description="Contact states a worker keeps parsed in memory (about 12 KiB each).",
    )
    redis_retry_max_backoff: float = Field(
        default=5.0, gt=0, le=300, description="Longest pause between Redis retries (s)."
    )
    stall_seconds: float = Field(
        default=60,
        gt=0,
        le=86_400,
        description="Seconds a worker may fail to make progress before /readyz answers 503.",
    )
    max_event_bytes: int = Field(
        default=65_536, ge=256, description="Larger events are dead-lettered."
    )
    max_event_depth: int = Field(
        default=10, ge=1, le=100, description="Deeper nesting in properties is dead-lettered."
    )
    max_event_values: int = Field(
        default=1_000,
        ge=1,
        description="More values in properties (at every level) are dead-lettered.",
    )
    max_event_string: int = Field(
        default=10_000, ge=1, description="Longer strings in properties are dead-lettered."
    )
    sweep_interval_seconds: float = Field(
        default=60,
        ge=0,
        description="How often idle contacts' due expiries are applied (0 turns it off).",
    )
    max_clock_skew_seconds: float = Field(
        default=3600, gt=0, description="Events dated further in the future are dead-lettered."
    )
    accept_unknown_types: bool = Field(
        default=False,
        description="Score nothing for unknown event types instead of dead-lettering them.",
    )
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    api_token: SecretStr | None = Field(
        default=None, description="Bearer token the HTTP API requires (none: open)."
    )
    webhook_urls: str = Field(
        default="", description="Comma-separated URLs every alert is POSTed to (none: off)."
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description=f"Key of the webhooks' HMAC-SHA256 signature header "
        f"(at least {MIN_WEBHOOK_SECRET} characters).",
    )
    webhook_timeout_seconds: float = Field(
        default=10, gt=0, le=300, description="Seconds to wait for a webhook to answer."
    )
    webhook_max_backoff: float = Field(
        default=60, gt=0, le=3600, description="Longest pause between webhook retries (s)."
    )
    webhook_start: Literal["latest", "earliest"] = Field(
        default="latest",
        description="Where a new webhook sink starts on the alerts topic: latest or earliest.",
    )
    api_max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest request body POST /events accepts."
    )

    @field_validator("webhook_urls")
    @classmethod
    def _check_webhooks(cls, value: str) -> str:
        urls = [u.strip() for u in value.split(",") if u.strip()]
        for number, url in enumerate(urls, 1):
            if not url.startswith(("http://", "https://")):
                # Its number, not its text: a comma in a password would split it unhidden.
                raise ValueError(f"URL {number} of {len(urls)} is not http:// or https://")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _check_webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # Empty or short, the signature proves little; a custom type names the
        # problem even when the message must go (it would quote a tiny secret).
        if value is not None and len(value.get_secret_value()) < MIN_WEBHOOK_SECRET:
            raise PydanticCustomError(
                "secret_too_short",
                "must be at least {minimum} characters when set",
                {"minimum": MIN_WEBHOOK_SECRET},
            )
        return value

    @property
    def webhook_url_list(self) -> list[str]:
        return [u.strip() for u in self.webhook_urls.split(",") if u.strip()]

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",") if s.strip()]
        if not servers:
            raise ValueError("needs at least one host:port")
        # A comma in a password would cut off a piece that no mask recognises:
        # with anything to hide, a server is named by its number, never quoted.
        hiding = without_passwords(value) != value
        for number, server in enumerate(servers, 1):
            host, sep, port = server.rpartition(":")
            if (
                not sep
                or not host
                or "@" in host  # user:password@host: credentials are no part of an address
                or not port.isdigit()
                or not 0 < int(port) < 65536
            ):
                name = f"server {number} of {len(servers)}" if hiding else repr(server)
                raise ValueError(f"{name} is not host:port")
        return ",".join(servers)

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        parts = urlsplit(value)
        try:
            parts.port  # noqa: B018  (parsed on access: out of range or not a number raises)
        except ValueError:
            raise ValueError("has a port that is not a number from 0 to 65535") from None
        # redis-py takes client options from the query, over ours (ssl_cert_reqs=none
        # would turn certificate checks off): only a socket's database is taken there.
        allowed = {"db"} if value.startswith("unix://") else set()
        if set(parse_qs(parts.query, keep_blank_values=True)) - allowed:
            raise ValueError(
                "takes no options in its query; connection options are SCORER_REDIS_* settings"
            )
        return value

    @field_validator(
        "kafka_ssl_cafile",
        "kafka_ssl_certfile",
        "kafka_ssl_keyfile",
        "redis_ssl_cafile",
        "redis_ssl_certfile",
        "redis_ssl_keyfile",
    )
    @classmethod
    def _check_file(cls, value: Path | None) -> Path | None:
        # At start, not at the first connection: a missing file is a deployment mistake.
        try:
            found = value is None or value.is_file()
        except OSError as exc:  # a name too long, a folder we may not read
            raise ValueError(f"cannot be read ({exc.strerror})") from None
        if not found:
            raise ValueError("is not a file")
        return value

    @model_validator(mode="after")
    def _check_connections(self) -> Settings:
        """Settings that only mean something together, checked together.

        A credential or file that would be ignored (a password without SASL, a
        CA without TLS) is refused: silently connecting another way than the
        operator meant is worse than not starting. (Switches with safe defaults,
        such as the hostname checks, are not.)
        """
        problems = []
        sasl = self.kafka_security_protocol.startswith("SASL_")
        tls = self.kafka_security_protocol in ("SSL", "SASL_SSL")
        if sasl and (self.kafka_sasl_username is None or self.kafka_sasl_password is None):
            problems.append(
                f"SCORER_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "SCORER_KAFKA_SASL_USERNAME and SCORER_KAFKA_SASL_PASSWORD"
            )
        if not sasl and (self.kafka_sasl_username or self.kafka_sasl_password):
            problems.append(
                "SCORER_KAFKA_SASL_USERNAME and SCORER_KAFKA_SASL_PASSWORD are used only with "
                "SCORER_KAFKA_SECURITY_PROTOCOL=SASL_SSL or SASL_PLAINTEXT"
            )
        kafka_files = [self.kafka_ssl_cafile, self.kafka_ssl_certfile, self.kafka_ssl_keyfile]
        if not tls and (any(kafka_files) or self.kafka_ssl_key_password):
            problems.append(
                "SCORER_KAFKA_SSL_* files are used only with "
                "SCORER_KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL"
            )
        for system in ("kafka", "redis"):
            certfile, keyfile = (
                getattr(self, f"{system}_ssl_{f}") for f in ("certfile", "keyfile")
            )
            if keyfile is not None and certfile is None:
                up = system.upper()
                problems.append(f"SCORER_{up}_SSL_KEYFILE needs SCORER_{up}_SSL_CERTFILE")
        redis_files = [self.redis_ssl_cafile, self.redis_ssl_certfile, self.redis_ssl_keyfile]
        if (any(redis_files) or self.redis_ssl_key_password) and not self.redis_url.startswith(
            "rediss://"
        ):
            problems.append("SCORER_REDIS_SSL_* files are used only with a rediss:// URL")
        url = urlsplit(self.redis_url) if "://" in self.redis_url else None
        if url is not None and (
            (self.redis_password is not None and url.password)
            or (self.redis_username is not None and url.username)
        ):
            problems.append(
                "the Redis user or password is given twice: in SCORER_REDIS_URL and in "
                "SCORER_REDIS_USERNAME / SCORER_REDIS_PASSWORD"
            )
        if self.redis_cluster and self.redis_ssl_key_password is not None:
            problems.append(
                "SCORER_REDIS_SSL_KEY_PASSWORD: the Redis Cluster client cannot use an "
                "encrypted key; give it an unencrypted one"
            )
        if self.redis_cluster:
            if self.redis_url.startswith("unix://"):
                problems.append("SCORER_REDIS_CLUSTER needs a redis:// or rediss:// URL")
            elif urlsplit(self.redis_url).path.strip("/") not in ("", "0"):
                problems.append("SCORER_REDIS_CLUSTER: a cluster has only database 0")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return level

    @field_validator("events_topic", "alerts_topic", "dlq_topic")
    @classmethod
    def _check_topic(cls, value: str) -> str:
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        if not value or len(value) > 249 or not set(value) <= allowed:
            raise ValueError("a Kafka topic name is 1-249 of [a-zA-Z0-9._-]")
        return value

    @property
    def kafka_url(self) -> str:
        """Faust's broker URL form of the bootstrap list."""
        return ";".join(f"kafka://{s}" for s in self.kafka_bootstrap_servers.split(","))

    def group_membership(self, group: str) -> dict[str, Any]:
        """The session, heartbeat and static membership of an aiokafka consumer in ``group``.

        The heartbeat is at most a third of the session, as Kafka advises, and at
        most 1 s: members learn that a rebalance began at their next heartbeat,
        so it bounds how long a handover waits for them.
        With :attr:`instance_id`, the member's id is ``<instance id>.<group>``:
        one per group the worker joins.
        """
        session_ms = int(self.kafka_session_timeout_seconds * 1000)
        return {
            "session_timeout_ms": session_ms,
            "heartbeat_interval_ms": min(1000, session_ms // 3),
            "group_instance_id": None
            if self.instance_id is None
            else f"{self.instance_id}.{group}",
        }

    @property
    def contact_ttl_seconds(self) -> int:
        return int(self.contact_ttl_days * 86_400)


def is_secret(field: str) -> bool:
    """Whether a setting's value is never printed: a SecretStr, or a name that says secret.

    An unknown name (a model-wide error's input is every value) counts as secret;
    a switch (``web_allow_no_token``) does not, whatever its name.
    """
    info = Settings.model_fields.get(field)
    if info is None or field in _SECRET_VALUES:
        return True
    if info.annotation is bool:
        return False
    if _SECRET_NAME.search(field):
        return True
    todo = [info.annotation]
    while todo:  # the annotation and what it is made of (SecretStr | None)
        annotation = todo.pop()
        if annotation in (SecretStr, SecretBytes):
            return True
        todo.extend(get_args(annotation))
    return False


def load_settings(**overrides: Any) -> Settings:
    """Read the environment, failing fast with the variable names that are wrong.

    A value is quoted to help find the mistake, except a secret's (see
    :func:`is_secret`); a URL's password is hidden (:func:`without_passwords`),
    in the value and in the message, which a validator may make quote part of it.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            if not err["loc"]:  # settings checked together: the message names them, no value
                problems.append(without_passwords(str(err["msg"])).removeprefix("Value error, "))
                continue
            field = str(err["loc"][0])
            var = f"{ENV_PREFIX}{field.upper()}"
            given = err.get("input")
            message = str(err["msg"])
            if is_secret(field):
                if isinstance(given, str) and given and given in message:
                    message = f"invalid ({err['type']})"  # the message would show it
                problems.append(f"{var}: {message} (the value is secret: not shown)")
                continue
            if isinstance(given, str) and given:  # the whole value quoted, and the rest
                parts = message.split(given)
                message = without_passwords(given).join(without_passwords(p) for p in parts)
            else:
                message = without_passwords(message)
            shown = (
                repr(without_passwords(given))
                if isinstance(given, str)
                else without_passwords(repr(given))
            )
            problems.append(f"{var}: {message} (got {shown})")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None
