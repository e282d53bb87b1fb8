"""Which partition a contact's events belong to: Kafka's default partitioner.

The worker applies a contact's events from one partition only, so they are
applied in the order they reached it. That home partition is the one the
Java client, aiokafka and ``stream-scorer produce`` pick when the contact id
is the key: the murmur2 hash of its UTF-8 bytes, made positive, modulo the
number of partitions. librdkafka's default partitioner (``consistent_random``,
a CRC32 hash) picks another partition for most keys; the consumer forwards
such records to their home before applying them (docs/streaming.md).
"""

from __future__ import annotations

import struct
from functools import lru_cache

__all__ = ["home_partition", "murmur2"]

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """MurmurHash2 (32 bits, unsigned) exactly as Kafka's ``Utils.murmur2``."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length & ~3
    for (k,) in struct.iter_unpack("<I", data[:whole]):
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length & 3
    if rest == 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


@lru_cache(maxsize=65_536)
def home_partition(contact_id: str, partitions: int) -> int:
    """The partition whose events of ``contact_id`` the worker applies."""
    return (murmur2(contact_id.encode()) & 0x7FFFFFFF) % partitions
