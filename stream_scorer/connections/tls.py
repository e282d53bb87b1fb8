"""Telling a certificate problem (permanent) from a TLS connection cut short (transient)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

from stream_scorer.errors import ConfigError

__all__ = ["causes", "certificate_problem", "client_context"]

#: TLS alerts that mean the peer refused our certificate (or our lack of one).
_REFUSING_ALERTS = (
    "ALERT_BAD_CERTIFICATE",
    "ALERT_CERTIFICATE_REQUIRED",
    "ALERT_UNKNOWN_CA",
    "ALERT_CERTIFICATE_UNKNOWN",
    "ALERT_CERTIFICATE_REVOKED",
    "ALERT_CERTIFICATE_EXPIRED",
    "ALERT_UNSUPPORTED_CERTIFICATE",
    "ALERT_ACCESS_DENIED",
    "ALERT_HANDSHAKE_FAILURE",  # TLS 1.2's answer to no client certificate (or no common cipher)
)


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it was raised from or during: clients wrap the error that says why."""
    seen: BaseException | None = exc
    for _ in range(10):  # a chain is short; a cycle would be a bug elsewhere
        if seen is None:
            return
        yield seen
        seen = seen.__cause__ or seen.__context__


def certificate_problem(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error in ``exc``'s chain that no retry will cure, if any.

    A certificate we do not trust (:class:`ssl.SSLCertVerificationError`), or
    an alert saying the server refused ours. A connection closed during or
    after the handshake (``SSLEOFError``, ``SSLZeroReturnError``, a reset) is
    not one: a server restarting or full does that too.
    """
    for seen in causes(exc):
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        if isinstance(seen, ssl.SSLError) and any(
            alert in str(getattr(seen, "reason", None) or seen) for alert in _REFUSING_ALERTS
        ):
            return seen
    return None


def client_context(
    system: str,
    cafile: Path | None,
    certfile: Path | None,
    keyfile: Path | None,
    key_password: str | None,
    check_hostname: bool,
    *,
    system_cas: bool = False,
) -> ssl.SSLContext:
    """The verifying TLS context a service's ``SCORER_<system>_SSL_*`` settings describe.

    Trusts ``cafile`` (None: the system's CAs), or both with ``system_cas``
    (as redis-py does), and presents the client certificate if one is set.
    Read at start, so that a file that does not load is a ConfigError naming
    the variables: a CA file without a certificate, or a key that is not the
    certificate's (or encrypted, without its password), would otherwise look
    like the server being away. Never OpenSSL's pass-phrase prompt, which
    would block a worker on a terminal. ``system`` is ``KAFKA`` or ``REDIS``.
    """
    try:
        context = ssl.create_default_context(
            cafile=None if cafile is None or system_cas else str(cafile)
        )
        if system_cas and cafile is not None:
            context.load_verify_locations(str(cafile))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"SCORER_{system}_SSL_CAFILE: no CA certificate could be read ({exc})"
        ) from None
    context.check_hostname = check_hostname
    if certfile is None:
        return context
    try:
        context.load_cert_chain(
            str(certfile), None if keyfile is None else str(keyfile), key_password or ""
        )
    # ValueError: a password OpenSSL cannot take (over 1024 bytes, not UTF-8); its text
    # would quote the password, so only the type is named.
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ConfigError(
            f"SCORER_{system}_SSL_CERTFILE / SCORER_{system}_SSL_KEYFILE: the client certificate "
            f"and key could not be loaded ({type(exc).__name__}; a key of another certificate, "
            f"or an encrypted key without SCORER_{system}_SSL_KEY_PASSWORD?)"
        ) from None
    return context
