"""One send, from arrival to answer.

The work runs in the sandbox's nursery, not in the request's task: a caller that times out and hangs up
does not stop a send Telegram already has, which is exactly the ambiguous case the campaign service must
survive. The request's task only waits for the outcome.
"""

from __future__ import annotations

from typing import Any

import trio

from campaignsvc.logs import get_logger
from campaignsvc.sandbox.answers import ABORTED, NOT_RUNNING
from campaignsvc.sandbox.records import ReceivedRecord, SendRequest
from campaignsvc.sandbox.state import Flight, Ledger, Runtime, SandboxState

log = get_logger(__name__)


async def handle_send(
    state: SandboxState, ledger: Ledger, record: ReceivedRecord, request: SendRequest
) -> tuple[int, dict[str, Any]]:
    """Answer one valid send: a replay of the key's first message, or the outcome of a new attempt."""
    runtime = state.runtime
    if runtime is None:
        ledger.finish(record, 503, "not_running")
        return 503, NOT_RUNNING
    key = request.key
    while key is not None:
        row = ledger.rows_by_key.get(key)
        if row is not None:
            ledger.finish(record, 200, "replay", row=row, replay=True)
            log.debug("sandbox.replay", bd_account_id=request.bd_account_id, idempotency_key=key[1])
            return 200, row
        flight = ledger.flights.get(key)
        if flight is None:
            break
        # The first request with this key is still in progress: its outcome decides ours.
        await flight.done.wait()
    flight = Flight()
    if key is not None:
        ledger.flights[key] = flight
    runtime.nursery.start_soon(_carry_out, state, runtime, ledger, record, request, flight)
    await flight.done.wait()
    assert flight.body is not None
    return flight.status, flight.body


async def _carry_out(
    state: SandboxState,
    runtime: Runtime,
    ledger: Ledger,
    record: ReceivedRecord,
    request: SendRequest,
    flight: Flight,
) -> None:
    status, body, outcome = 500, ABORTED, "cancelled"
    row: dict[str, Any] | None = None
    try:
        verdict = state.admit(ledger, request)
        await trio.sleep(state.config.hang_s if verdict.hang else state.latency_s())
        if verdict.delivers:
            row = state.deliver(ledger, request)
            runtime.after_delivery(ledger, request, row)
        status, outcome = verdict.status, verdict.outcome
        body = row if verdict.body is None else verdict.body  # type: ignore[assignment]
    finally:
        # Also on cancellation (the sandbox stopping): waiters get an answer, the record an outcome.
        ledger.finish(record, status, outcome, row=row)
        if request.key is not None and ledger.flights.get(request.key) is flight:
            del ledger.flights[request.key]
        flight.resolve(status, body)
    log.debug(
        "sandbox.send",
        bd_account_id=request.bd_account_id,
        channel_id=request.channel_id,
        outcome=outcome,
        status=status,
    )
