"""How every Kafka client of the project connects: addresses, SASL and TLS, in one place.

The worker's events consumer, its Faust app (producer of alerts and dead
letters), the webhook sink, the topic admin, ``alerts tail``, ``produce``
and :class:`~stream_scorer.client.EventProducer` all take their options
from :func:`kafka_options`, so a secured cluster is reached the same way by
each. :func:`diagnose` turns a failed first connection into a sentence that
names the problem (a wrong password, an untrusted certificate) instead of
aiokafka's "unable to bootstrap".
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from typing import Any

from aiokafka.conn import create_conn
from aiokafka.errors import KafkaError, SaslAuthenticationFailed, UnsupportedSaslMechanismError

from stream_scorer.connections.tls import (
    certificate_problem,
    client_context,
)
from stream_scorer.settings import Settings

__all__ = ["Problem", "diagnose", "kafka_options", "ssl_context"]

#: How long :func:`diagnose` waits for one broker to answer.
DIAGNOSE_TIMEOUT_SECONDS = 10.0


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for SSL and SASL_SSL: the CA file (or the system's), a client cert.

    A key that does not load (wrong password, not a key of that certificate)
    is a configuration error at start, not a failed handshake later.
    """
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    password = settings.kafka_ssl_key_password
    return client_context(
        "KAFKA",
        settings.kafka_ssl_cafile,
        settings.kafka_ssl_certfile,
        settings.kafka_ssl_keyfile,
        None if password is None else password.get_secret_value(),
        settings.kafka_ssl_check_hostname,
    )


class _NoSaslExchange(logging.Filter):
    """Drops aiokafka's DEBUG lines that show a SASL request or response.

    aiokafka logs every request's repr at DEBUG: a PLAIN login's is the
    password itself, a SCRAM login's the proof an attacker could test
    passwords against offline.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not any("Sasl" in type(arg).__name__ for arg in args)


_SASL_FILTER = _NoSaslExchange()


def kafka_options(settings: Settings, context: ssl.SSLContext | None = None) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client: the bootstrap list, SASL and TLS.

    ``context`` reuses a context already made (one per process is enough).
    With SASL, aiokafka's connection log stops showing the login exchange,
    whatever ``SCORER_LOG_LEVEL`` says.
    """
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": protocol,
    }
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = context if context is not None else ssl_context(settings)
    if protocol.startswith("SASL_"):
        conn_log = logging.getLogger("aiokafka.conn")
        if _SASL_FILTER not in conn_log.filters:
            conn_log.addFilter(_SASL_FILTER)
        password = settings.kafka_sasl_password
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = None if password is None else password.get_secret_value()
    return options


@dataclass(frozen=True)
class Problem:
    """Why Kafka could not be used: a sentence, and whether Kafka refused (vs. was away)."""

    message: str
    #: Kafka answered and said no (a login, a certificate): retrying cannot help.
    refused: bool


def _explain(exc: BaseException, settings: Settings) -> Problem:
    """One failed connection, in the words of the settings that would fix it."""
    problem = certificate_problem(exc)
    if isinstance(problem, ssl.SSLCertVerificationError):
        why = getattr(problem, "verify_message", None) or str(problem)
        if "hostname" in why.lower() or "ip address mismatch" in why.lower():
            return Problem(
                f"Kafka's certificate does not name this broker's host ({why}); "
                "connect by a name the certificate holds, or set "
                "SCORER_KAFKA_SSL_CHECK_HOSTNAME=false",
                refused=True,
            )
        return Problem(
            f"Kafka's certificate is not trusted ({why}): "
            "SCORER_KAFKA_SSL_CAFILE must name the CA that signed it",
            refused=True,
        )
    if problem is not None:  # the broker refused our certificate, or our lack of one
        alert = getattr(problem, "reason", None) or problem
        return Problem(
            f"Kafka refused the client certificate ({alert}): does the "
            "listener need one (SCORER_KAFKA_SSL_CERTFILE and SCORER_KAFKA_SSL_KEYFILE), "
            "signed by a CA the broker trusts?",
            refused=True,
        )
    if isinstance(exc, SaslAuthenticationFailed | UnsupportedSaslMechanismError):
        return Problem(
            f"Kafka refused the SASL login as {settings.kafka_sasl_username!r} with "
            f"{settings.kafka_sasl_mechanism} ({type(exc).__name__}): check "
            "SCORER_KAFKA_SASL_USERNAME, SCORER_KAFKA_SASL_PASSWORD and "
            "SCORER_KAFKA_SASL_MECHANISM",
            refused=True,
        )
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return Problem(
            "Kafka did not answer in time: with SCORER_KAFKA_SECURITY_PROTOCOL="
            f"{settings.kafka_security_protocol}, is the port a listener of that protocol?",
            refused=False,
        )
    return Problem(f"no connection ({type(exc).__name__}: {exc})", refused=False)


async def diagnose(settings: Settings) -> Problem | None:
    """Why a client cannot reach Kafka, from one connection to each bootstrap server.

    None when one of them accepts the connection and its login. Otherwise
    the problem of the first server, in words that name the setting to fix;
    never a secret.
    """
    options = kafka_options(settings)
    del options["bootstrap_servers"]
    problems: list[Problem] = []
    for server in settings.kafka_bootstrap_servers.split(","):
        host, _, port = server.rpartition(":")
        try:
            conn = await asyncio.wait_for(
                create_conn(host, int(port), request_timeout_ms=5000, **options),
                DIAGNOSE_TIMEOUT_SECONDS,
            )
        except (TimeoutError, KafkaError, OSError) as exc:
            found = _explain(exc, settings)
            problems.append(Problem(f"{server}: {found.message}", found.refused))
            continue
        conn.close()
        return None
    refused = [p for p in problems if p.refused]  # a refusal says more than a broker away
    first = refused or problems
    return first[0] if first else None
