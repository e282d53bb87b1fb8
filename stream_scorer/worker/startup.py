"""What a worker checks before it starts: Kafka's topics, and a Redis it may use.

A refusal (a wrong password, an untrusted certificate, a Redis that evicts
keys, a cluster setting that does not match the server) stops the worker
within seconds with a sentence that names the setting to fix. Kafka still
starting is waited for, up to a minute. Redis away is not a reason to stop:
the worker starts, retries, and its ``/readyz`` answers 503 until Redis is
back (the checks then happen at the next start).
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisClusterException, RedisError

from stream_scorer.connections.redis import check_redis, connect_settings
from stream_scorer.settings import Settings
from stream_scorer.worker.topics import ensure_topics

__all__ = ["check_services"]

log = logging.getLogger(__name__)


async def check_services(settings: Settings, wait_seconds: float = 60.0) -> None:
    """Topics exist and Redis lets us in; raises ServiceRefused or ServiceUnavailable."""
    await ensure_topics(settings, wait_seconds)
    client = connect_settings(settings, socket_timeout=10, socket_connect_timeout=5)
    try:
        await check_redis(client, settings)
    except (RedisError, RedisClusterException, OSError) as exc:
        log.warning(
            "Redis did not answer at start; starting anyway, retrying until it does: error=%s",
            type(exc).__name__,
        )
    finally:
        await client.aclose()
