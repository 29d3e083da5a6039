"""Wall time for the dispatcher, injectable so tests run on trio's virtual clock.

Actors compare due times (timestamps from the database) with "now" and sleep until them; both go
through a :class:`Clock`, never ``datetime.now()`` deep in the logic.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Protocol

import trio


class Clock(Protocol):
    def now(self) -> dt.datetime: ...

    def deadline(self, at: dt.datetime) -> float:
        """The trio deadline (``trio.current_time()`` scale) of wall time ``at``."""
        ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def deadline(self, at: dt.datetime) -> float:
        return trio.current_time() + (at - self.now()).total_seconds()


class TrioClock:
    """Wall time that advances with trio's clock (a ``MockClock`` in tests): starts at ``origin``."""

    def __init__(self, origin: dt.datetime) -> None:
        self._origin = origin
        self._start = trio.current_time()

    def now(self) -> dt.datetime:
        return self._origin + dt.timedelta(seconds=trio.current_time() - self._start)

    def deadline(self, at: dt.datetime) -> float:
        return self._start + (at - self._origin).total_seconds()


def deadline_of(clock: Clock, at: dt.datetime | None) -> float:
    return math.inf if at is None else clock.deadline(at)
