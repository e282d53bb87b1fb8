"""The worker's Redis client: redis-py's asyncio client, with commands packed by hiredis.

redis-py's synchronous client packs commands with hiredis's C packer when
hiredis is installed (a dependency here); its asyncio client always packs
them in Python. The store sends a few thousand arguments per batch (keys,
versions, states, alerts, index entries), and packing them in Python took
about a tenth of the worker's time (``benchmarks/pipeline.py``). The same
bytes go on the wire either way (for the str, bytes, int and float the
worker sends); this is the synchronous client's packer,
:class:`redis.connection.HiredisRespSerializer`, used from asyncio. It copies
each argument into one buffer, where redis-py passed large values through:
a transient copy of a large state per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import Any, TypeAlias
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.connection import HiredisRespSerializer
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    NoPermissionError,
    RedisClusterException,
    RedisError,
    ResponseError,
)

from stream_scorer.connections.tls import (
    causes,
    certificate_problem,
    client_context,
)
from stream_scorer.errors import ServiceRefused
from stream_scorer.settings import Settings

__all__ = [
    "DEFAULT_USER_ACL_RULES",
    "WORKER_ACL_RULES",
    "RedisClient",
    "check_redis",
    "connect",
    "connect_settings",
]

log = logging.getLogger(__name__)

#: A single Redis or a Redis Cluster: the store speaks to either.
RedisClient: TypeAlias = aioredis.Redis | RedisCluster

#: The least a worker's Redis user needs (``ACL SETUSER <user> on ><password> ...``):
#: the ``ss:`` keys, the commands of the store, its scripts, the webhook records
#: and the start-up checks, and the cluster client's (its slot map, the command
#: table it routes by, and ASKING while a slot moves). Every integration test of
#: secured Redis, single and cluster, runs as a user with exactly these rules.
WORKER_ACL_RULES: tuple[str, ...] = (
    "resetkeys",
    "~ss:*",
    "resetchannels",
    "-@all",
    "+ping",
    "+info",
    "+select",
    "+evalsha",
    "+script|load",
    "+time",
    "+hget",
    "+hset",
    "+hmget",
    "+hgetall",
    "+get",
    "+set",
    "+exists",
    "+del",
    "+append",
    "+strlen",
    "+pexpire",
    "+rpush",
    "+lpush",
    "+lrange",
    "+lrem",
    "+ltrim",
    "+zadd",
    "+zrem",
    "+zscore",
    "+zmscore",
    "+zcount",
    "+zrangebyscore",
    "+zrevrange",
    "+multi",
    "+exec",
    "+discard",
    "+cluster|slots",
    "+command",
    "+asking",
)

#: What Redis's ``default`` user must keep when an ACL file turns it off
#: (``user default off ~* &* +@all``). Redis replays its append-only file on
#: start as the default user, and before redis/redis#14545 it checked that
#: user's permissions again at each replayed ``EXEC``: the scorer's script
#: writes are in the file as ``MULTI``/``EXEC``, so a default user without
#: them makes a restarted Redis drop every contact written since its last
#: rewrite, silently (Redis 7.0.15 does; the tests show it). ``off`` still
#: lets no client log in as it.
DEFAULT_USER_ACL_RULES: tuple[str, ...] = ("off", "~*", "&*", "+@all")

#: The eviction policy a scorer's Redis must have once it has a maxmemory: any
#: other evicts keys, and the scorer's keys all carry a TTL (volatile-* takes them too).
SAFE_POLICY = "noeviction"

_PACKER = HiredisRespSerializer()


class _HiredisPacking(AbstractConnection):
    def pack_command(self, *args: Any) -> list[bytes]:
        packed: list[bytes] = _PACKER.pack(*args)
        return packed


class _Tcp(_HiredisPacking, Connection):
    pass


class _Tls(_HiredisPacking, SSLConnection):
    pass


class _Unix(_HiredisPacking, UnixDomainSocketConnection):
    pass


_PACKING: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: _Tcp,
    SSLConnection: _Tls,
    UnixDomainSocketConnection: _Unix,
}


def connect(url: str, **options: Any) -> aioredis.Redis:
    """A client for ``url`` (``redis://``, ``rediss://``, ``unix://``), as ``from_url`` makes it.

    hiredis writes strings as strict UTF-8, redis-py's default: a client told
    otherwise (an ``encoding`` in the URL's query, say) keeps redis-py's own
    packer. Nothing is connected until the first command.
    """
    client = aioredis.from_url(url, **options)
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    encoding = str(kwargs.get("encoding", "utf-8")).lower().replace("_", "-")
    if encoding in ("utf-8", "utf8") and kwargs.get("encoding_errors", "strict") == "strict":
        pool.connection_class = _PACKING.get(pool.connection_class, pool.connection_class)
    return client


def connect_settings(settings: Settings, **options: Any) -> RedisClient:
    """The client the settings describe: single or cluster, TLS files, ACL user.

    ``SCORER_REDIS_USERNAME`` / ``SCORER_REDIS_PASSWORD`` are used when the
    URL carries none (the settings refuse both at once).
    """
    if settings.redis_username is not None:
        options["username"] = settings.redis_username
    if settings.redis_password is not None:
        options["password"] = settings.redis_password.get_secret_value()
    if settings.redis_url.startswith("rediss://"):
        cafile, certfile, keyfile = (
            settings.redis_ssl_cafile,
            settings.redis_ssl_certfile,
            settings.redis_ssl_keyfile,
        )
        options["ssl_cert_reqs"] = "required"
        options["ssl_check_hostname"] = settings.redis_ssl_check_hostname
        # Checked now, as the Kafka client's are: redis-py loads them per connection,
        # where a bad file would look like Redis being away.
        _tls_context(settings)
        if cafile is not None:
            options["ssl_ca_certs"] = str(cafile)
        if certfile is not None:
            secret = settings.redis_ssl_key_password
            options["ssl_certfile"] = str(certfile)
            options["ssl_keyfile"] = None if keyfile is None else str(keyfile)
            if not settings.redis_cluster:  # redis-py's cluster client takes no key password
                options["ssl_password"] = "" if secret is None else secret.get_secret_value()
    if settings.redis_cluster:
        return RedisCluster.from_url(settings.redis_url, **options)
    return connect(settings.redis_url, **options)


def _tls_context(settings: Settings) -> ssl.SSLContext:
    """What redis-py will trust and present: the system's CAs and the CA file, our cert."""
    secret = settings.redis_ssl_key_password
    return client_context(
        "REDIS",
        settings.redis_ssl_cafile,
        settings.redis_ssl_certfile,
        settings.redis_ssl_keyfile,
        None if secret is None else secret.get_secret_value(),
        settings.redis_ssl_check_hostname,
        system_cas=True,
    )


async def _certificate_alert(settings: Settings) -> ssl.SSLError | None:
    """The alert a TLS Redis sends about our client certificate (none, or one it distrusts).

    Over TLS 1.3 the server checks the client's certificate after the
    handshake, then sends its alert and closes: a client that has already
    sent a command (redis-py's login) may see only a reset, like a server
    going away. Here nothing is sent, so the alert is what arrives. A Redis
    that lets us in sends nothing and the read times out; that, or any other
    failure (a server away, our trust of its certificate), is None: only the
    server's refusal of our certificate is reported.
    """
    url = urlsplit(settings.redis_url)
    context = _tls_context(settings)
    found: ssl.SSLError | None = None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(url.hostname or "localhost", url.port or 6379, ssl=context), 5
        )
    except ssl.SSLError as exc:  # TLS 1.2 refuses within the handshake
        found = exc
    except (OSError, TimeoutError, ValueError):
        return None
    else:
        try:
            await asyncio.wait_for(reader.read(1), 2)
        except ssl.SSLError as exc:
            found = exc
        except (OSError, TimeoutError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1)
    problem = None if found is None else certificate_problem(found)
    return None if isinstance(problem, ssl.SSLCertVerificationError) else problem


def _refusal(exc: BaseException) -> str | None:
    """What in a failed connection no retry will cure, in the words of the settings.

    redis-py reports a refused login or certificate as a connection error
    (retried), and the cluster client wraps it again in its own error or
    only quotes it: the chain and the text are both looked at.
    """
    problem = certificate_problem(exc)
    if isinstance(problem, ssl.SSLCertVerificationError):
        return (
            f"Redis's certificate is not trusted ({getattr(problem, 'verify_message', None)}): "
            "SCORER_REDIS_SSL_CAFILE must name the CA that signed it (or "
            "SCORER_REDIS_SSL_CHECK_HOSTNAME=false if it names another host)"
        )
    if problem is not None:
        alert = getattr(problem, "reason", None) or problem
        return (
            f"Redis refused the client certificate ({alert}): does it "
            "need one (SCORER_REDIS_SSL_CERTFILE and SCORER_REDIS_SSL_KEYFILE), signed by "
            "a CA it trusts?"
        )
    texts = []
    for seen in causes(exc):
        if isinstance(seen, AuthenticationError | AuthorizationError):
            return _LOGIN.format(seen)
        texts.append(str(seen))
    text = " ".join(texts)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return (
            "Redis's certificate is not trusted: SCORER_REDIS_SSL_CAFILE must name the CA "
            "that signed it"
        )
    lowered = text.lower()
    if any(
        word in lowered
        for word in ("wrongpass", "invalid username-password", "noauth", "authentication required")
    ):
        return _LOGIN.format("the server said so")
    return None


_LOGIN = (
    "Redis refused the login ({}): check SCORER_REDIS_USERNAME and SCORER_REDIS_PASSWORD "
    "(or the URL's user and password)"
)


def _primaries(client: RedisClient) -> list[Any]:
    """Where a check must ask: every primary of a cluster, else the one server."""
    if isinstance(client, RedisCluster):
        return list(client.get_primaries())
    return [None]


async def _policy(client: RedisClient, node: Any) -> tuple[int, str] | None:
    """A server's ``maxmemory`` and policy, from INFO memory (CONFIG is often denied)."""
    if isinstance(client, RedisCluster):
        info: dict[str, Any] = await client.info("memory", target_nodes=node)
    else:
        info = await client.info("memory")
    if "maxmemory" not in info or "maxmemory_policy" not in info:
        return None
    return int(info["maxmemory"]), str(info["maxmemory_policy"])


async def check_redis(client: RedisClient, settings: Settings) -> None:
    """At start: Redis lets us in, and will not evict the scorer's keys.

    A wrong password or an ACL without the scorer's commands raises
    :class:`ServiceRefused` naming the settings to fix. A server with a
    ``maxmemory`` and any policy but ``noeviction`` loses contacts' scores
    silently when full: refused too, unless ``SCORER_REDIS_ALLOW_EVICTION``
    says to go on (then a warning at every start). Unreachable Redis raises
    redis-py's connection error (the caller's retry waits for it).
    """
    try:
        await client.ping()
    except NoPermissionError as exc:
        raise ServiceRefused(
            f"Redis's ACL denies the scorer's user a command it needs ({exc}): give it the "
            "rules in docs/deploying.md"
        ) from None
    except (RedisError, RedisClusterException) as exc:
        problem = _refusal(exc)
        if problem is None and settings.redis_url.startswith("rediss://"):
            alert = await _certificate_alert(settings)
            if alert is not None:
                problem = _refusal(alert)
        if problem is not None:
            raise ServiceRefused(problem) from None
        denied = next((e for e in causes(exc) if isinstance(e, NoPermissionError)), None)
        if denied is not None:  # the cluster client reports a refused CLUSTER SLOTS so
            raise ServiceRefused(
                f"Redis's ACL denies the scorer's user a command it needs ({denied}): give it "
                "the rules in docs/deploying.md"
            ) from None
        if "cluster mode is not enabled" in str(exc).lower():
            raise ServiceRefused(
                "SCORER_REDIS_CLUSTER=true, but Redis is not a cluster: set it to false"
            ) from None
        raise
    if not isinstance(client, RedisCluster):
        try:
            info: dict[str, Any] = await client.info("cluster")
        except (NoPermissionError, ResponseError):
            info = {}
        if info.get("cluster_enabled") in (1, "1"):
            raise ServiceRefused(
                "Redis is a cluster node: set SCORER_REDIS_CLUSTER=true (a contact's keys "
                "would otherwise be written through one node that owns only some slots)"
            )
    for node in _primaries(client):
        where = "Redis" if node is None else f"Redis Cluster node {node.host}:{node.port}"
        try:
            found = await _policy(client, node)
        except (NoPermissionError, ResponseError) as exc:
            log.warning(
                "cannot check Redis's eviction policy (%s): it must be noeviction "
                "(see docs/deploying.md)",
                type(exc).__name__,
            )
            continue
        if found is None:
            continue
        maxmemory, policy = found
        if maxmemory == 0 or policy == SAFE_POLICY:
            continue
        message = (
            f"{where} has maxmemory {maxmemory} with maxmemory-policy {policy}: when full it "
            "deletes contacts' keys and their scores are lost; set maxmemory-policy "
            "noeviction (see docs/deploying.md)"
        )
        if not settings.redis_allow_eviction:
            raise ServiceRefused(message + ", or SCORER_REDIS_ALLOW_EVICTION=true to accept it")
        log.warning("%s; started anyway: SCORER_REDIS_ALLOW_EVICTION=true", message)
