"""Claimer: claims the sends of every limiter about to send, many in one transaction (SPEC R-DEL-1).

A limiter whose next send starts within the claim lead (limiter.CLAIM_LEAD) asks the claimer and waits;
the claimer takes every ask waiting at that moment (up to ``MAX_BATCH``), claims them in one transaction
(storage/claims.claim_many: one read under the participants' locks, one statement per kind of write) and
answers each. While a batch is in the database the next one gathers, so the batch grows with the load and
a lone ask is claimed at once. A claim is still committed before its Messaging call: the limiter calls
only after its answer.

A batch PostgreSQL rejects (a row it will not take) is claimed again one ask per transaction, so the
others go on; a database outage is every waiter's error, as it was for a claim of its own (the limiter
crashes and is restarted; its participant stays due). A waiter that goes away (its limiter cancelled)
may leave its claim committed without a call: that ledger row is ``sending``, so the next claim of the
step finds it in doubt and retries it with the same key after the quarantine — never twice, nobody lost.
"""

from __future__ import annotations

import datetime as dt
import math

import attrs
import trio

from campaignsvc import metrics
from campaignsvc.domain.claims import ClaimResult
from campaignsvc.errors import CampaignsvcError, DatabaseUnavailable, QueryTimeout, SerializationConflict
from campaignsvc.logs import get_logger
from campaignsvc.storage import claims
from campaignsvc.storage.store import Store

log = get_logger(__name__)

MAX_BATCH = 200
# Failures that say "the database, not this batch": every waiter gets them, no per-ask retry.
_TRANSIENT = (DatabaseUnavailable, QueryTimeout, SerializationConflict)


class ClaimerStopped(CampaignsvcError):
    """The claimer stopped (the service is shutting down) before it answered."""


@attrs.define(eq=False)
class _Waiter:
    ask: claims.Ask
    done: trio.Event = attrs.field(factory=trio.Event)
    result: ClaimResult | None = None
    error: BaseException | None = None


class Claimer:
    def __init__(
        self,
        store: Store,
        *,
        quarantine: dt.timedelta,
        max_batch: int = MAX_BATCH,
        owner: str | None = None,
    ) -> None:
        self._store = store
        self._owner = owner
        self._quarantine = quarantine
        self._max_batch = max_batch
        self._send, self._receive = trio.open_memory_channel[_Waiter](math.inf)
        self.batches = 0
        self.claimed = 0

    async def claim(self, ask: claims.Ask) -> ClaimResult:
        """The ask's claim, committed; raises what the database raised for it."""
        waiter = _Waiter(ask)
        self._send.send_nowait(waiter)
        await waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error
        assert waiter.result is not None
        return waiter.result

    async def run(self, *, task_status: trio.TaskStatus[Claimer] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started(self)
        batch: list[_Waiter] = []
        try:
            while True:
                batch = [await self._receive.receive()]
                while len(batch) < self._max_batch:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except trio.WouldBlock:
                        break
                await self._claim(batch)
        finally:
            # Stopped (shutdown): nobody waits for an answer that will not come.
            while True:
                try:
                    batch.append(self._receive.receive_nowait())
                except (trio.WouldBlock, trio.ClosedResourceError):
                    break
            for w in batch:
                if not w.done.is_set():
                    w.error = ClaimerStopped("the claimer stopped before this claim was answered")
                    w.done.set()

    async def _claim(self, batch: list[_Waiter]) -> None:
        try:
            results = await self._store.run(
                claims.claim_many, [w.ask for w in batch], quarantine=self._quarantine, owner=self._owner
            )
        except _TRANSIENT as exc:
            for w in batch:
                w.error = exc
                w.done.set()
            return
        except Exception as exc:
            # A row PostgreSQL will not take (or a step whose decision raises) must not fail the others.
            if len(batch) == 1:
                batch[0].error = exc
                batch[0].done.set()
                return
            log.warning("claimer.batch_rejected", error=f"{type(exc).__name__}: {exc}", asks=len(batch))
            for w in batch:
                await self._claim([w])
            return
        self.batches += 1
        self.claimed += len(batch)
        metrics.CLAIM_BATCH.observe(len(batch))
        for w, result in zip(batch, results, strict=True):
            w.result = result
            w.done.set()
