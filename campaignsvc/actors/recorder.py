"""Recorder: writes send outcomes in batches (write-behind), one statement per batch.

Limiters hand it an :class:`Outcome` and move on; it commits the ledger row, the participant's next
state and the outbox event together, then tells the participant's campaign that its slot is free. A
failed commit is retried — an outcome is never dropped. If the process dies first, the ledger row is
still ``sending`` and the boot recovery treats it as in doubt (retried with the same key), so nothing is
lost and nothing is sent twice.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import attrs
import trio

from campaignsvc import metrics
from campaignsvc.actors.bus import Bus
from campaignsvc.actors.messages import LeadsOwed
from campaignsvc.domain.campaign import ParticipantUpdate
from campaignsvc.errors import DatabaseUnavailable, QueryTimeout, SerializationConflict, StorageError
from campaignsvc.logs import get_logger
from campaignsvc.storage import dispatch
from campaignsvc.storage.store import Store

log = get_logger(__name__)

MAX_BATCH = 500
# Failures that say "try again later", not "this row is wrong": the batch waits and is retried whole.
_TRANSIENT = (DatabaseUnavailable, QueryTimeout, SerializationConflict)
# Column lengths of what Messaging's answers fill in (migrations 0001/0002).
CHANNEL_ID_MAX = 100  # campaign_participants.channel_id varchar(100)
ERROR_CLASS_MAX = 32  # campaign_sends.error_class varchar(32)
UNRECORDABLE = "the outcome could not be recorded as reported"


@attrs.frozen
class Outcome:
    campaign_id: uuid.UUID
    organization_id: uuid.UUID
    participant_id: uuid.UUID
    bd_account_id: uuid.UUID
    step: int
    update: ParticipantUpdate
    send_id: uuid.UUID | None = None  # the ledger row to finish (None: nothing was claimed)
    ledger_status: str | None = None  # sent | failed | deferred | in_doubt
    message_id: uuid.UUID | None = None
    error_class: str | None = None
    error: str | None = None
    last_sent_at: dt.datetime | None = None
    channel_id: str | None = None
    event: tuple[str, dict[str, Any]] | None = None
    lead_due: bool = False
    # When the Messaging call started (None: no call). The account's recorded last start becomes this
    # exact instant, so a restart waits the gap from the call Telegram saw (docs/semantics.md).
    call_started_at: dt.datetime | None = None
    epoch: int | None = None  # the account's lease the send was claimed under (actors/leases.py)


def _text(value: str | None, limit: int | None = None) -> str | None:
    # PostgreSQL rejects NUL in text and jsonb; anything from outside may carry one.
    if value is None:
        return None
    value = value.replace("\x00", "")
    return value[:limit] if limit is not None else value


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict):
        return {_text(k) if isinstance(k, str) else k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def sanitised(o: Outcome) -> Outcome:
    """The outcome with text from outside made storable: NUL removed, error class clipped to its column.
    A channel id longer than its column is dropped (the participant keeps the one it had): a clipped id
    would name another chat."""
    channel = _text(o.channel_id)
    return attrs.evolve(
        o,
        error=_text(o.error),
        error_class=_text(o.error_class, ERROR_CLASS_MAX),
        channel_id=channel if channel is None or len(channel) <= CHANNEL_ID_MAX else None,
        update=attrs.evolve(o.update, last_error=_text(o.update.last_error)),
        event=(o.event[0], _clean(o.event[1])) if o.event is not None else None,
    )


def minimal(o: Outcome) -> Outcome:
    """What is left to record of an outcome PostgreSQL rejected: its ledger status and the participant's
    next state, with every text from outside replaced."""
    event = None
    if o.event is not None:
        keep = ("campaignId", "participantId", "bdAccountId", "step", "messageId", "contactId")
        event = (o.event[0], {k: v for k, v in o.event[1].items() if k in keep})
    return attrs.evolve(
        o,
        error=UNRECORDABLE if o.error is not None else None,
        error_class=None,
        channel_id=None,
        update=attrs.evolve(o.update, last_error=UNRECORDABLE if o.update.last_error else None),
        event=event,
    )


# (campaign id, participant id, account id, participant's new state or None): the slot is free again.
Release = Callable[[uuid.UUID, uuid.UUID, uuid.UUID, ParticipantUpdate | None], None]


async def write_outcomes(conn: asyncpg.Connection, batch: list[Outcome], owner: str | None = None) -> None:
    """The batch in one statement (storage/dispatch.record), fenced by each outcome's lease epoch."""
    await dispatch.record(
        conn,
        [
            dispatch.Advance(
                o.participant_id, o.step, o.update, o.last_sent_at, o.channel_id, o.lead_due, o.epoch
            )
            for o in batch
        ],
        [
            dispatch.Finished(
                o.send_id, o.ledger_status, o.message_id, o.error_class, o.error, o.call_started_at, o.epoch
            )
            for o in batch
            if o.send_id is not None and o.ledger_status is not None
        ],
        [(o.event[0], o.organization_id, o.event[1]) for o in batch if o.event is not None],
        owner=owner,
    )


