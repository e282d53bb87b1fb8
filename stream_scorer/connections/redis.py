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

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.connection import HiredisRespSerializer

__all__ = ["connect"]

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
