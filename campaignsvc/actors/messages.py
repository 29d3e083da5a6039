"""Messages between actors: frozen attrs classes named as commands or facts."""

from __future__ import annotations

import attrs


@attrs.frozen
class Ping:
    """Asks the supervisor to prove it is alive (used by tests and /ready)."""
