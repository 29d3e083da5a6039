"""The sandbox Messaging Service as its own process, for the benchmarks.

    python -m bench.sandbox_proc '{"config": {...SandboxConfig fields...},
                                   "slow": {"accounts": [id, ...], "latency_ms": 200, "jitter_ms": 100,
                                            "error_rate": 0.01, "seed": 1}}'

Prints its base URL (ephemeral loopback port) as the first line of stdout, then serves until SIGTERM.
``slow`` gives the listed accounts their own latency and failure rate (a 502 "Downstream error", nothing
sent, as the sandbox's ``error_rate``); every other account gets the config's.
"""

from __future__ import annotations

import json
import random
import signal
import sys
from functools import partial
from typing import Any

import trio

from campaignsvc import logs
from campaignsvc.sandbox import SandboxConfig, SandboxState, run_sandbox
from campaignsvc.sandbox.answers import Verdict
from campaignsvc.sandbox.records import SendRequest
from campaignsvc.sandbox.state import Ledger


class SlowAccounts(SandboxState):
    """A sandbox where some accounts answer slowly and fail now and then.

    The engine asks ``admit`` for the verdict and then, with no await in between, ``latency_s`` for the
    delay, so the delay of the request just admitted is remembered between the two calls."""

    def __init__(self, config: SandboxConfig, slow: dict[str, Any]) -> None:
        super().__init__(config)
        self.slow_accounts = frozenset(str(a) for a in slow.get("accounts", []))
        self.slow_latency_ms = float(slow.get("latency_ms", 0.0))
        self.slow_jitter_ms = float(slow.get("jitter_ms", 0.0))
        self.slow_error_rate = float(slow.get("error_rate", 0.0))
        self._slow_rng = random.Random(f"{slow.get('seed', 0)}:slow")
        self._pending_latency: float | None = None

    def admit(self, ledger: Ledger, request: SendRequest) -> Verdict:
        if request.bd_account_id not in self.slow_accounts:
            self._pending_latency = None
            return super().admit(ledger, request)
        jitter = self._slow_rng.uniform(-self.slow_jitter_ms, self.slow_jitter_ms)
        self._pending_latency = max(0.0, self.slow_latency_ms + jitter) / 1000.0
        if self._slow_rng.random() < self.slow_error_rate:
            return Verdict.downstream_error()
        return super().admit(ledger, request)

    def latency_s(self) -> float:
        pending, self._pending_latency = self._pending_latency, None
        return super().latency_s() if pending is None else pending


async def _serve(spec: dict[str, Any]) -> None:
    config = SandboxConfig().patched(spec.get("config") or {})
    state = SlowAccounts(config, spec.get("slow") or {})
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        url = await nursery.start(
            partial(run_sandbox, config, host="127.0.0.1", port=0, state=state, shutdown=shutdown)
        )
        print(url, flush=True)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                shutdown.set()
                break


def main(argv: list[str]) -> None:
    logs.configure("warning", "console")
    spec = json.loads(argv[0]) if argv else {}
    trio.run(_serve, spec)


if __name__ == "__main__":
    main(sys.argv[1:])
