"""Every Redis key the worker reads or writes, named in one place.

The strings are part of the deployment (operators read them with
redis-cli, a running worker and an upgraded one share them), so they never
change. A contact's keys share the hash tag ``{contact_id}``, and each index
is one tagged key, so each stays in one slot should Redis Cluster come.
"""

from __future__ import annotations

import hashlib

KEY_PREFIX = "ss"


def contact_keys(contact_id: str) -> tuple[str, str, str]:
    """State hash (``v`` version, ``s`` stored state), alert outbox, and the state's log.

    The log (a string) holds the awards and remembered ids of a contact
    whose history outgrew its state value (see the codec's ``encode_write``).
    """
    tag = f"{KEY_PREFIX}:{{{contact_id}}}"
    return f"{tag}:state", f"{tag}:outbox", f"{tag}:log"


def progress_key(group: str, topic: str) -> str:
    """Per partition of ``topic``, the next offset ``group`` has not yet applied."""
    return f"{KEY_PREFIX}:{{progress:{group}:{topic}}}"


def board_key(namespace: str, score: str) -> str:
    """Contacts by their value of one score: the leaderboard, without scanning keys."""
    return f"{KEY_PREFIX}:{{board:{namespace}:{score}}}"


def due_key(namespace: str, partition: int) -> str:
    """Contacts of one partition by next expiry (ms): what the sweeper visits."""
    return f"{KEY_PREFIX}:{{due:{namespace}:{partition}}}"


def outbox_index_key(namespace: str, partition: int) -> str:
    """Contacts of one partition whose outbox may hold alerts, by when they were added (us)."""
    return f"{KEY_PREFIX}:{{outboxes:{namespace}:{partition}}}"


def delivered_key(url: str, alert_id: str) -> str:
    """Set once the webhook sink delivered an alert to a URL: it is not sent there again."""
    return f"{KEY_PREFIX}:{{hook:{hook_digest(url)}}}:{alert_id}"


def hook_digest(url: str) -> str:
    """A webhook URL's short name in keys, groups and logs: URLs can carry tokens."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def hook_failed_key(url: str) -> str:
    """The latest alerts a URL refused for good, newest first: capped JSON records, no URL."""
    return f"{KEY_PREFIX}:{{hook:{hook_digest(url)}}}:failed"
