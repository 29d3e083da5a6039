"""What inbound CRM events do (SPEC R-SEQ-2, R-EVT-1, R-LIFE-4/5, R-THR-2).

- ``message.received``: the reply entry point. An inbound message from a contact marks the participant
  ``replied`` (no further sends) — or, when the participant waits for an ``after_reply`` step, releases
  that step — with the intent the classifier reads in it (domain/replies.py), announced as
  ``campaign.participant.replied``. An automatic answer (away message, business bot) is not a reply: it
  is recorded and holds the next send back by the campaign's ``autoReplyPauseHours``. A reply read as
  ``unsubscribe`` puts the contact on the organization's do-not-contact list. Recorded whatever the campaign's and the participant's status (failed becomes replied;
  replied keeps its first reply) once the contact is answering the campaign (docs/semantics.md
  "Replies"); outbound echoes of the account's own messages and service bots are ignored; the same
  event twice changes nothing (idempotent by event id).
- ``lead.created`` / ``lead.stage.changed``: dynamic enrolment into active campaigns watching that stage.
- ``bd_account.flood.cleared`` / ``spam.restricted`` / ``spam.cleared``: the account's limiter re-reads
  its block; a restriction pauses the campaigns that have no other account.

One transaction per event, including the processed-event claim; control messages go on the bus after the
commit. Used by the RabbitMQ consumer and by ``POST /api/campaigns/events``.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Callable, Set
from typing import Any

import asyncpg
import attrs

from campaignsvc.actors import enrolment
from campaignsvc.actors.accounts import account_schedule
from campaignsvc.actors.bus import Bus
from campaignsvc.actors.messages import (
    AccountChanged,
    CampaignDeactivated,
    ControlMessage,
    LeadsOwed,
    ParticipantsChanged,
)
from campaignsvc.config import Settings
from campaignsvc.domain import schedule as sched
from campaignsvc.domain import steps as st
from campaignsvc.domain.audience import Audience
from campaignsvc.domain.campaign import WINDOW_JITTER_S, step_from_row
from campaignsvc.domain.replies import Intent, ReplyClassifier, RuleClassifier, is_automatic, merged
from campaignsvc.domain.status import ParticipantStatus, Waiting
from campaignsvc.integrations.events import CONSUMED_TYPES, Event
from campaignsvc.logs import get_logger
from campaignsvc.storage import campaigns as campaigns_db
from campaignsvc.storage import do_not_contact as dnc
from campaignsvc.storage import enrolment as enrolment_db
from campaignsvc.storage import lifecycle, outbox, processed_events, replies
from campaignsvc.storage.store import Store
from campaignsvc.usecases import lifecycle as lifecycle_uc
from campaignsvc.usecases.common import Context

log = get_logger(__name__)

# Telegram service accounts whose messages are never replies (as the original): @SpamBot and friends.
BOT_USERNAMES = frozenset(
    {"spambot", "botfather", "gif", "pic", "bing", "wiki", "imdb", "bold", "vote", "like", "gamee", "sticker"}
)
SPAMBOT_TELEGRAM_ID = "178220800"
# The do-not-contact entry of a reply read as "unsubscribe".
UNSUBSCRIBED = "reply_unsubscribe"


@attrs.define
class Effects:
    """What the transaction decided, acted on after the commit."""

    messages: list[ControlMessage] = attrs.field(factory=list)
    duplicate: bool = False
    replied: int = 0
    released: int = 0
    automatic: int = 0

    def tell(self, message: ControlMessage) -> None:
        if message not in self.messages:
            self.messages.append(message)


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _when(data: dict[str, Any], now: dt.datetime) -> dt.datetime:
    raw = data.get("createdAt")
    if isinstance(raw, str):
        try:
            at = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
            if at.tzinfo is not None:
                return min(at, now)
        except ValueError:
            pass
    return now


async def _announce(
    conn: asyncpg.Connection, row: asyncpg.Record, at: dt.datetime, intent: str | None
) -> None:
    """``campaign.participant.replied``: a person answered, with what the reply is taken to mean."""
    await outbox.enqueue(
        conn,
        event_type="campaign.participant.replied",
        organization_id=row["organization_id"],
        data={
            "campaignId": str(row["campaign_id"]),
            "participantId": str(row["id"]),
            "contactId": str(row["contact_id"]),
            "bdAccountId": str(row["bd_account_id"]) if row["bd_account_id"] else None,
            "intent": intent,
            "repliedAt": at.isoformat(),
        },
    )


class InboundHandler:
    """The :class:`campaignsvc.integrations.events.Handler` of this service."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        bus: Bus,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        classifier: ReplyClassifier | None = None,
    ) -> None:
        self._classifier = classifier or RuleClassifier()
        self._store = store
        self._settings = settings
        self._bus = bus
        self._now = now
        self._rng = random.Random()

    @property
    def types(self) -> Set[str]:
        return CONSUMED_TYPES

    async def handle(self, event: Event) -> Effects:
        # Read before the transaction: a classifier may take its time (a model), the lock must not wait.
        intent = None
        if event.type == "message.received" and not is_automatic(event.data):
            intent = await self._classifier.classify(str(event.data.get("content") or ""))
        effects = await self._store.run(self._apply, event, self._now(), intent)
        if effects.replied:
            self._bus.publish(LeadsOwed())
        for message in effects.messages:
            self._bus.publish(message)
        if effects.replied or effects.released:
            log.info(
                "reply.recorded", event_id=str(event.id), replied=effects.replied, released=effects.released
            )
        return effects

    async def _apply(
        self, conn: asyncpg.Connection, event: Event, now: dt.datetime, intent: Intent | None = None
    ) -> Effects:
        effects = Effects()
        if event.type not in CONSUMED_TYPES:
            return effects
        if not await processed_events.claim(conn, event.id, event.type):
            effects.duplicate = True
            return effects
        if event.type == "message.received":
            await self._reply(conn, event, now, effects, intent)
        elif event.type in ("lead.created", "lead.stage.changed"):
            await self._enrol_dynamic(conn, event, now, effects)
        else:
            await self._account_event(conn, event, effects)
        return effects

    # --- replies -------------------------------------------------------------------------------------

    async def _reply(
        self,
        conn: asyncpg.Connection,
        event: Event,
        now: dt.datetime,
        effects: Effects,
        intent: Intent | None = None,
    ) -> None:
        data, org = event.data, event.organization_id
        if str(data.get("direction") or "inbound").lower() != "inbound":
            return  # the account's own message seen through updates: never a reply
        contact_id = _uuid(data.get("contactId"))
        identity = await replies.contact_identity(conn, org, contact_id) if contact_id else None
        username = ((identity["username"] if identity else None) or "").strip().lstrip("@").lower() or None
        telegram_id = ((identity["telegram_id"] if identity else None) or "").strip() or None
        if username in BOT_USERNAMES or telegram_id == SPAMBOT_TELEGRAM_ID:
            return
        channel = data.get("channelId")
        rows = await replies.match_participants(
            conn,
            org,
            contact_id=contact_id if identity else None,
            bd_account_id=_uuid(data.get("bdAccountId")),
            channel_id=str(channel) if channel not in (None, "") else None,
            contact_telegram_id=telegram_id,
            contact_username=username,
        )
        replied_at = _when(data, now)
        if is_automatic(data):
            await self._automatic(conn, rows, replied_at, effects)
            return
        said = intent or Intent.UNKNOWN
        if said == Intent.UNSUBSCRIBE and rows:
            # Nobody in the organization writes to them again: every claim checks the list.
            contacts = [r["contact_id"] for r in rows]
            await dnc.add(
                conn, org, contact_ids=contacts, reason=UNSUBSCRIBED, campaign_id=rows[0]["campaign_id"]
            )
        steps_cache: dict[uuid.UUID, list[st.Step]] = {}
        for row in rows:
            reading = merged(row["reply_intent"], row["reply_intent_by"], said)
            cid = row["campaign_id"]
            if cid not in steps_cache:
                steps_cache[cid] = st.ordered(step_from_row(r) for r in await replies.steps_of(conn, cid))
            steps = steps_cache[cid]
            if row["status"] == ParticipantStatus.REPLIED:
                await replies.note_reply(
                    conn, row["id"], replied_at, reading
                )  # the first reply stays the reply
                continue
            # A failed participant that answers becomes replied like a completed one: retry-failed then
            # leaves it out instead of messaging someone who already answered.
            open_ = row["status"] in (ParticipantStatus.PENDING, ParticipantStatus.SENT)
            if open_ and row["next_send_at"] is None and row["waiting_reason"] == Waiting.REPLY:
                due = st.on_reply(steps, row["current_step"], replied_at)
                if due is not None:
                    schedule = await self._schedule(conn, row)
                    at = sched.place(schedule, max(due.at, now), self._rng, WINDOW_JITTER_S)
                    await replies.release_after_reply(conn, row["id"], replied_at, at, due.index, reading)
                    await _announce(conn, row, replied_at, reading)
                    effects.released += 1
                    effects.tell(ParticipantsChanged(cid))
                    continue
            if (
                open_
                and row["next_send_at"] is not None
                and not st.reply_stops_sequence(steps, row["current_step"])
            ):
                await replies.note_reply(
                    conn, row["id"], replied_at, reading
                )  # released already, waiting out the delay
                continue
            settings = row["lead_creation_settings"] or {}
            lead_due = settings.get("trigger") == "on_reply" and row["pipeline_id"] is not None
            await replies.mark_replied(conn, row["id"], replied_at, lead_due, reading)
            await _announce(conn, row, replied_at, reading)
            effects.replied += 1
            if open_:
                effects.tell(ParticipantsChanged(cid))

    async def _automatic(
        self, conn: asyncpg.Connection, rows: list[asyncpg.Record], at: dt.datetime, effects: Effects
    ) -> None:
        """An away or greeting message, or a business bot's: recorded on each participant it answers; an
        open one's next send is held back by the campaign's pause (its reply wait and an ``after_reply``
        step are left as they are: they wait for the person)."""
        for row in rows:
            open_ = row["status"] in (ParticipantStatus.PENDING, ParticipantStatus.SENT)
            hours = Audience.parse(row["target_audience"]).auto_reply_pause_hours
            hold = at + dt.timedelta(hours=hours) if open_ and hours > 0 else None
            if await replies.note_auto_reply(conn, row["id"], at, hold):
                effects.tell(ParticipantsChanged(row["campaign_id"]))
            effects.automatic += 1

    async def _schedule(self, conn: asyncpg.Connection, row: asyncpg.Record) -> sched.Schedule | None:
        try:
            campaign = sched.Schedule.from_json(row["schedule"])
        except sched.ScheduleError:
            campaign = None
        if campaign is not None:
            return campaign
        account = await replies.account_row(conn, row["bd_account_id"])
        return account_schedule(account) if account is not None else None

    # --- dynamic enrolment ---------------------------------------------------------------------------

    async def _enrol_dynamic(
        self, conn: asyncpg.Connection, event: Event, now: dt.datetime, effects: Effects
    ) -> None:
        data, org = event.data, event.organization_id
        contact = _uuid(data.get("contactId"))
        pipeline = _uuid(data.get("pipelineId"))
        stage = _uuid(data.get("stageId") if event.type == "lead.created" else data.get("toStageId"))
        if contact is None or pipeline is None or stage is None:
            return
        for campaign_id in await replies.dynamic_campaigns(conn, org, pipeline, stage):
            # The campaign row lock orders queue positions with every other writer appending participants.
            if await campaigns_db.get_for_update(conn, org, campaign_id) is None:
                continue
            inserted, _ = await enrolment_db.add_contacts(conn, campaign_id, org, [contact])
            if not inserted:
                continue
            plan = await lifecycle_uc.plan_of(conn, campaign_id, Context(self._settings, now, self._rng))
            try:
                await enrolment.enrol(conn, plan, settings=self._settings, now=now, rng=self._rng)
            except (enrolment.NoSendingAccount, ValueError) as exc:
                log.warning("dynamic_enrolment.skipped", campaign_id=str(campaign_id), error=str(exc))
                continue
            effects.tell(ParticipantsChanged(campaign_id))

    # --- account events ------------------------------------------------------------------------------

    async def _account_event(self, conn: asyncpg.Connection, event: Event, effects: Effects) -> None:
        account = _uuid(event.data.get("bdAccountId"))
        if account is None:
            return
        org = event.organization_id
        if event.type == "bd_account.flood.cleared":
            changed = await replies.flood_cleared(conn, org, account)
        elif event.type == "bd_account.spam.cleared":
            changed = await replies.spam_cleared(conn, org, account)
        else:
            changed = await replies.spam_restricted(conn, org, account, event.data.get("source"))
            if changed:
                for campaign_id in await lifecycle.pause_campaigns_only_on(conn, account, "spam_restricted"):
                    effects.tell(CampaignDeactivated(campaign_id))
        if changed:
            effects.tell(AccountChanged(account))
