"""One batch, one way: decode and check -> route -> read contacts -> engine -> compare-and-set.

:class:`Pipeline` turns a batch of raw messages from the events topic into
contacts' new states and the alerts they produced, and never lets an
exception drop an event: a bad message goes to the dead-letter topic with a
reason, Redis failures are retried with backoff (:mod:`.retry`), and if
scoring itself fails the batch's events are dead-lettered as
``internal_error``. The engine is the reference one
(:mod:`stream_scorer.scoring`), run here on the states the store read, so
the live path cannot drift from the specification; the store only reads
and writes. A contact written by someone else between the read and the
write (a rebalance, two partitions) is read and scored again.

Every contact's events are applied from one partition, its home
(:mod:`.routing`): an event found on another partition (a producer whose
partitioner is not Kafka's default) is forwarded there and applied when the
home partition's reader gets it, so one contact's events are applied in
the order they reach one partition, by one worker.

The pipeline returns the batch's pending alerts; :class:`~.relay.Relay`
publishes them. :meth:`Pipeline.advance` is the same path for the expiry
sweep (:mod:`.sweeper`): contacts advanced to now instead of events applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError

from stream_scorer.errors import InvalidEvent, ScorerError
from stream_scorer.events import Event, Limits, check_event, event_decoder
from stream_scorer.scoring import (
    ContactState,
    Crossing,
    ScoringModel,
    advance_in_place,
    alert_payload,
    apply_in_place,
    event_key,
)
from stream_scorer.scoring.codec import StateFormatError
from stream_scorer.settings import Settings
from stream_scorer.times import epoch_ms
from stream_scorer.worker.health import Health
from stream_scorer.worker.metrics import Metrics
from stream_scorer.worker.retry import retry, unwrap
from stream_scorer.worker.routing import home_partition
from stream_scorer.worker.store import Change, PendingAlert, RedisStore

log = logging.getLogger(__name__)

#: ``(key, value, topic, partition, offset, headers)`` of one record of the events topic.
Message = tuple[bytes | None, bytes | None, str, int, int, Sequence[tuple[str, bytes]]]
#: Publishes one dead letter ``(key, value, headers)``; awaiting the result awaits Kafka's ack.
SendDeadLetter = Callable[[bytes | None, bytes | None, dict[str, bytes]], Awaitable[Any]]
#: Sends one record ``(key, value, headers)`` to the events topic, partitioned by its
#: key as Kafka's default partitioner does; awaiting the result awaits Kafka's ack.
SendForward = Callable[[bytes, bytes | None, Sequence[tuple[str, bytes]]], Awaitable[Any]]

#: Header naming where a forwarded event was found: ``<partition>:<offset>``.
FORWARDED_FROM = "scorer_forwarded_from"

#: The headers every dead letter gets, whatever the original carried.
_DEAD_LETTER_HEADERS = ("reason", "detail", "source_topic", "source_partition", "source_offset")

#: At most this much of a dead letter's value is kept when Kafka refuses it whole.
_KEPT_VALUE_BYTES = 262_144
#: A dead letter's key kept when nothing else makes it small enough for Kafka.
_KEPT_KEY_BYTES = 1024

#: Rounds of read, score and compare-and-set before a batch gives up on busy contacts.
MAX_CONFLICT_RETRIES = 20

#: Why an event was refused as ``too_old``: older than the dedupe window, or
#: no newer than the ids a contact forgot past its count.
_TOO_OLD = "dated more than the dedupe window before the contact's newest event"
_TOO_MANY = "no newer than the event ids the contact forgot past SCORER_DEDUPE_MAX_IDS"

#: What changing one contact did: changed at all, crossings, rules that awarded.
_Step = tuple[bool, list[Crossing], list[str]]


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying a batch or a sweep leaves to do."""

    #: Alerts of the written contacts' outboxes, for the relay.
    pending: list[PendingAlert] = field(default_factory=list)
    #: Contacts whose scoring raised, with the exception's type: nothing of
    #: theirs was written, and only they are affected.
    failed: dict[str, str] = field(default_factory=dict)
    #: Contacts written (a batch that fails later keeps their events applied).
    written: set[str] = field(default_factory=set)
    #: Events refused while applying, by contact: ``(index in the contact's
    #: events, reason, detail)``. Not applied, to be dead-lettered.
    refused: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)


