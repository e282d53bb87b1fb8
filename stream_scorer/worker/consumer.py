"""The hot path: the events topic read in batches by a plain aiokafka consumer.

It runs as a service inside the Faust app (design (a) of docs/streaming.md):
Faust's per-event stream machinery cost more than scoring itself, and a
Faust agent acks an event whose handler raised. Here a batch from
``getmany`` is scored by the :class:`~.pipeline.Pipeline`, its alerts
relayed by the :class:`~.relay.Relay`, its position recorded in Redis and
only then committed to Kafka; an exception stops the loop (and the worker)
instead of skipping events.

Redis is the truth about progress. After each batch the next offset to
apply per partition is recorded next to the states. When partitions are
assigned, the consumer starts from that position, whatever Kafka's
committed offsets say: if they lag (a crash between Redis and the commit,
a group reset to earliest), nothing is replayed; if they lead (offsets
committed by something else), the events in between are still applied.
Without a recorded position (a new or wiped Redis) Kafka's committed
offsets, then the earliest, are used; replays are harmless anyway, since
the engine skips event ids a contact has seen. A recorded position beyond
the partition's end is reset (logged at error level, counted in
``scorer_position_resets_total``).

New partitions stay paused until the loop has read their positions and
relayed what their outboxes hold; the rebalance callbacks never wait on
Redis for long, since the whole group waits for them. Transient failures
are retried for as long as they last, reported to :class:`~.health.Health`;
any other error stops the worker with a critical log line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from functools import partial
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import (
    CommitFailedError,
    ConsumerStoppedError,
    IllegalStateError,
    KafkaError,
)
from mode import Service
from redis.exceptions import ResponseError

from stream_scorer.connections.kafka import kafka_options
from stream_scorer.settings import Settings
from stream_scorer.worker.health import Health
from stream_scorer.worker.metrics import Metrics
from stream_scorer.worker.pipeline import Decoded, Message, Pipeline
from stream_scorer.worker.relay import Hold, Relay
from stream_scorer.worker.retry import retry
from stream_scorer.worker.store import PendingAlert, RedisStore

log = logging.getLogger(__name__)

#: With a reordering grace, at most this many batches are gathered and applied together.
REORDER_MAX_BATCHES = 20


class EventsConsumer(Service):
    """Consumes the events topic in the worker's consumer group (``SCORER_APP_ID``)."""

    def __init__(
        self,
        settings: Settings,
        store: RedisStore,
        pipeline: Pipeline,
        relay: Relay,
        metrics: Metrics,
        health: Health | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics
        self.health = health or Health(settings.stall_seconds, metrics)
        self.settings = settings
        self.store = store
        self.pipeline = pipeline
        self.relay = relay
        self.topic = settings.events_topic
        self.group = settings.app_id
        self.consumer: AIOKafkaConsumer | None = None
        # Held while a batch is scored: a revocation waits for it to finish.
        self._batch_lock = asyncio.Lock()
        # The previous batch's relay, record and commit, which overlap this batch's scoring.
        self._finishing: asyncio.Task[None] | None = None
        # Start positions taken from Redis, to commit once the rebalance is over.
        self._starts: dict[TopicPartition, int] = {}
        # Per partition, the recorded position: records below it were fetched before
        # the seek to it took effect, and are already applied.
        self._floor: dict[TopicPartition, int] = {}
        # Per owned partition, the highest offset this consumer committed: a batch
        # scored from before a seek to Redis's position finishes after the start
        # position was committed, and must not move the group's offset back.
        self._committed: dict[TopicPartition, int] = {}
        # One commit at a time, so that the check against ``_committed`` holds.
        self._commit_lock = asyncio.Lock()
        # Partitions assigned and paused until the loop has found where to start
        # them and relayed what their outboxes hold (not in the rebalance callback:
        # Redis may be away, and the group would wait for us).
        self._assigned: set[TopicPartition] = set()
        # Per owned partition, the next offset to score (for the lag gauge).
        self._positions: dict[TopicPartition, int] = {}
        # Partitions whose lag this worker reports (removed when revoked).
        self._lag_reported: set[int] = set()
        # Health's token while asking Kafka for the partitions' ends fails.
        self._lag_failing: int | None = None
        # Events forwarded to their home partition since the last log line about it.
        self._forwarded_unlogged = 0
        self._forward_log_at = 0.0
        # Set while a rebalance is under way: gathering for the reordering grace
        # stops, since Kafka returns no records until the group has settled, and the
        # revocation waits for the batch being gathered.
        self._rebalancing = asyncio.Event()
        # An error of a batch's relay or forwards met while partitions were revoked
        # (the rebalance listener cannot stop the worker): the loop raises it.
        self._failure: BaseException | None = None

    def owned(self) -> list[int]:
        """Partitions of the events topic this worker owns now."""
        if self.consumer is None:
            return []
        return sorted(tp.partition for tp in self.consumer.assignment() if tp.topic == self.topic)

    async def on_start(self) -> None:
        self.consumer = AIOKafkaConsumer(
            **kafka_options(self.settings),
            group_id=self.group,
            client_id=f"{self.group}-events",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.settings.batch_max_events,
            fetch_max_wait_ms=int(min(self.settings.batch_max_wait, 0.5) * 1000),
            **self.settings.group_membership(self.group),
        )
        await self.consumer.start()
        self.consumer.subscribe([self.topic], listener=_Rebalance(self))

    async def on_stop(self) -> None:
        if self.consumer is not None:
            await self.drain()  # a batch in flight finishes first
            await self.consumer.stop()

    async def finished(self) -> None:
        """Wait for the last scored batch to be relayed, recorded and committed."""
        finishing, self._finishing = self._finishing, None
        if finishing is not None:
            await finishing

    @Service.task
    async def _consume(self) -> None:
        assert self.consumer is not None
        try:
            await self._consume_loop()
        except Exception as exc:
            # Retriable failures are retried inside; what reaches here would fail again.
            log.critical(
                "stopping the worker: an error that retrying cannot fix: error=%s: %s",
                type(exc).__name__,
                exc,
            )
            raise

    async def _consume_loop(self) -> None:
        assert self.consumer is not None
        wait_ms = int(self.settings.batch_max_wait * 1000)
        while not self.should_stop:
            if self._failure is not None:
                raise self._failure
            if self._finishing is not None and self._finishing.done():
                await (
                    self.finished()
                )  # its error, if any, stops the worker now, not at the next batch
            if self._assigned:
                await self._take_assigned()
            try:
                batch = await self.consumer.getmany(
                    timeout_ms=wait_ms, max_records=self.settings.batch_max_events
                )
            except ConsumerStoppedError:
                return  # the worker is stopping
            self.health.beat()
            if self._starts:
                await self._commit_starts()
            batch = self._above_floor(batch)
            if not batch:
                continue
            async with self._batch_lock:
                decoded, forwards, positions = self._take(batch)
                in_event_time = self.settings.reorder_grace_ms > 0
                try:
                    if in_event_time:
                        fetched = sum(len(records) for records in batch.values())
                        await self._gather_more(decoded, forwards, positions, fetched)
                    pending = await self.pipeline.score(decoded, in_event_time=in_event_time)
                except BaseException:
                    for forwarding in forwards:  # the worker stops: nothing waits for them
                        forwarding.cancel()
                    raise
                hold = self.relay.hold(pending)  # not the recovery's, even while it waits
                self._positions.update(positions)
                self._measure_lag(positions)
                self._supersede(positions)
                # One batch finishes at a time, in order; an error surfaces here.
                await self.finished()
                finishing = asyncio.ensure_future(self._finish(pending, positions, hold, forwards))
                finishing.add_done_callback(hold.release)  # also if cancelled unstarted
                self._finishing = finishing

    def _take(
        self, batch: dict[TopicPartition, list[Any]]
    ) -> tuple[Decoded, list[asyncio.Task[None]], dict[TopicPartition, int]]:
        """Decode a fetched batch; start forwarding the events away from their home.

        Returns the events to apply here, the forwards under way, and the
        next offset of each partition in the batch.
        """
        assert self.consumer is not None
        for tp, records in batch.items():  # for the lag gauge, should this batch stall
            self._positions.setdefault(tp, records[0].offset)
        messages: list[Message] = [
            (r.key, r.value, r.topic, r.partition, r.offset, r.headers)
            for records in batch.values()
            for r in records
        ]
        decoded = self.pipeline.decode(messages)
        forwards: list[asyncio.Task[None]] = []
        partitions = self.consumer.partitions_for_topic(self.topic)
        if partitions:
            away = self.pipeline.route(decoded, len(partitions))
            if away:
                self._note_forwarded(len(away))
                forwards.append(asyncio.ensure_future(self.pipeline.forward(away)))
        positions = {tp: records[-1].offset + 1 for tp, records in batch.items()}
        return decoded, forwards, positions

    async def _gather_more(
        self,
        decoded: Decoded,
        forwards: list[asyncio.Task[None]],
        positions: dict[TopicPartition, int],
        fetched: int,
    ) -> None:
        """Add what arrives within ``SCORER_REORDER_GRACE_MS`` (forwarded events too).

        At most :data:`REORDER_MAX_BATCHES` batches' worth of records are
        gathered, so a backlog is applied in bounded steps; a rebalance ends
        the gathering at once.
        """
        assert self.consumer is not None
        consumer = self.consumer
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.reorder_grace_ms / 1000
        most = self.settings.batch_max_events * REORDER_MAX_BATCHES
        while not self.should_stop and not self._rebalancing.is_set() and fetched < most:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            # Kafka's client waits for a rebalance to end inside getmany, whatever
            # its timeout, and the rebalance waits for this batch: so not past one.
            fetch = asyncio.ensure_future(
                consumer.getmany(
                    timeout_ms=max(1, int(remaining * 1000)),
                    max_records=min(self.settings.batch_max_events, most - fetched),
                )
            )
            rebalance = asyncio.ensure_future(self._rebalancing.wait())
            try:
                await asyncio.wait(
                    {fetch, rebalance}, timeout=remaining + 1, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                rebalance.cancel()
                # Records a finished fetch took from Kafka's buffer are used below; an
                # unfinished one has taken none (it waits before it takes any).
                if not fetch.done():
                    fetch.cancel()
            if not fetch.done() or fetch.cancelled():
                await asyncio.wait({fetch})  # its cancellation settles; never raises
                return
            try:
                more = fetch.result()
            except ConsumerStoppedError:
                return
            self.health.beat()
            fetched += sum(len(records) for records in more.values())
            more = self._above_floor(more)
            if more:
                extra, started, reached = self._take(more)
                decoded.extend(extra)
                forwards.extend(started)
                positions.update(reached)  # offsets only grow within a partition

    def _note_forwarded(self, count: int) -> None:
        """Say, at most once a minute, that events arrive away from their home partition."""
        loop = asyncio.get_running_loop()
        self._forwarded_unlogged += count
        if loop.time() >= self._forward_log_at:
            log.warning(
                "events arrived on another partition than their contact's and were forwarded "
                "to it: count=%d (a producer that does not use Kafka's default murmur2 "
                "partitioner; see docs/streaming.md)",
                self._forwarded_unlogged,
            )
            self._forwarded_unlogged = 0
            self._forward_log_at = loop.time() + 60

    def _supersede(self, positions: dict[TopicPartition, int]) -> None:
        """Drop start positions a scored batch has gone past: its own commit covers them.

        A batch from records fetched before the seek to a start position ends
        below it: that start position is still committed.
        """
        for tp, position in positions.items():
            start = self._starts.get(tp)
            if start is not None and position >= start:
                del self._starts[tp]

    def _above_floor(
        self, batch: dict[TopicPartition, list[Any]]
    ) -> dict[TopicPartition, list[Any]]:
        if not self._floor:
            return batch
        kept = {}
        for tp, records in batch.items():
            floor = self._floor.get(tp)
            if floor is not None:
                records = [r for r in records if r.offset >= floor]
                if records:
                    del self._floor[tp]  # the seek took effect
            if records:
                kept[tp] = records
        return kept

    def _measure_lag(self, positions: dict[TopicPartition, int]) -> None:
        """Lag of the partitions in a batch: their end minus where the batch stopped.

        No awaits: asking the consumer for positions while a rebalance is under
        way can wait on the very coordinator that is running our listener.
        """
        assert self.consumer is not None
        owned = self.consumer.assignment()
        for tp, position in positions.items():
            if tp not in owned:
                continue  # revoked while the batch was scored: not ours to report
            end = self.consumer.highwater(tp)
            if end is not None:
                self.metrics.lag.labels(str(tp.partition)).set(max(0, end - position))
                self._lag_reported.add(tp.partition)

    async def _finish(
        self,
        pending: Sequence[PendingAlert],
        positions: dict[TopicPartition, int],
        hold: Hold,
        forwards: Sequence[asyncio.Task[None]] = (),
    ) -> None:
        """Relay a scored batch's alerts, then record and commit its positions.

        Alerts and forwarded events go first: a position is recorded only once
        Kafka acknowledged the alerts of every event before it and the events
        forwarded from before it.
        """
        for forwarding in forwards:
            await forwarding
        await self.relay.publish(pending, hold=hold)
        recorded = {tp.partition: o for tp, o in positions.items()}
        await retry(
            "redis.progress",
            lambda: self.store.record_applied(self.group, self.topic, recorded),
            self.settings.redis_retry_max_backoff,
            health=self.health,
        )
        assert self.consumer is not None
        try:
            await self._commit(positions)
        except (CommitFailedError, IllegalStateError, KafkaError) as exc:
            # A rebalance took the partitions, or the coordinator is away: Redis
            # holds the position, so whoever reads next starts after this batch.
            log.info("commit skipped: error=%s", type(exc).__name__)

    async def _commit(self, positions: dict[TopicPartition, int]) -> None:
        """Commit the positions that move forward of what this consumer committed."""
        assert self.consumer is not None
        async with self._commit_lock:
            ahead = {tp: o for tp, o in positions.items() if o > self._committed.get(tp, -1)}
            if ahead:
                await self.consumer.commit(ahead)
                self._committed.update(ahead)  # each above what was there

    async def drain(self) -> None:
        """Wait for the batch in flight to be scored, relayed, recorded and committed."""
        async with self._batch_lock:
            await self.finished()

    def rebalancing(self, under_way: bool) -> None:
        """A rebalance began (partitions are being revoked) or ended (assigned)."""
        if under_way:
            self._rebalancing.set()
        else:
            self._rebalancing.clear()

    def fail(self, exc: BaseException) -> None:
        """Stop the worker with ``exc`` at the loop's next round (from a rebalance callback)."""
        log.critical(
            "a batch's relay or forwards failed while partitions were revoked: error=%s",
            type(exc).__name__,
        )
        self._failure = exc

    def forget(self, revoked: set[TopicPartition]) -> None:
        """Partitions gone to another member: what we committed for them no longer counts,
        and the states held in memory are read from Redis again."""
        if revoked:
            self.store.forget_held()
        for tp in revoked:
            self._committed.pop(tp, None)
            self._positions.pop(tp, None)
            self._floor.pop(tp, None)
        self._assigned -= revoked

    def assigned(self, assigned: set[TopicPartition]) -> None:
        """New partitions: paused until :meth:`_take_assigned` starts them."""
        assert self.consumer is not None
        mine = {tp for tp in assigned if tp.topic == self.topic}
        if mine:
            self.consumer.pause(*mine)
            self._assigned |= mine

    async def _take_assigned(self) -> None:
        """Start assigned partitions where Redis says, after relaying their outboxes.

        Alerts left in outboxes (a crash between a write and its relay, here
        or on the partition's previous owner) go out before anything new is
        scored, so they keep their order.
        """
        assert self.consumer is not None
        # The batch before records its positions first, so a reset is not undone.
        await self.finished()
        owned = self.consumer.assignment()
        taking = {tp for tp in self._assigned if tp in owned}
        self._assigned = set()
        if not taking:
            return
        await self.start_positions(taking)
        for tp in sorted(taking, key=lambda t: t.partition):
            self.health.beat()  # starting partitions is the loop's work
            if tp not in self.consumer.assignment():
                continue  # revoked meanwhile: its next owner recovers it
            try:
                recovered = await self.relay.recover(tp.partition)
            except ResponseError as exc:  # Redis refused (a key damaged): the sweep tries again
                log.error(  # the error's code only (WRONGTYPE...): no key names
                    "outbox recovery refused: partition=%d error=%s",
                    tp.partition,
                    str(exc).split(" ", 1)[0],
                )
                recovered = 0
            if recovered:
                log.info(
                    "relayed alerts left in outboxes: partition=%d count=%d",
                    tp.partition,
                    recovered,
                )
        # A partition assigned again meanwhile waits for its own round.
        ready = [tp for tp in taking if tp in self.consumer.assignment() - self._assigned]
        if ready:
            self.consumer.resume(*ready)
            log.info(
                "partitions started: started=%s owned=%s",
                ",".join(str(tp.partition) for tp in sorted(ready, key=lambda t: t.partition)),
                ",".join(str(p) for p in self.owned()),
            )

    async def start_positions(self, assigned: set[TopicPartition]) -> None:
        """Seek newly assigned partitions to the positions Redis recorded.

        A recorded position beyond the partition's end (the topic was
        recreated, or Redis was used with another cluster) cannot be trusted:
        it is logged, counted, and replaced by Kafka's committed offset if
        that is within the partition, or the earliest offset. Events from
        there are applied again, which dedupe makes harmless.
        """
        assert self.consumer is not None
        consumer = self.consumer
        mine = {tp for tp in assigned if tp.topic == self.topic}
        if not mine:
            return
        backoff = self.settings.redis_retry_max_backoff
        applied = await retry(
            "redis.progress",
            lambda: self.store.applied(self.group, self.topic),
            backoff,
            health=self.health,
        )
        ordered = sorted(mine, key=lambda t: t.partition)
        ends: dict[TopicPartition, int] = await retry(
            "kafka.offsets", lambda: consumer.end_offsets(ordered), backoff, health=self.health
        )
        seeks: dict[TopicPartition, int] = {}
        resets: dict[int, int] = {}
        for tp in ordered:
            position = applied.get(tp.partition)
            if position is None:
                continue  # nothing recorded: Kafka's committed offset, or the earliest
            committed = await retry(
                "kafka.offsets", partial(consumer.committed, tp), backoff, health=self.health
            )
            end = ends[tp]
            if position > end:
                position = await self._reset_position(tp, position, end, committed)
                resets[tp.partition] = position
            elif committed is not None and committed > position:
                log.warning(
                    "committed offset is ahead of the applied position, applying from the "
                    "latter: partition=%d committed=%d applied=%d",
                    tp.partition,
                    committed,
                    position,
                )
            if tp not in consumer.assignment():
                continue  # revoked while we were asking: seeking it would raise
            consumer.seek(tp, position)
            self._floor[tp] = position
            self._positions[tp] = position
            if committed != position:
                seeks[tp] = position
        if resets:
            await retry(
                "redis.progress",
                lambda: self.store.reset_applied(self.group, self.topic, resets),
                backoff,
                health=self.health,
            )
        self._starts.update(seeks)  # committed by the loop, so lag monitors see the truth

    async def _reset_position(
        self, tp: TopicPartition, recorded: int, end: int, committed: int | None
    ) -> int:
        """Where to start a partition whose recorded position is beyond its end."""
        assert self.consumer is not None
        if committed is not None and committed <= end:
            start, source = committed, "committed"
        else:
            consumer = self.consumer
            beginnings: dict[TopicPartition, int] = await retry(
                "kafka.offsets",
                lambda: consumer.beginning_offsets([tp]),
                self.settings.redis_retry_max_backoff,
                health=self.health,
            )
            start, source = beginnings[tp], "earliest"
        log.error(
            "recorded position is beyond the end of the partition, starting from the %s "
            "offset instead: partition=%d recorded=%d end=%d start=%d",
            source,
            tp.partition,
            recorded,
            end,
            start,
        )
        self.metrics.position_resets.inc()
        return start

    async def measure_lag(self) -> None:
        """Lag of every owned partition: its end minus the next offset to score.

        Asked of Kafka on a timer, so the gauge moves even when no batch
        completes (Redis away, a stuck batch); a failure to ask counts
        against health like any retried operation.
        """
        if self.consumer is None:
            return
        consumer = self.consumer
        owned = [tp for tp in consumer.assignment() if tp.topic == self.topic]
        try:
            ends: dict[TopicPartition, int] = await consumer.end_offsets(owned)
            # Not started yet (its start is being looked up): from the group's offset.
            unknown = [tp for tp in owned if tp not in self._positions]
            starts = {tp: await consumer.committed(tp) for tp in unknown}
            missing = [tp for tp, offset in starts.items() if offset is None]
            if missing:
                starts.update(await consumer.beginning_offsets(missing))
        except KafkaError as exc:
            log.warning("could not read the partitions' ends: error=%s", type(exc).__name__)
            self._lag_failing = self.health.failing("kafka.lag", self._lag_failing)
            return
        if self._lag_failing is not None:
            self.health.done(self._lag_failing)
            self._lag_failing = None
        reported = set()
        for tp, end in ends.items():
            position = self._positions.get(tp, starts.get(tp))
            if position is not None:
                self.metrics.lag.labels(str(tp.partition)).set(max(0, end - position))
                reported.add(tp.partition)
        for partition in self._lag_reported - reported:
            self.metrics.lag.remove(str(partition))
        self._lag_reported = reported

    async def _commit_starts(self) -> None:
        assert self.consumer is not None
        owned = self.consumer.assignment()
        starts = {tp: o for tp, o in self._starts.items() if tp in owned}
        try:
            await self._commit(starts)
        except KafkaError as exc:  # the next loop tries again
            log.info("commit of start positions deferred: error=%s", type(exc).__name__)
            return
        self._starts = {}


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Finishes the batch in flight before partitions go; defers the start of new ones.

    Neither waits long on Redis: the group waits for every member's callbacks,
    so one member stuck here would stall all of them.
    """

    def __init__(self, owner: EventsConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        owner = self.owner
        owner.health.beat()  # a rebalance is progress, not a stall
        owner.rebalancing(True)  # a batch being gathered is scored now
        try:
            # Well within the stall time, so a slow drain does not make the worker unready.
            await asyncio.wait_for(owner.drain(), owner.settings.stall_seconds / 2)
        except TimeoutError:
            # Nothing is lost: alerts written stay in their outboxes (the next owner
            # relays them), and positions not recorded are scored again (dedupe).
            log.warning(
                "the batch in flight did not finish before the partitions were revoked: "
                "partitions=%d",
                len(revoked),
            )
        except Exception as exc:  # a relay or forward failed for good
            owner.fail(exc)  # Kafka's client would only log it
        finally:
            owner.forget(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.owner.rebalancing(False)
        self.owner.health.beat()
        self.owner.assigned(assigned)
