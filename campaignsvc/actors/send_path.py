"""One send, start to end (SPEC R-DEL): claim under the ledger row, call Messaging, hand the outcome on.

1. Claim (actors/claimer.py, one transaction with the other sends about to start): the participant is
   still due at this step, the campaign active; conditions and the template are evaluated on fresh data;
   the ledger row ``sending`` with the idempotency key and the exact text is committed before anything
   leaves the process.
2. Call Messaging with that key and ``source: "campaign"``.
3. Classify the answer and give the outcome to the recorder: sent → next step; recipient-permanent →
   failed; transient → retried with backoff up to ``MAX_SEND_ATTEMPTS``; account-level → the account is
   blocked and the participant waits; unknown (timeout) → in doubt, retried with the same key after the
   quarantine.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Protocol

import trio

from campaignsvc import metrics
from campaignsvc.actors.claimer import Claimer
from campaignsvc.actors.clock import Clock
from campaignsvc.actors.limiter import AccountLimiter, SendReport, SendRequest
from campaignsvc.actors.recorder import Outcome, Recorder, Release
from campaignsvc.config import Settings
from campaignsvc.domain import claims, conditions, delivery
from campaignsvc.domain import schedule as sched
from campaignsvc.domain.campaign import ParticipantUpdate, after_send
from campaignsvc.domain.status import ParticipantStatus, SendStatus, Waiting
from campaignsvc.integrations.messaging import Delivered, MessagingClient, SendCommand
from campaignsvc.logs import get_logger
from campaignsvc.storage.claims import LEASE_LOST, Ask

log = get_logger(__name__)


class Leases(Protocol):
    """This instance's account leases (actors/leases.LeaseKeeper)."""

    def epoch(self, bd_account_id: uuid.UUID) -> int | None: ...

    def holds(self, bd_account_id: uuid.UUID, epoch: int) -> bool: ...


# How long an account stays blocked when Messaging reports a problem that carries no wait time.
ACCOUNT_BLOCKS = {
    delivery.AccountBlock.SESSION_EXPIRED: dt.timedelta(hours=1),
    delivery.AccountBlock.NOT_CONNECTED: dt.timedelta(minutes=5),
    delivery.AccountBlock.ACCOUNT_UNAVAILABLE: dt.timedelta(hours=1),
}