@dataclass(slots=True)
class Decoded:
    """Messages decoded: each valid event with its message, the others with the reason."""

    good: list[tuple[Event, Message]] = field(default_factory=list)
    bad: list[tuple[Message, InvalidEvent]] = field(default_factory=list)

    def extend(self, other: Decoded) -> None:
        self.good.extend(other.good)
        self.bad.extend(other.bad)

    def __len__(self) -> int:
        return len(self.good) + len(self.bad)


def event_limits(settings: Settings) -> Limits:
    """The ``SCORER_MAX_EVENT_*`` limits: the pipeline's, and ``POST /events``'s too."""
    return Limits(
        max_bytes=settings.max_event_bytes,
        max_depth=settings.max_event_depth,
        max_values=settings.max_event_values,
        max_string=settings.max_event_string,
    )


class Pipeline:
    """Scores batches of the events topic into Redis; returns the alerts to relay."""

    def __init__(
        self,
        settings: Settings,
        model: ScoringModel,
        store: RedisStore,
        send_dead_letter: SendDeadLetter,
        metrics: Metrics | None = None,
        health: Health | None = None,
        send_forward: SendForward | None = None,
    ) -> None:
        self.settings = settings
        self._send_forward = send_forward
        # One forward at a time, in the order they were started: a later batch's
        # copies never overtake an earlier batch's (a full producer buffer or a
        # re-send makes a sender wait). Waiters get an asyncio.Lock in order.
        self._forwarding = asyncio.Lock()
        self.health = health
        self.model = model
        self.store = store
        self._send_dead_letter = send_dead_letter
        self.metrics = metrics or Metrics()
        self._known = None if settings.accept_unknown_types else model.event_types
        self.limits = event_limits(settings)
        self._decode_event = event_decoder(self._known, self.limits)

    def decode(self, messages: Sequence[Message]) -> Decoded:
        """Decode and check each message: an event, or the reason it is refused."""
        self.metrics.consumed.inc(len(messages))
        self.metrics.activity.events(len(messages))
        decoded = Decoded()
        not_after = datetime.now(UTC) + timedelta(seconds=self.settings.max_clock_skew_seconds)
        decode = self._decode_event
        for msg in messages:
            try:
                event = decode(msg[1], msg[5])
                check_event(event, self._known, not_after)
            except InvalidEvent as exc:
                decoded.bad.append((msg, exc))
            else:
                decoded.good.append((event, msg))
        return decoded

    def route(self, decoded: Decoded, partitions: int) -> list[tuple[Event, Message]]:
        """Take out of ``decoded`` the events away from their home partition, for :meth:`forward`.

        Refused messages stay: they are dead-lettered where they were found.
        An event forwarded once is applied where it landed: after partitions
        are added, the producer's and this consumer's partition counts can
        differ for a while, and forwarding it again could bounce it between
        the homes each of them sees.
        """
        home: list[tuple[Event, Message]] = []
        away: list[tuple[Event, Message]] = []
        for event, msg in decoded.good:
            if home_partition(event.contact_id, partitions) == msg[3] or any(
                k == FORWARDED_FROM for k, _ in msg[5]
            ):
                home.append((event, msg))
            else:
                away.append((event, msg))
        decoded.good = home
        return away

    async def forward(self, away: Sequence[tuple[Event, Message]]) -> None:
        """Send events to their home partitions; return once Kafka acknowledged them all.

        Each is sent keyed by its contact id, so the producer's partitioner
        (Kafka's default) picks the home partition. The original's offset may
        be recorded only after this returns: a crash before that forwards it
        again, and the copy is a duplicate the contact's dedupe skips.
        """
        if not away:
            return
        async with self._forwarding:
            await self._forward(away)

    async def _forward(self, away: Sequence[tuple[Event, Message]]) -> None:
        send = self._send_forward
        if send is None:
            raise ScorerError("events away from their home partition, and no way to forward them")
        backoff = self.settings.redis_retry_max_backoff
        records = []
        for event, msg in away:
            _key, value, _topic, partition, offset, headers = msg
            mark = (FORWARDED_FROM, f"{partition}:{offset}".encode())
            records.append((event.contact_id.encode(), value, [*headers, mark]))

        # Queued one after the other, so a contact's events keep their order, then
        # the acks awaited together; ``failed`` is the first record not acknowledged.
        queued: list[Any] = []
        for key, value, headers in records:
            try:
                queued.append(await send(key, value, headers))
            except Exception:  # not queued: it and the rest go out in order below
                break
        outcomes = await asyncio.gather(*queued, return_exceptions=True)
        failed = next(
            (i for i, o in enumerate(outcomes) if isinstance(o, BaseException)), len(queued)
        )
        # From the first failure on, every record is sent again, in order, one at a
        # time: a copy already in Kafka is a duplicate that dedupe skips.
        refused = 0
        for (key, value, headers), (_event, msg) in zip(
            records[failed:], away[failed:], strict=True
        ):

            async def attempt(
                key: bytes = key,
                value: bytes | None = value,
                headers: list[tuple[str, bytes]] = headers,
            ) -> None:
                await (await send(key, value, headers))

            try:
                await retry("kafka.forward", attempt, backoff, health=self.health)
            except Exception as exc:
                if isinstance(unwrap(exc), (MessageSizeTooLargeError, RecordTooLargeError)):
                    # Near the size limit, the forwarding header tipped it over.
                    await self._dead_letter(msg, "oversized", "Kafka refused it forwarded home")
                    refused += 1
                    continue
                log.critical("could not forward an event: error=%s", type(exc).__name__)
                raise
        self.metrics.forwarded.inc(len(away) - refused)

    async def run(self, messages: Sequence[Message]) -> list[PendingAlert]:
        """Dead-letter the bad messages, apply the good ones; return the alerts to relay."""
        return await self.score(self.decode(messages))

    async def score(self, decoded: Decoded, in_event_time: bool = False) -> list[PendingAlert]:
        """Dead-letter the refused messages, apply the events; return the alerts to relay.

        Each contact's events are applied in the order given, or with
        ``in_event_time`` in the order of their times (the same time keeps
        the order given).
        """
        start = time.perf_counter()
        pairs = decoded.good
        if in_event_time:
            pairs = sorted(pairs, key=lambda pair: pair[0].occurred_at)
        by_contact: dict[str, list[Event]] = {}
        sources: dict[str, list[Message]] = {}
        partition_of: dict[str, int] = {}
        for event, msg in pairs:
            by_contact.setdefault(event.contact_id, []).append(event)
            sources.setdefault(event.contact_id, []).append(msg)
            partition_of[event.contact_id] = msg[3]
        for msg, invalid in decoded.bad:
            await self._dead_letter(msg, invalid.reason, invalid.detail)
        if not by_contact:
            return []
        applied = Applied()
        # At most SCORER_BATCH_MAX_EVENTS events to Redis at once (a gathered batch
        # can be many), never a contact's events split; a chunk that fails
        # affects its own contacts only.
        for chunk in _chunks(by_contact, self.settings.batch_max_events):
            events = [event for cid in chunk for event in by_contact[cid]]
            try:
                await retry(
                    "redis.apply",
                    partial(self.apply, events, partition_of, applied),
                    self.settings.redis_retry_max_backoff,
                    health=self.health,
                )
            except Exception as exc:  # a bug or a refused script call: keep the events
                log.exception(
                    "batch failed, dead-lettering the events of contacts not written: error=%s",
                    type(exc).__name__,
                )
                for cid in chunk:
                    if cid not in applied.written:
                        applied.failed.setdefault(cid, type(exc).__name__)
                        applied.refused.pop(cid, None)  # all its events go as internal_error
        if applied.failed:
            log.error(
                "scoring failed for some contacts, dead-lettering their events: contacts=%d "
                "errors=%s",
                len(applied.failed),
                ",".join(sorted(set(applied.failed.values()))),
            )
            for cid, error in applied.failed.items():
                for msg in sources[cid]:
                    await self._dead_letter(msg, "internal_error", error)
        refused = 0
        for cid, items in applied.refused.items():
            for index, reason, detail in items:
                await self._dead_letter(sources[cid][index], reason, detail)
            refused += len(items)
        failed_events = sum(len(sources[cid]) for cid in applied.failed)
        self.metrics.scored.inc(max(0, len(pairs) - failed_events - refused))
        self.metrics.batch_seconds.observe(time.perf_counter() - start)
        return applied.pending

    async def apply(
        self,
        events: Sequence[Event],
        partition_of: Mapping[str, int] | None = None,
        result: Applied | None = None,
    ) -> Applied:
        """Apply valid events (in order per contact); return what the writes left to do.

        ``partition_of`` maps contacts to their events-topic partition, whose
        expiry and outbox indexes hold the contact. ``result`` collects the
        outcome as contacts are written, so that a caller whose call fails
        part way still knows which contacts were written and their alerts.

        An event dated more than the dedupe window (``SCORER_DEDUPE_DAYS``)
        before the contact's newest event, or no newer than the ids forgotten
        past ``SCORER_DEDUPE_MAX_IDS``, and not among the ids the contact
        remembers, is refused as ``too_old``: its id may have been forgotten,
        so applying it could count a replay twice.
        """
        by_contact: dict[str, list[Event]] = {}
        for event in events:
            by_contact.setdefault(event.contact_id, []).append(event)
        model = self.model
        window = self.store.dedupe_ms
        applied = result if result is not None else Applied()
        refused = applied.refused

        def step(state: ContactState, cid: str) -> _Step:
            changed = False
            crossings: list[Crossing] = []
            awarded: list[str] = []
            refused.pop(cid, None)  # scored again after a conflict: from scratch
            for index, event in enumerate(by_contact[cid]):
                clock = state.clock
                if clock is not None:
                    t = epoch_ms(event.occurred_at)
                    forgot = state.forgot_until
                    old = t < clock - window
                    if (old or (forgot is not None and t <= forgot)) and (
                        event_key(event.event_id) not in state.seen
                    ):
                        detail = _TOO_OLD if old else _TOO_MANY
                        refused.setdefault(cid, []).append((index, "too_old", detail))
                        continue
                effects = apply_in_place(state, event, model)
                if not effects.duplicate:
                    changed = True
                crossings.extend(effects.crossings)
                awarded.extend(a.rule for a in effects.awards)
            return changed, crossings, awarded

        with self._timed("apply"):
            return await self._update(list(by_contact), step, partition_of or {}, applied)

    async def advance(self, contacts: Sequence[str], now_ms: int, partition: int) -> Applied:
        """Move contacts of a partition to ``now_ms``: expired awards drop out, tiers may cross.

        Contacts whose keys expired meanwhile are left alone (and leave the index).
        """
        model = self.model

        def step(state: ContactState, cid: str) -> _Step:
            if state.clock is None:  # gone (its keys expired): nothing to advance
                return False, [], []
            effects = advance_in_place(state, now_ms, model, cid)
            return True, list(effects.crossings), []

        with self._timed("sweep"):
            partition_of = dict.fromkeys(contacts, partition)
            return await self._update(list(contacts), step, partition_of, Applied())

    async def _update(
        self,
        contacts: list[str],
        step: Callable[[ContactState, str], _Step],
        partition_of: Mapping[str, int],
        result: Applied,
    ) -> Applied:
        """Read, change with ``step``, compare-and-set; score again contacts changed meanwhile.

        A contact whose ``step`` raises is left as it is in Redis and listed
        in the result; the others are written as usual. A contact already in
        ``result.written`` (an earlier attempt of the same batch) is not
        changed again.
        """
        pending, failed, written = result.pending, result.failed, result.written
        todo = [cid for cid in contacts if cid not in written and cid not in failed]
        for _ in range(MAX_CONFLICT_RETRIES):
            if not todo:
                return result
            changes: list[Change] = []
            effects: list[tuple[list[Crossing], list[str]]] = []
            for cid, (version, state) in zip(todo, await self.store.read(todo), strict=True):
                try:
                    if isinstance(state, StateFormatError):
                        raise state  # its stored state cannot be read: this contact only
                    changed, crossings, awarded = step(state, cid)
                    alerts = [alert_payload(c, self.model) for c in crossings]
                except Exception as exc:  # one contact's failure is that contact's alone
                    failed[cid] = type(exc).__name__
                    result.refused.pop(cid, None)  # all its events go as internal_error
                    continue
                changes.append(Change(cid, version, state, changed, alerts, partition_of.get(cid)))
                effects.append((crossings, awarded))
            conflicts: list[str] = []
            done: list[str] = []
            crossed: list[Crossing] = []
            awards: list[str] = []
            outcomes = await self.store.write(changes)
            for change, outcome, (crossings, awarded) in zip(
                changes, outcomes, effects, strict=True
            ):
                if outcome is None:
                    conflicts.append(change.contact_id)
                    continue
                if isinstance(outcome, StateFormatError):  # its keys damaged: it alone
                    failed[change.contact_id] = type(outcome).__name__
                    result.refused.pop(change.contact_id, None)
                    continue
                crossed.extend(crossings)
                awards.extend(awarded)
                pending.extend(outcome)
                done.append(change.contact_id)
            self.metrics.count(crossed, awards)
            await self.store.index(changes, outcomes)
            # Written and indexed: a retry of the batch leaves them alone. (Written but
            # not indexed, they are scored again: every event a duplicate, the indexes
            # are set.)
            written.update(done)
            todo = conflicts
        raise ScorerError(f"{len(todo)} contacts kept changing under the worker; giving up")

    @contextmanager
    def _timed(self, operation: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.metrics.redis_seconds.labels(operation).observe(time.perf_counter() - start)

    async def _dead_letter(self, msg: Message, reason: str, detail: str) -> None:
        key, value, topic, partition, offset, original = msg
        self.metrics.rejected.labels(reason).inc()
        headers = {
            **dict(original),  # a binary CloudEvent keeps its ce_* attributes
            "reason": reason.encode(),
            "detail": detail[:1000].encode(),
            "source_topic": topic.encode(),
            "source_partition": str(partition).encode(),
            "source_offset": str(offset).encode(),
        }
        log.warning(
            "dead-lettered: reason=%s topic=%s partition=%d offset=%d",
            reason,
            topic,
            partition,
            offset,
        )

        try:
            await self._send_whole_or_truncated(key, value, headers)
        except Exception as exc:
            log.critical("the dead-letter topic refused a record: error=%s", type(exc).__name__)
            raise

    async def _send_whole_or_truncated(
        self, key: bytes | None, value: bytes | None, headers: dict[str, bytes]
    ) -> None:
        """Send a dead letter whole; if Kafka refuses its size, a truncated copy, marked.

        An event near the broker's size limit grows past it with the
        dead-letter headers. The copy keeps the first ``SCORER_MAX_EVENT_BYTES``
        (at most 256 KiB) of the value (``truncated: true``, ``original_bytes``), and drops the
        original headers too (``headers_dropped: true``), and cuts the key to
        1 KiB (``original_key_bytes``), if they are what is too large.
        """
        backoff = self.settings.redis_retry_max_backoff
        ours = {k: headers[k] for k in _DEAD_LETTER_HEADERS}
        cut = None if value is None else value[: min(self.limits.max_bytes, _KEPT_VALUE_BYTES)]
        marks = {"truncated": b"true", "original_bytes": str(len(value or b"")).encode()}
        attempts = [
            (value, headers),
            (cut, {**headers, **marks}),
            (cut, {**ours, **marks, "headers_dropped": b"true"}),
        ]
        for i, (body, sent_headers) in enumerate(attempts):
            sent_key = key
            if i == len(attempts) - 1 and key is not None and len(key) > _KEPT_KEY_BYTES:
                sent_key = key[:_KEPT_KEY_BYTES]
                sent_headers = {**sent_headers, "original_key_bytes": str(len(key)).encode()}

            async def send(
                body: bytes | None = body,
                sent: dict[str, bytes] = sent_headers,
                sent_key: bytes | None = sent_key,
            ) -> None:
                await (await self._send_dead_letter(sent_key, body, sent))

            try:
                await retry("kafka.dlq", send, backoff, health=self.health)
            except Exception as exc:
                too_large = (MessageSizeTooLargeError, RecordTooLargeError)
                if not isinstance(unwrap(exc), too_large) or i == len(attempts) - 1:
                    raise
                log.warning("dead letter too large for Kafka, sending a truncated copy")
            else:
                return


def _chunks(by_contact: Mapping[str, list[Event]], size: int) -> Iterator[list[str]]:
    """Contacts whose events add up to at most ``size`` (or one contact's, if more)."""
    chunk: list[str] = []
    count = 0
    for cid, events in by_contact.items():
        if chunk and count + len(events) > size:
            yield chunk
            chunk, count = [], 0
        chunk.append(cid)
        count += len(events)
    if chunk:
        yield chunk
