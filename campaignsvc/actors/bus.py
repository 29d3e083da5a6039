"""The control bus: typed control messages (actors/messages.py), published after the commit whose change
they announce, delivered to every subscriber of their kind.

In-process today — an unbounded memory channel per subscriber, so publishing never blocks and never
fails. The interface is what several instances need: a publisher does not know who listens, and the
database stays the truth (a message only says "look again now"), so a LISTEN/NOTIFY transport can carry
the same messages behind ``publish``/``subscribe``.
"""

from __future__ import annotations

import math

import attrs
import trio

from campaignsvc.actors.messages import ControlMessage


@attrs.define
class Subscription:
    kinds: tuple[type, ...]
    send: trio.MemorySendChannel[ControlMessage]
    receive: trio.MemoryReceiveChannel[ControlMessage]


class Bus:
    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []

    def subscribe(self, *kinds: type) -> trio.MemoryReceiveChannel[ControlMessage]:
        """A channel of the messages of these kinds published from now on; it ends at :meth:`unsubscribe`."""
        send, receive = trio.open_memory_channel[ControlMessage](math.inf)
        self._subscriptions.append(Subscription(kinds, send, receive))
        return receive

    def unsubscribe(self, receive: trio.MemoryReceiveChannel[ControlMessage]) -> None:
        for sub in [s for s in self._subscriptions if s.receive is receive]:
            self._subscriptions.remove(sub)
            sub.send.close()

    def publish(self, message: ControlMessage) -> None:
        """Deliver to every subscriber of the message's kind; never blocks."""
        for sub in self._subscriptions:
            if isinstance(message, sub.kinds):
                sub.send.send_nowait(message)
