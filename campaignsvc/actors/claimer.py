"""Claimer: claims the sends of every limiter about to send, many in one transaction (SPEC R-DEL-1).

A limiter whose next send starts within the claim lead (limiter.CLAIM_LEAD) asks the claimer and waits;
the claimer takes every ask waiting at that moment (up to ``MAX_BATCH``, actors/batches.py), claims them
in one transaction (storage/claims.claim_many: one read under the participants' locks, one statement per
kind of write) and answers each. A claim is still committed before its Messaging call: the limiter calls
only after its answer.

A batch PostgreSQL rejects (a row it will not take) is claimed again one ask per transaction, so the
others go on; a database outage is every waiter's error, as it was for a claim of its own (the limiter
crashes and is restarted; its participant stays due). A waiter that goes away (its limiter cancelled)
may leave its claim committed without a call: that ledger row is ``sending``, so the next claim of the
step finds it in doubt and retries it with the same key after the quarantine — never twice, nobody lost.
"""

from __future__ import annotations

import datetime as dt

import trio

from campaignsvc import metrics
from campaignsvc.actors.batches import Batches
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
        self._batches: Batches[claims.Ask, ClaimResult] = Batches(
            self._claim,
            max_batch=max_batch,
            stopped=lambda: ClaimerStopped("the claimer stopped before this claim was answered"),
        )
        self.batches = 0
        self.claimed = 0

    async def claim(self, ask: claims.Ask) -> ClaimResult:
        """The ask's claim, committed; raises what the database raised for it."""
        return await self._batches.call(ask)

    async def run(self, *, task_status: trio.TaskStatus[Claimer] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started(self)
        await self._batches.run()

    async def _claim(self, asks: list[claims.Ask]) -> list[ClaimResult | BaseException]:
        try:
            results = await self._store.run(
                claims.claim_many, asks, quarantine=self._quarantine, owner=self._owner
            )
        except _TRANSIENT as exc:
            return [exc] * len(asks)
        except Exception as exc:
            # A row PostgreSQL will not take (or a step whose decision raises) must not fail the others.
            if len(asks) == 1:
                return [exc]
            log.warning("claimer.batch_rejected", error=f"{type(exc).__name__}: {exc}", asks=len(asks))
            return [result for ask in asks for result in await self._claim([ask])]
        self.batches += 1
        self.claimed += len(asks)
        metrics.CLAIM_BATCH.observe(len(asks))
        return list(results)
