"""Watching the demo run: campaign progress and account states from the service's API, sends, flood
waits, failures and replies from the sandbox's records; the closing summary."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from campaignsvc.demo import plan
from campaignsvc.demo.client import Api
from campaignsvc.demo.display import CampaignProgress, Display, account_state, table
from campaignsvc.demo.scenario import Started, capped_out
from campaignsvc.demo.seeding import DemoOrg
from campaignsvc.sandbox import SandboxState

ERROR_TEXT = {
    "privacy": "privacy settings refuse messages",
    "premium": "accepts messages from Premium users only",
    "deactivated": "account deleted",
    "not_found": "user not found",
    "write_forbidden": "cannot be written to",
}


class Monitor:
    def __init__(
        self,
        api: Api,
        sandbox: SandboxState,
        org: DemoOrg,
        campaigns: list[Started],
        display: Display,
        speed: plan.Speed,
    ) -> None:
        self.api = api
        self.sandbox = sandbox
        self.display = display
        self.speed = speed
        self.campaigns = campaigns
        self._names = {c.id: c.name for c in campaigns}
        self._sending = {c.id: {str(org.accounts[k]) for k in c.spec.accounts} for c in campaigns}
        self._accounts = {str(org.accounts[s.key]): f"{s.first_name} {s.last_name}" for s in plan.ACCOUNTS}
        rows = plan.contact_rows()
        self._contacts = {str(cid): rows[i]["display_name"] for i, cid in enumerate(org.contacts)}
        self._received = 0
        self._seen_events: set[int] = set()
        self._status: dict[str, str] = {c.id: "active" for c in campaigns}
        self._capped: set[str] = set()
        self.progress: list[CampaignProgress] = []
        self.throttle: list[dict[str, Any]] = []
        self.replies: Counter[str] = Counter()
        self.stats_available = True

    def _account(self, account_id: str | None) -> str:
        return self._accounts.get(account_id or "", (account_id or "?")[:8])

    def _contact(self, contact_id: str | None) -> str:
        return self._contacts.get(contact_id or "", (contact_id or "?")[:8])

    def _campaign_of(self, key: str | None) -> str:
        parts = (key or "").split(":")
        if len(parts) >= 2 and parts[0] == "campaign":
            return self._names.get(parts[1], parts[1][:8])
        return "?"

    # --- one look at everything -------------------------------------------------------------------------

    async def poll(self, elapsed_s: float) -> bool:
        """Refresh what is shown; True once every campaign has completed or is done for today."""
        self._sandbox_events()
        self.progress = [await self._campaign(c) for c in self.campaigns]
        self.throttle = [a for a in await self.api.throttle() if str(a["bdAccountId"]) in self._accounts]
        capped = capped_out(self.throttle)
        for p in self.progress:
            p.done_for_today = p.status == "active" and self._sending[p.id] <= capped
        now = dt.datetime.now(dt.UTC)
        self._state_changes(now)
        self.display.progress(elapsed_s, self.progress, self.throttle, now)
        return all(p.settled for p in self.progress)

    async def _campaign(self, started: Started) -> CampaignProgress:
        stats = await self.api.stats(started.id) if self.stats_available else None
        detail = await self.api.campaign(started.id)
        if stats is None:
            self.stats_available = False
            messages = sum(
                1
                for m in self.sandbox.messages
                if self._campaign_of((m.get("metadata") or {}).get("idempotencyKey")) == started.name
            )
            return CampaignProgress.from_detail(detail, messages)
        return CampaignProgress.from_stats(started.id, started.name, detail["status"], stats)

    def _state_changes(self, now: dt.datetime) -> None:
        for p in self.progress:
            if p.label != self._status.get(p.id):
                self._status[p.id] = p.label
                if p.status == "completed":
                    self.display.event(now, "✓", f"{p.name} completed", "replied")
                elif p.done_for_today:
                    left = "" if p.waiting is None else f": {p.waiting} participant(s) wait for tomorrow"
                    self.display.event(now, "■", f"{p.name} is done for today (daily cap){left}", "cap")
        for a in self.throttle:
            kind, _ = account_state(a, now)
            account = str(a["bdAccountId"])
            if kind == "cap" and account not in self._capped:
                self._capped.add(account)
                self.display.event(
                    now,
                    "■",
                    f"{a['displayName']} reached the daily cap ({a['dailyCap']}): done for today",
                    "cap",
                )

    def _sandbox_events(self) -> None:
        received = self.sandbox.received
        while self._received < len(received) and received[self._received].status is not None:
            record = received[self._received]
            self._received += 1
            at = record.received_at
            if record.outcome == "flood_wait":
                wait = self.sandbox.config.flood_wait_s
                real = wait * self.speed.factor / 3600
                self.display.event(
                    at,
                    "⚡",
                    f"FLOOD_WAIT for {self._account(record.bd_account_id)}: blocked {wait:g}s "
                    f"(≈{real:g} h at real pace) [{self._campaign_of(record.idempotency_key)}]",
                    "flood",
                )
            elif record.outcome in ERROR_TEXT or record.outcome in ("not_mutual_contact", "premium_required"):
                text = ERROR_TEXT.get(record.outcome or "", record.outcome)
                self.display.event(
                    at,
                    "✗",
                    f"{self._contact(record.contact_id)}: {text} [{self._campaign_of(record.idempotency_key)}]",
                    "failed",
                )
        for event in self.sandbox.events:
            if event.kind != "reply" or event.seq in self._seen_events or event.status == "scheduled":
                continue
            self._seen_events.add(event.seq)
            data = event.envelope.get("data", {})
            if event.status == "delivered":
                self.replies[str(data.get("bdAccountId"))] += 1
                self.display.event(
                    event.delivered_at or dt.datetime.now(dt.UTC),
                    "↩",
                    f"{self._contact(data.get('contactId'))} replied to {self._account(data.get('bdAccountId'))}",
                    "replied",
                )
            elif event.status == "failed":
                self.display.event(
                    dt.datetime.now(dt.UTC),
                    "!",
                    f"a reply could not be delivered: {event.last_error}",
                    "failed",
                )

    # --- the end ---------------------------------------------------------------------------------------

    def messages_by_step(self) -> dict[str, Counter[int]]:
        """Messages the sandbox delivered, per campaign id and step (read from their idempotency keys)."""
        out: dict[str, Counter[int]] = {}
        for m in self.sandbox.messages:
            parts = str((m.get("metadata") or {}).get("idempotencyKey") or "").split(":")
            if len(parts) == 6 and parts[0] == "campaign" and parts[1] in self._names:
                out.setdefault(parts[1], Counter())[int(parts[5])] += 1
        return out

    def summary(self) -> list[str]:
        by_step = self.messages_by_step()
        rows = []
        for p, started in zip(self.progress, self.campaigns, strict=True):
            steps = by_step.get(p.id, Counter())
            split = "+".join(str(steps.get(i, 0)) for i in range(len(started.spec.steps)))
            rows.append(
                [p.name, p.participants, p.messages, split, p.contacted, p.replied, p.failed, p.skipped]
            )
            rows[-1] += [p.waiting, p.label]
        headers = [
            "campaign",
            "participants",
            "messages",
            "by step",
            "contacted",
            "replied",
            "failed",
            "skipped",
        ]
        lines = ["Campaigns", *("  " + line for line in table([*headers, "waiting", "status"], rows))]
        if any(p.done_for_today for p in self.progress):
            lines.append(
                "  done for today: its accounts used their daily caps; the rest would go out tomorrow"
            )
        if not self.stats_available:
            lines.append(
                "  (failed/skipped/waiting need GET /api/campaigns/:id/stats, not served by this build)"
            )
        accounts = self.sandbox.stats()["accounts"]
        rows = []
        for a in self.throttle:
            account = str(a["bdAccountId"])
            counters = accounts.get(account, {})
            cap = a.get("dailyCap") or 0
            rows.append(
                [
                    a["displayName"],
                    counters.get("sent", 0),
                    counters.get("flood", 0),
                    counters.get("errors", 0),
                    self.replies.get(account, 0),
                    f"{a.get('sentToday', 0)}/{cap if cap else '∞'}",
                    account_state(a, dt.datetime.now(dt.UTC))[1],
                ]
            )
        lines += ["", "Accounts"]
        headers = ["account", "sends", "flood blocks", "errors", "replies", "sent today/cap", "state"]
        lines += ["  " + line for line in table(headers, rows)]
        return lines
