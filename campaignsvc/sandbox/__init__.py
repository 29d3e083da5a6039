"""A stand-in for the CRM's Messaging Service that behaves like Telegram through the real HTTP contract.

Used by the demo, the benchmarks and end-to-end tests; see docs/sandbox.md. In-process use::

    state = SandboxState(SandboxConfig(seed=7, account_min_gap_s=1.0))
    url = await nursery.start(partial(run_sandbox, state.config, port=0, state=state))
    ...  # drive f"{url}/api/messaging/send", then read state.received, state.events, state.stats()
"""

from __future__ import annotations

from campaignsvc.sandbox.app import create_sandbox_app
from campaignsvc.sandbox.config import ConfigPatchError, SandboxConfig
from campaignsvc.sandbox.records import EventRecord, ReceivedRecord, SendRequest
from campaignsvc.sandbox.server import run_sandbox
from campaignsvc.sandbox.state import SandboxState

__all__ = [
    "ConfigPatchError",
    "EventRecord",
    "ReceivedRecord",
    "SandboxConfig",
    "SandboxState",
    "SendRequest",
    "create_sandbox_app",
    "run_sandbox",
]
