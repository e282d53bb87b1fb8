"""Alert identities and the alert payload.

An alert id is a hash of what makes a crossing unique (contact, score, tier,
direction and the event that caused it), so a replay or a retry produces the
same id and consumers can dedupe on it. ``score.lua`` computes the same hash
with ``redis.sha1hex``; both must join the parts the same way.
"""

from __future__ import annotations

import hashlib

#: ASCII unit separator: cannot appear in ids that pass validation.
SEPARATOR = "\x1f"


def alert_id(contact_id: str, score: str, tier: str, direction: str, cause: str) -> str:
    """Deterministic id of one crossing; ``cause`` is the triggering event id."""
    raw = SEPARATOR.join((contact_id, score, tier, direction, cause))
    return hashlib.sha1(raw.encode()).hexdigest()  # an id, not a secret
