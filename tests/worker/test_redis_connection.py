"""The worker's Redis client packs commands with hiredis: the same bytes, the same errors."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import DataError

from stream_scorer.connections.redis import connect

#: What the store sends: keys and names (str), states and alerts (bytes), numbers.
ARGUMENT = st.one_of(
    st.text(),
    st.binary(max_size=70_000),  # past redis-py's 6,000-byte buffer cut-off
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
)


def _packers() -> tuple[Connection, Connection]:
    ours = connect("redis://127.0.0.1:1").connection_pool.make_connection()
    assert isinstance(ours, Connection)
    return ours, Connection()


@given(name=st.sampled_from(["EVALSHA", "ZADD", "CONFIG GET", b"HMGET"]), args=st.lists(ARGUMENT))
def test_commands_are_packed_into_the_bytes_redis_py_sends(
    name: str | bytes, args: list[object]
) -> None:
    ours, redis_py = _packers()
    assert type(ours).pack_command is not Connection.pack_command
    assert b"".join(ours.pack_command(name, *args)) == b"".join(redis_py.pack_command(name, *args))


def test_a_value_redis_cannot_take_is_a_data_error() -> None:
    ours, _ = _packers()
    with pytest.raises(DataError):
        ours.pack_command("SET", "k", None)


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("redis://127.0.0.1:6379/0", Connection),
        ("rediss://127.0.0.1:6380/0", SSLConnection),
        ("unix:///tmp/redis.sock", UnixDomainSocketConnection),
    ],
)
def test_every_kind_of_url_keeps_its_connection_and_gets_the_packer(
    url: str, kind: type[Connection]
) -> None:
    made = connect(url).connection_pool.make_connection()
    assert isinstance(made, kind)
    assert type(made).pack_command is not kind.pack_command


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0?encoding=latin-1",
        "redis://127.0.0.1:6379/0?encoding_errors=replace",
    ],
)
def test_a_client_told_another_encoding_keeps_redis_pys_packer(url: str) -> None:
    made = connect(url).connection_pool.make_connection()
    assert type(made).pack_command is Connection.pack_command
    assert made.pack_command("SET", "k", "\u00e9") == Connection(
        encoding="latin-1" if "latin" in url else "utf-8", encoding_errors="replace"
    ).pack_command("SET", "k", "\u00e9")


@pytest.mark.integration
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # one client for all
@given(values=st.lists(st.binary(max_size=20_000), min_size=1, max_size=20))
async def test_values_round_trip_through_a_real_redis(
    redis_client: aioredis.Redis, values: list[bytes]
) -> None:
    keys = [f"connection-test:{i}" for i in range(len(values))]
    await redis_client.mset(dict(zip(keys, values, strict=True)))
    assert await redis_client.mget(keys) == values
    await redis_client.delete(*keys)