class Recorder:
    def __init__(
        self,
        store: Store,
        *,
        release: Release,
        bus: Bus,
        owner: str | None = None,
    ) -> None:
        self._store = store
        self._owner = owner
        self._release = release
        self._bus = bus
        self._send, self._receive = trio.open_memory_channel[Outcome](math.inf)
        self.recorded = 0
        self.batches = 0
        self.rejected = 0
        # Participants whose outcome is handed in but not yet committed: still held, not stranded.
        self.pending: set[uuid.UUID] = set()
        self._committed = trio.Event()  # replaced after every commit

    def record(self, outcome: Outcome) -> None:
        """Never blocks: the limiter must not wait for the database to pace the next send."""
        self.pending.add(outcome.participant_id)
        self._send.send_nowait(sanitised(outcome))

    async def run(self, *, task_status: trio.TaskStatus[Recorder] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started(self)
        async with self._receive:
            while True:
                batch = [await self._receive.receive()]
                while len(batch) < MAX_BATCH:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except trio.WouldBlock:
                        break
                await self._commit(batch)

    async def _commit(self, batch: list[Outcome]) -> None:
        try:
            await self._write_retrying(batch)
        except StorageError as exc:
            # A row PostgreSQL will never take must not hold back the others (nor every later batch).
            log.warning("recorder.batch_rejected", error=str(exc), outcomes=len(batch))
            for o in batch:
                await self._write_alone(o)
        self.recorded += len(batch)
        self.batches += 1
        metrics.OUTCOME_BATCH.observe(len(batch))
        if any(o.lead_due for o in batch):
            self._bus.publish(LeadsOwed())
        for o in batch:
            self.pending.discard(o.participant_id)
            self._release(o.campaign_id, o.participant_id, o.bd_account_id, o.update)
        self._committed.set()
        self._committed = trio.Event()

    async def _write_retrying(self, batch: list[Outcome]) -> None:
        """Write the batch, waiting out an unavailable database; other storage errors are raised."""
        delay = 0.1
        while True:
            try:
                # One statement is atomic on its own: no BEGIN and COMMIT round-trips around it.
                await self._store.run(write_outcomes, batch, self._owner, transaction=False)
                return
            except _TRANSIENT as exc:
                log.warning("recorder.retry", error=str(exc), outcomes=len(batch), in_s=delay)
                await trio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _write_alone(self, o: Outcome) -> None:
        try:
            await self._write_retrying([o])
            return
        except StorageError as exc:
            error = str(exc)
        self.rejected += 1
        metrics.RECORDER_REJECTED.inc()
        log.error(
            "recorder.outcome_rejected",
            campaign_id=str(o.campaign_id),
            participant_id=str(o.participant_id),
            ledger_status=o.ledger_status,
            error=error,
        )
        try:
            await self._write_retrying([minimal(o)])
        except StorageError as exc:
            # Nothing of it can be written: the slot is still freed; the ledger row stays 'sending' and
            # the participant due, which the boot recovery and the reconciler handle like a crash.
            log.error("recorder.outcome_dropped", participant_id=str(o.participant_id), error=str(exc))

    async def drain(self, timeout_s: float) -> None:
        """Wait (bounded) until every outcome handed in so far is committed."""
        with trio.move_on_after(timeout_s):
            while self._receive.statistics().current_buffer_used:
                await self._committed.wait()
