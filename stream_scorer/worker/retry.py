"""The worker's one retry loop: what is transient waits with capped backoff and runs again.

Redis or Kafka away, restarting or loading, a webhook receiver answering
5xx, Kafka not yet up when topics are created: each caller says what counts
as transient and how fast to back off; anything else is raised at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from aiokafka.errors import KafkaError, KafkaTimeoutError
from faust.exceptions import ProducerSendError
from redis.exceptions import (
    ClusterError,
    RedisClusterException,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

if TYPE_CHECKING:
    from stream_scorer.worker.health import Health

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Redis error replies that mean "try again later", not "your request is wrong".
_TRANSIENT_REPLIES = ("LOADING", "BUSY", "OOM", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN")


class TryAgain(Exception):
    """An answer that means "not now" (an HTTP 5xx, say); its message says what it was."""


def unwrap(exc: BaseException) -> BaseException:
    """The Kafka client's error inside Faust's ``ProducerSendError``, or ``exc`` itself."""
    if isinstance(exc, ProducerSendError) and exc.__cause__ is not None:
        return exc.__cause__
    return exc


def is_transient(exc: BaseException) -> bool:
    """Redis or Kafka unreachable, timing out or busy, or a :class:`TryAgain`.

    Kafka says itself which of its errors are worth retrying (``retriable``);
    the others (authorization, a record too large, an unsupported version)
    would fail the same way forever.
    """
    exc = unwrap(exc)
    if isinstance(exc, KafkaError):
        return bool(exc.retriable) or isinstance(exc, KafkaTimeoutError)
    if isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError | TryAgain):
        return True
    if isinstance(exc, ClusterError | SlotNotCoveredError | TryAgainError):
        return True  # the cluster down, a slot not covered or moving: the cluster heals
    if isinstance(exc, RedisClusterException):  # its other errors are mistakes, but one
        return "cannot be connected" in str(exc)  # no node of the cluster answers
    return isinstance(exc, ResponseError) and str(exc).startswith(_TRANSIENT_REPLIES)


async def retry(
    what: str,
    op: Callable[[], Awaitable[T]],
    max_backoff: float,
    *,
    first_delay: float = 0.05,
    transient: Callable[[BaseException], bool] = is_transient,
    give_up_at: float | None = None,
    log_level: int = logging.WARNING,
    health: Health | None = None,
) -> T:
    """Run ``op`` until it succeeds; transient failures wait, others raise.

    The wait starts at ``first_delay`` and doubles up to ``max_backoff``.
    With ``give_up_at`` (event loop time), a transient failure after it is
    raised too. Each retried failure is logged at ``log_level`` and, with
    ``health``, reported there (a long run of them stalls the worker).
    """
    delay = first_delay
    attempt = 0
    token: int | None = None
    try:
        while True:
            try:
                return await op()
            except Exception as exc:
                if not transient(exc):
                    raise
                if give_up_at is not None and asyncio.get_running_loop().time() > give_up_at:
                    raise
                if health is not None:
                    token = health.failing(what, token)
                attempt += 1
                log.log(
                    log_level,
                    "transient failure, retrying: what=%s attempt=%d error=%s delay=%.2f",
                    what,
                    attempt,
                    str(exc) if isinstance(exc, TryAgain) else type(unwrap(exc)).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, max_backoff)
    finally:
        if health is not None and token is not None:
            health.done(token)  # however the loop ends: success, error or cancellation