class DispatchSender:
    """The production :class:`campaignsvc.actors.limiter.Sender`."""

    def __init__(
        self,
        *,
        claimer: Claimer,
        messaging: MessagingClient,
        recorder: Recorder,
        settings: Settings,
        clock: Clock,
        release: Release,
        on_block: Callable[[uuid.UUID, dt.datetime, str, int | None], Awaitable[None]],
        ai_text: str = "",
        rng: random.Random | None = None,
        leases: Leases | None = None,
    ) -> None:
        self._claimer = claimer
        self._leases = leases
        self._messaging = messaging
        self._recorder = recorder
        self._settings = settings
        self._clock = clock
        self._release = release
        self._on_block = on_block
        self._ai_text = ai_text
        self._rng = rng or random.Random()

    async def send(
        self, limiter: AccountLimiter, request: SendRequest, start_at: dt.datetime | None = None
    ) -> SendReport:
        plan = request.plan
        free = partial(self._release, plan.id, request.participant_id, request.bd_account_id)
        epoch = None
        if self._leases is not None:
            epoch = self._leases.epoch(request.bd_account_id)
            if epoch is None:  # not (or no longer surely) this instance's account: nothing is claimed
                metrics.FENCED.labels("claim").inc()
                free(None)
                return SendReport(attempted=False)
        now = self._clock.now()
        decided_at = now if start_at is None else max(now, start_at)
        schedule = limiter.settings.policy.window(plan)
        step = plan.steps[request.step]
        assert step.key is not None, "every stored step has its key (migration 0005)"
        result = await self._claimer.claim(
            Ask(
                participant_id=request.participant_id,
                step=request.step,
                step_key=step.key,
                bd_account_id=request.bd_account_id,
                decide=partial(
                    claims.decide, plan, request.step, schedule, self._rng, decided_at, self._ai_text
                ),
                pipelines=tuple(sorted(conditions.pipelines_referenced(step.conditions))),
                start_at=start_at,
                epoch=epoch,
            )
        )
        match result:
            case claims.NotDue(reason=reason):
                if reason == LEASE_LOST:
                    metrics.FENCED.labels("claim").inc()
                free(None)
                return SendReport(attempted=False)
            case claims.Skipped(update=update):
                free(update)
                return SendReport(attempted=False)
            case claims.Quarantined(until=until):
                free(ParticipantUpdate(request.step, ParticipantStatus.SENT, until, Waiting.IN_DOUBT))
                return SendReport(attempted=False)
            case claims.Recovered(first_send=first_send):
                update = after_send(plan, request.step, self._clock.now(), schedule, self._rng)
                self._record(
                    request,
                    update,
                    epoch,
                    last_sent_at=self._clock.now(),
                    lead_due=first_send and plan.lead_trigger == "on_first_send",
                )
                return SendReport(attempted=False)
            case claims.ContactGone(reason=reason):
                event = (
                    "campaign.message.failed",
                    self._event_data(request, error=reason, error_class="recipient"),
                )
                self._record(request, _ended(request, ParticipantStatus.FAILED, reason), epoch, event=event)
                return SendReport(attempted=False)
            case claims.Stopped(reason=reason):
                self._record(request, _ended(request, ParticipantStatus.STOPPED, reason), epoch)
                return SendReport(attempted=False)
            case claims.Claimed() as claimed:
                # Wait for the start only when it is ahead: a start already reached (no gap to wait
                # out) costs no timed wait, whose expiry trio delivers as a cancellation. The wait is
                # also the time to connect: a connect at the start would delay the request's write,
                # from which the account's next gap counts.
                if start_at is not None and start_at > self._clock.now():
                    await self._messaging.warm()
                    await trio.sleep_until(self._clock.deadline(start_at))
                if (
                    self._leases is not None
                    and epoch is not None
                    and not self._leases.holds(request.bd_account_id, epoch)
                ):
                    return self._fenced(request, claimed, epoch)
                return await self._call(request, claimed, schedule, epoch)
        raise AssertionError(f"unexpected claim result {result!r}")

    def _fenced(self, request: SendRequest, claimed: claims.Claimed, epoch: int) -> SendReport:
        """The lease is no longer surely this instance's at the call's start (a heartbeat is late, or the
        process was paused): no call. The row goes back to a retryable state, due now — if the lease is
        still this instance's; else the write is refused and the new owner finds the row in doubt."""
        metrics.FENCED.labels("call").inc()
        status = ParticipantStatus.PENDING if claimed.first_send else ParticipantStatus.SENT
        update = ParticipantUpdate(
            current_step=request.step,
            status=status,
            next_send_at=self._clock.now(),
            waiting_reason=None,
            attempts=claimed.participant_attempts,
        )
        self._record(
            request,
            update,
            epoch,
            send_id=claimed.send_id,
            ledger_status=SendStatus.DEFERRED,
            error_class="lease",
            error="not sent: the account's lease was not surely this instance's at the call's start",
        )
        return SendReport(attempted=False)

    async def _call(
        self,
        request: SendRequest,
        claimed: claims.Claimed,
        schedule: sched.Schedule | None,
        epoch: int | None,
    ) -> SendReport:
        plan = request.plan
        # The send's start as Messaging (and Telegram) sees it: when the request was written, which a stall
        # of the event loop or a new connection can make later than the call's beginning. The gap counts
        # from there, so arrivals are never closer than the gap because one call left late.
        began = self._clock.now()
        written: list[dt.datetime] = []
        answer = await self._messaging.send(
            SendCommand(
                organization_id=plan.organization_id,
                user_id=plan.owner_id,
                contact_id=claimed.contact_id,
                bd_account_id=request.bd_account_id,
                channel_id=claimed.channel_id,
                content=claimed.content,
                idempotency_key=claimed.idempotency_key,
                correlation_id=str(uuid.uuid4()),
            ),
            on_sent=lambda: written.append(self._clock.now()),
        )
        started = written[0] if written else began
        metrics.SEND_LATENESS.observe(max(0.0, (started - request.due_at).total_seconds()))
        now = self._clock.now()
        waiting_status = ParticipantStatus.PENDING if claimed.first_send else ParticipantStatus.SENT
        metrics.SENDS.labels("delivered" if isinstance(answer, Delivered) else answer.error_class.value).inc()
        if isinstance(answer, Delivered):
            update = after_send(plan, request.step, now, schedule, self._rng)
            data = self._event_data(request, message_id=answer.message_id, contact_id=claimed.contact_id)
            self._record(
                request,
                update,
                epoch,
                send_id=claimed.send_id,
                ledger_status=SendStatus.SENT,
                message_id=answer.message_id,
                last_sent_at=now,
                channel_id=answer.channel_id
                if answer.channel_id and answer.channel_id != claimed.channel_id
                else None,
                event=("campaign.message.sent", data),
                lead_due=claimed.first_send and plan.lead_trigger == "on_first_send",
                call_started_at=started,
            )
            return SendReport(attempted=True, started_at=started)

        failure = answer
        log.info(
            "send.failed",
            campaign_id=str(plan.id),
            participant_id=str(request.participant_id),
            bd_account_id=str(request.bd_account_id),
            error_class=failure.error_class.value,
            reason=failure.reason,
        )
        common = dict(
            send_id=claimed.send_id,
            error_class=failure.error_class.value,
            error=failure.reason,
            call_started_at=started,
        )
        if failure.error_class is delivery.ErrorClass.ACCOUNT:
            until, seconds = self._block_until(failure, now)
            update = ParticipantUpdate(
                current_step=request.step,
                status=waiting_status,
                next_send_at=until,
                waiting_reason=Waiting.FLOOD,
                attempts=claimed.participant_attempts,
            )
            self._record(request, update, epoch, ledger_status=SendStatus.DEFERRED, **common)
            reason = failure.block.value if failure.block else "account"
            await self._on_block(request.bd_account_id, until, reason, seconds)
            return SendReport(
                attempted=True, started_at=started, block_until=until, block_reason=reason, counted=False
            )
        if failure.error_class is delivery.ErrorClass.UNKNOWN:
            until = now + dt.timedelta(seconds=self._settings.in_doubt_retry_after_s)
            update = ParticipantUpdate(
                current_step=request.step,
                status=waiting_status,
                next_send_at=until,
                waiting_reason=Waiting.IN_DOUBT,
                attempts=claimed.participant_attempts,
            )
            self._record(request, update, epoch, ledger_status=SendStatus.IN_DOUBT, **common)
            return SendReport(attempted=True, started_at=started)
        attempts = claimed.participant_attempts + 1
        if (
            failure.error_class is delivery.ErrorClass.TRANSIENT
            and attempts < self._settings.max_send_attempts
        ):
            retry_at = now + dt.timedelta(seconds=delivery.backoff_s(attempts, self._rng))
            update = ParticipantUpdate(
                current_step=request.step,
                status=waiting_status,
                next_send_at=retry_at,
                waiting_reason=Waiting.RETRY,
                attempts=attempts,
                last_error=failure.reason,
            )
            self._record(request, update, epoch, ledger_status=SendStatus.DEFERRED, **common)
            return SendReport(attempted=True, started_at=started, counted=False)
        update = ParticipantUpdate(
            current_step=request.step,
            status=ParticipantStatus.FAILED,
            next_send_at=None,
            waiting_reason=None,
            attempts=attempts,
            last_error=failure.reason,
        )
        data = self._event_data(
            request,
            contact_id=claimed.contact_id,
            error=failure.reason,
            error_class=failure.error_class.value,
        )
        self._record(
            request,
            update,
            epoch,
            ledger_status=SendStatus.FAILED,
            event=("campaign.message.failed", data),
            **common,
        )
        return SendReport(attempted=True, started_at=started, counted=False)

    def _block_until(self, failure: delivery.Failure, now: dt.datetime) -> tuple[dt.datetime, int | None]:
        s = self._settings
        if failure.block is delivery.AccountBlock.PEER_FLOOD:
            seconds = failure.retry_after_s or s.peer_flood_block_hours * 3600
        elif failure.block is delivery.AccountBlock.FLOOD_WAIT or failure.block is None:
            seconds = (
                failure.retry_after_s if failure.retry_after_s is not None else s.retry_429_after_minutes * 60
            )
        else:
            seconds = ACCOUNT_BLOCKS[failure.block].total_seconds()
        return now + dt.timedelta(seconds=seconds), int(
            seconds
        ) if failure.retry_after_s is not None else None

    def _event_data(self, request: SendRequest, **extra: object) -> dict[str, object]:
        data: dict[str, object] = {
            "campaignId": str(request.plan.id),
            "participantId": str(request.participant_id),
            "bdAccountId": str(request.bd_account_id),
            "step": request.step,
        }
        for key, value in extra.items():
            if value is None:
                continue
            name = {"message_id": "messageId", "contact_id": "contactId", "error_class": "errorClass"}.get(
                key, key
            )
            data[name] = str(value) if isinstance(value, uuid.UUID) else value
        return data

    def _record(
        self, request: SendRequest, update: ParticipantUpdate, epoch: int | None, **fields: object
    ) -> None:
        self._recorder.record(
            Outcome(
                campaign_id=request.plan.id,
                organization_id=request.plan.organization_id,
                participant_id=request.participant_id,
                bd_account_id=request.bd_account_id,
                step=request.step,
                update=update,
                epoch=epoch,
                **fields,  # type: ignore[arg-type]
            )
        )


def _ended(request: SendRequest, status: ParticipantStatus, reason: str) -> ParticipantUpdate:
    """Nothing more is sent to the participant: ``status`` with ``reason`` as its last error."""
    return ParticipantUpdate(
        current_step=request.step, status=status, next_send_at=None, waiting_reason=None, last_error=reason
    )
