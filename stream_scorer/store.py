"""Contact state in Redis: one atomic, idempotent script call per contact.

Keys share the hash tag ``{contact_id}`` so a contact's state never splits
across Redis Cluster slots. A batch is sent as one pipeline of script calls
(one round trip on a single node). Alerts are written by the script into
the contact's outbox in the same atomic step as the score change, and leave
it only after Kafka has acknowledged them (:meth:`RedisStore.mark_relayed`):
a crash can duplicate an alert, never lose one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from stream_scorer.events import Event
from stream_scorer.model import ScoringModel

KEY_PREFIX = "ss"


def contact_keys(contact_id: str) -> tuple[str, str, str]:
    """State hash, seen-event set and alert outbox of one contact."""
    tag = f"{KEY_PREFIX}:{{{contact_id}}}"
    return f"{tag}:state", f"{tag}:seen", f"{tag}:outbox"


@dataclass(frozen=True, slots=True)
class PendingAlert:
    """An alert recorded in a contact's outbox, not yet acknowledged by Kafka."""

    contact_id: str
    payload: bytes


@dataclass(frozen=True)
class ContactView:
    scores: dict[str, int]
    active_tiers: dict[str, list[str]]
    events_applied: int


class RedisStore:
    """Applies batches of events to Redis with the scoring script."""

    def __init__(self, client: aioredis.Redis, model: ScoringModel, ttl_seconds: int) -> None:
        self._redis = client
        self._model = model
        self._ttl = ttl_seconds
        source = resources.files("stream_scorer").joinpath("score.lua").read_text()
        self._script: AsyncScript = client.register_script(source)
        self._scores = {
            name: {
                "min": spec.min,
                "max": spec.max,
                "tiers": [[t.name, t.at, t.rearm] for t in spec.thresholds],
            }
            for name, spec in model.spec.scores.items()
        }

    def _request(self, contact_id: str, events: Sequence[Event]) -> str:
        scores = {a.score for e in events for a in self._model.awards_for(e.type)}
        return json.dumps(
            {
                "contact": contact_id,
                "ttl": self._ttl,
                "model": self._model.name,
                "model_version": self._model.version,
                "scores": {name: self._scores[name] for name in scores} or {},
                "events": [
                    {
                        "id": e.event_id,
                        "t": e.occurred_at.isoformat().replace("+00:00", "Z"),
                        "awards": [
                            [a.rule, a.score, a.points] for a in self._model.awards_for(e.type)
                        ],
                    }
                    for e in events
                ],
            },
            separators=(",", ":"),
        )

    async def apply_batch(self, events: Sequence[Event]) -> list[PendingAlert]:
        """Apply events (in order per contact) and return every contact's pending alerts."""
        by_contact: dict[str, list[Event]] = {}
        for event in events:
            by_contact.setdefault(event.contact_id, []).append(event)
        if not by_contact:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for contact_id, contact_events in by_contact.items():
                await self._script(
                    keys=contact_keys(contact_id),
                    args=[self._request(contact_id, contact_events)],
                    client=pipe,
                )
            results: list[Any] = await pipe.execute()
        pending: list[PendingAlert] = []
        for contact_id, outbox in zip(by_contact, results, strict=True):
            pending.extend(PendingAlert(contact_id, bytes(item)) for item in outbox)
        return pending

    async def mark_relayed(self, alerts: Sequence[PendingAlert]) -> None:
        """Drop alerts Kafka has acknowledged from their contacts' outboxes."""
        if not alerts:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for alert in alerts:
                pipe.lrem(contact_keys(alert.contact_id)[2], 1, alert.payload.decode())
            await pipe.execute()

    async def read_contact(self, contact_id: str) -> ContactView | None:
        state_key, seen_key, _ = contact_keys(contact_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(state_key)
            pipe.scard(seen_key)
            raw, applied = await pipe.execute()
        if not raw and not applied:
            return None
        scores: dict[str, int] = {}
        tiers: dict[str, list[str]] = {}
        for key, value in raw.items():
            kind, _, rest = key.decode().partition(":")
            if kind == "s":
                scores[rest] = int(float(value))
            elif kind == "t":
                score, _, tier = rest.partition(":")
                tiers.setdefault(score, []).append(tier)
        return ContactView(scores=scores, active_tiers=tiers, events_applied=int(applied))
