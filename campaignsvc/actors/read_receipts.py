"""Read receipts: the CRM marks a campaign's messages read; this actor copies that onto the participants
(``read_at``), in the background, so that reading a report never writes (SPEC R-API-3 stats).

Every ``interval_s`` it walks the campaigns whose messages may still be read (active, paused, completed
in the last week), a batch of sent and unread participants at a time (storage/reporting.sync_read_marks:
one campaign is synced by one transaction at a time, whichever instance runs it; rows the dispatcher
holds wait for the next pass). Where a campaign's walk stopped is kept per process: losing it restarts
the walk from the beginning, which only costs a pass.
"""

from __future__ import annotations

import datetime as dt
import uuid

import trio

from campaignsvc.errors import StorageError
from campaignsvc.logs import get_logger
from campaignsvc.storage import reporting as db
from campaignsvc.storage.store import Store

log = get_logger(__name__)

BATCH = 2000  # participants looked at per transaction (~20 ms)
PASSES_PER_ROUND = 10  # per campaign and round: a huge campaign cannot hold the others back
WATCHED_AFTER_COMPLETION = dt.timedelta(days=7)


class ReadReceipts:
    def __init__(self, store: Store, *, interval_s: float) -> None:
        self._store = store
        self._interval_s = interval_s
        self._cursors: dict[uuid.UUID, uuid.UUID] = {}

    async def run(self, *, task_status: trio.TaskStatus[ReadReceipts] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started(self)
        while True:
            try:
                await self.sync()
            except StorageError as exc:
                log.warning("read_receipts.database_error", error=str(exc))
            await trio.sleep(self._interval_s)

    async def sync(self) -> None:
        """One round over every watched campaign."""
        campaigns = await self._store.run(
            db.campaigns_being_read, WATCHED_AFTER_COMPLETION, transaction=False
        )
        watched = {cid for cid, _ in campaigns}
        for cid in [c for c in self._cursors if c not in watched]:
            del self._cursors[cid]
        for campaign_id, org in campaigns:
            for _ in range(PASSES_PER_ROUND):
                cursor = await self._store.run(
                    db.sync_read_marks, org, campaign_id, self._cursors.get(campaign_id), BATCH
                )
                if cursor is None:
                    self._cursors.pop(campaign_id, None)
                    break
                self._cursors[campaign_id] = cursor
