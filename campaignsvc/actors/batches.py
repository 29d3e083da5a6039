"""Many tasks' requests answered by one database round trip.

Each caller hands an item in and waits; the batch's task takes every item waiting at that moment (up to
``max_batch``), hands them to ``handle`` in one call and gives each caller its own answer, or raises to it
the exception ``handle`` put in its place. While one batch is in the database the next one gathers, so the
batch grows with the load and a lone item is handled at once. When the task stops (shutdown), a caller
still waiting, or coming later, gets ``stopped()`` raised instead of an answer that will not come.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar, cast

import attrs
import trio

T = TypeVar("T")
R = TypeVar("R")


@attrs.define(eq=False)
class _Waiter(Generic[T, R]):
    item: T
    done: trio.Event = attrs.field(factory=trio.Event)
    result: R | BaseException | None = None


class Batches(Generic[T, R]):
    def __init__(
        self,
        handle: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]],
        *,
        max_batch: int,
        stopped: Callable[[], BaseException],
    ) -> None:
        self._handle = handle
        self._max_batch = max_batch
        self._stopped = stopped
        self._send, self._receive = trio.open_memory_channel[_Waiter[T, R]](math.inf)

    async def call(self, item: T) -> R:
        waiter: _Waiter[T, R] = _Waiter(item)
        try:
            self._send.send_nowait(waiter)
        except trio.ClosedResourceError:
            raise self._stopped() from None
        await waiter.done.wait()
        if isinstance(waiter.result, BaseException):
            raise waiter.result
        return cast(R, waiter.result)

    async def run(self) -> None:
        batch: list[_Waiter[T, R]] = []
        try:
            while True:
                batch = [await self._receive.receive()]
                while len(batch) < self._max_batch:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except trio.WouldBlock:
                        break
                results = await self._handle([w.item for w in batch])
                for w, result in zip(batch, results, strict=True):
                    w.result = result
                    w.done.set()
        finally:
            self._send.close()
            while True:
                try:
                    batch.append(self._receive.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            for w in batch:
                if not w.done.is_set():
                    w.result = self._stopped()
                    w.done.set()
