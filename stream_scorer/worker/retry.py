"""Retrying what is transient: a Redis or Kafka that is away, restarting or loading."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka.errors import KafkaError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Redis error replies that mean "try again later", not "your request is wrong".
_TRANSIENT_REPLIES = ("LOADING", "BUSY", "OOM", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN")


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, RedisConnectionError | RedisTimeoutError | KafkaError | OSError):
        return True
    return isinstance(exc, ResponseError) and str(exc).startswith(_TRANSIENT_REPLIES)


async def retry(what: str, op: Callable[[], Awaitable[T]], max_backoff: float) -> T:
    """Run ``op`` until it succeeds; transient failures wait with capped backoff, others raise."""
    delay = 0.05
    attempt = 0
    while True:
        try:
            return await op()
        except Exception as exc:
            if not is_transient(exc):
                raise
            attempt += 1
            log.warning(
                "transient failure, retrying: what=%s attempt=%d error=%s delay=%.2f",
                what,
                attempt,
                type(exc).__name__,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_backoff)
