"""The garbage collector's view of a long-running service.

CPython's full collection walks every tracked object. Nearly all of them — modules, the HTTP app and its
schemas, the actors of every campaign and account — live for hours, yet each full collection walked them
again: with 10,000 accounts the scheduler stalled for up to half a second at a time (docs/performance.md).

So what survives a collection of the older generations is frozen right after it (``gc.freeze``): full
collections then find next to nothing to walk. Freezing only after full collections still left them
walking everything promoted since the last one — at 10,000 accounts, the next minute's sends each account
holds — for up to 95 ms; freezing after the middle generation's collections too took those pauses away
(docs/performance.md). Reference counting still frees frozen objects; only cycles among them would stay,
so once an hour the frozen set is handed back and the next full collection takes it all in.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from typing import Any

import trio

THAW_EVERY_S = 3600.0


def _freeze_survivors(phase: str, info: dict[str, Any]) -> None:
    # After a collection of the two younger generations (or all three) both are empty: what they held is
    # alive and now old. Frozen at once, it is never walked by a full collection.
    if phase == "stop" and info["generation"] >= 1:
        gc.freeze()


@contextlib.contextmanager
def frozen_survivors() -> Iterator[None]:
    """Collect and freeze now, and freeze the survivors of every full collection until exit."""
    gc.collect()
    gc.freeze()
    gc.callbacks.append(_freeze_survivors)
    try:
        yield
    finally:
        gc.callbacks.remove(_freeze_survivors)
        gc.unfreeze()


async def thaw_periodically(every_s: float = THAW_EVERY_S) -> None:
    """Hand the frozen objects back to the collector now and then, so cycles among them are found."""
    while True:
        await trio.sleep(every_s)
        gc.unfreeze()
