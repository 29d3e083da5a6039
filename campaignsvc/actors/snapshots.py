"""Snapshots: values a request could compute but whose cost grows with the data (the waiting counts of a
campaign with a million open participants), served from memory and refreshed in the background.

A value that took less than ``inline_s`` to compute is computed again for every request: small campaigns
are always exact. A costlier one is kept with the time it was computed (``as_of``); a request gets it
at once, and when it is older than ``max(fresh_s, cost_factor × its cost)`` one refresh starts in the
background (never two for a key), so the database spends at most ``1 / cost_factor`` of its time on it
however often it is asked. Values nobody asked for within ``keep_s`` are dropped.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

import attrs
import trio

from campaignsvc.logs import get_logger

log = get_logger(__name__)

# compute() → (value, as_of)
Compute = Callable[[], Awaitable[tuple[Any, dt.datetime]]]


@attrs.define
class _Entry:
    value: Any
    as_of: dt.datetime
    cost_s: float
    computed_at: float  # trio.current_time() when it finished
    asked_at: float
    refreshing: bool = False


class Snapshots:
    def __init__(
        self,
        *,
        inline_s: float = 0.02,
        fresh_s: float = 5.0,
        cost_factor: float = 20.0,
        keep_s: float = 600.0,
    ) -> None:
        self.inline_s = inline_s
        self.fresh_s = fresh_s
        self.cost_factor = cost_factor
        self.keep_s = keep_s
        self._entries: dict[Hashable, _Entry] = {}
        self._nursery: trio.Nursery | None = None
        self.refreshes = 0

    async def run(self, *, task_status: trio.TaskStatus[Snapshots] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started(self)
            try:
                await trio.sleep_forever()
            finally:
                self._nursery = None

    async def get(self, key: Hashable, compute: Compute) -> tuple[Any, dt.datetime]:
        """The value for ``key`` and when it was computed."""
        now = trio.current_time()
        self._drop_unasked(now)
        entry = self._entries.get(key)
        if entry is None or entry.cost_s < self.inline_s or self._nursery is None:
            entry = await self._compute(key, compute)
        entry.asked_at = now
        nursery = self._nursery
        if nursery is not None and not entry.refreshing and now - entry.computed_at > self._fresh_for(entry):
            entry.refreshing = True
            nursery.start_soon(self._refresh, key, compute)
        return entry.value, entry.as_of

    def _fresh_for(self, entry: _Entry) -> float:
        return max(self.fresh_s, self.cost_factor * entry.cost_s)

    async def _compute(self, key: Hashable, compute: Compute) -> _Entry:
        started = trio.current_time()
        value, as_of = await compute()
        done = trio.current_time()
        entry = _Entry(value, as_of, done - started, done, done)
        self._entries[key] = entry
        return entry

    async def _refresh(self, key: Hashable, compute: Compute) -> None:
        old = self._entries.get(key)
        try:
            fresh = await self._compute(key, compute)
        except Exception:
            log.exception("snapshot.refresh_failed", key=str(key))
            if old is not None:
                old.refreshing = False
                old.computed_at = trio.current_time()  # tried again after another fresh period
            return
        self.refreshes += 1
        if old is not None:
            fresh.asked_at = old.asked_at

    def _drop_unasked(self, now: float) -> None:
        if not math.isfinite(self.keep_s):
            return
        for key in [
            k for k, e in self._entries.items() if now - e.asked_at > self.keep_s and not e.refreshing
        ]:
            del self._entries[key]
