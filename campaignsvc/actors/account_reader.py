"""Account reader: limiters read their accounts' rows many at a time.

A limiter reads its account (storage/accounts.limiter_states: the row, the ramp, the last send start, the
send starts of the last 48 hours) when it starts and whenever the account's rules change. When thousands
of accounts get their first work together — a boot, a large campaign starting — one query each kept the
process busy with round trips in the very minute their first sends fall due. The reader answers every
limiter waiting at that moment with one statement (actors/batches.py), outside a transaction, on one
connection at a time. A database error is every waiter's (each limiter crashes and is restarted, as it
was when it read alone).
"""

from __future__ import annotations

import uuid
from typing import Any

import trio

from campaignsvc.actors.batches import Batches
from campaignsvc.errors import CampaignsvcError
from campaignsvc.storage import accounts as accounts_db
from campaignsvc.storage.store import Store

MAX_BATCH = 500


class ReaderStopped(CampaignsvcError):
    """The reader stopped (the service is shutting down) before it answered."""


class AccountReader:
    def __init__(self, store: Store, *, max_batch: int = MAX_BATCH) -> None:
        self._store = store
        self._batches: Batches[uuid.UUID, dict[str, Any] | None] = Batches(
            self._read,
            max_batch=max_batch,
            stopped=lambda: ReaderStopped("the account reader stopped before it answered"),
        )
        self.batches = 0
        self.read_rows = 0

    async def read(self, bd_account_id: uuid.UUID) -> dict[str, Any] | None:
        """The account's limiter state (storage/accounts.limiter_states), None when it does not exist."""
        return await self._batches.call(bd_account_id)

    async def run(self, *, task_status: trio.TaskStatus[AccountReader] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started(self)
        await self._batches.run()

    async def _read(self, ids: list[uuid.UUID]) -> list[dict[str, Any] | BaseException | None]:
        try:
            rows = await self._store.run(accounts_db.limiter_states, list(set(ids)), transaction=False)
        except Exception as exc:
            return [exc] * len(ids)
        self.batches += 1
        self.read_rows += len(ids)
        return [rows.get(i) for i in ids]
