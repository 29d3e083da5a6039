"""The sandbox's memory and its rules: records, idempotency, pacing and the seeded choices. No I/O.

:class:`Ledger` holds everything recorded since the last reset; :class:`SandboxState` holds the config,
the random streams and the current ledger, and decides what each send gets (:meth:`SandboxState.admit`).
A reset swaps in a fresh ledger, so work still in progress from before the reset lands in the old one
and cannot leak into the new.

Separate random streams keep choices independent: turning on latency jitter or echoes does not change
which requests fail, and whether a recipient replies depends only on the seed and its channelId. Ids are
not seeded: callers store them, so they stay unique across runs.
"""

from __future__ import annotations

import datetime as dt
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import attrs
import trio

from campaignsvc.sandbox.answers import Verdict, wait_seconds
from campaignsvc.sandbox.config import SandboxConfig
from campaignsvc.sandbox.records import AccountState, EventRecord, ReceivedRecord, SendRequest

Key = tuple[str | None, str]
# Answered by the Messaging Service itself; these do not count against the account.
_NOT_SENT = frozenset(
    {"validation", "unauthorized", "unsupported_channel", "bd_account_required", "not_running"}
)


def _wall_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@attrs.define(eq=False)
class Flight:
    """A send in progress; requests repeating its idempotency key wait for it."""

    done: trio.Event = attrs.field(factory=trio.Event)
    status: int = 500
    body: dict[str, Any] | None = None

    def resolve(self, status: int, body: dict[str, Any]) -> None:
        self.status, self.body = status, body
        self.done.set()


class AfterDelivery(Protocol):
    def __call__(self, ledger: Ledger, request: SendRequest, row: dict[str, Any]) -> None: ...


@attrs.define
class Runtime:
    """What a running sandbox lends its routes: the nursery that owns sends and events past the request
    that caused them, and the hook that schedules replies and echoes."""

    nursery: trio.Nursery
    after_delivery: AfterDelivery


class Ledger:
    """Everything recorded since the last reset."""

    def __init__(self, notify: Callable[[], None]) -> None:
        self._notify = notify
        self.received: list[ReceivedRecord] = []
        self.events: list[EventRecord] = []
        self.messages: list[dict[str, Any]] = []
        self.rows_by_key: dict[Key, dict[str, Any]] = {}
        self.flights: dict[Key, Flight] = {}
        self.accounts: dict[str, AccountState] = {}
        self.replied: set[tuple[str, str]] = set()
        self.by_status: Counter[int] = Counter()
        self.by_outcome: Counter[str] = Counter()

    def account(self, bd_account_id: str) -> AccountState:
        state = self.accounts.get(bd_account_id)
        if state is None:
            state = self.accounts[bd_account_id] = AccountState()
        return state

    def receive(self, headers: Mapping[str, str], body: Any, at: dt.datetime) -> ReceivedRecord:
        fields = body if isinstance(body, dict) else {}

        def text(name: str) -> str | None:
            value = fields.get(name)
            return value if isinstance(value, str) else None

        record = ReceivedRecord(
            seq=len(self.received) + 1,
            received_at=at,
            received_mono=time.monotonic(),
            organization_id=headers.get("x-organization-id") or None,
            user_id=headers.get("x-user-id") or None,
            correlation_id=headers.get("x-correlation-id") or None,
            bd_account_id=text("bdAccountId"),
            contact_id=text("contactId") or None,
            channel_id=text("channelId"),
            idempotency_key=text("idempotencyKey"),
            source=text("source"),
            content=text("content"),
        )
        self.received.append(record)
        return record

    def finish(
        self,
        record: ReceivedRecord,
        status: int,
        outcome: str,
        *,
        row: dict[str, Any] | None = None,
        replay: bool = False,
    ) -> None:
        record.status, record.outcome, record.replay = status, outcome, replay
        record.message_id = None if row is None else row["id"]
        record.answered_mono = time.monotonic()
        self.by_status[status] += 1
        self.by_outcome[outcome] += 1
        if record.bd_account_id is not None and outcome not in _NOT_SENT:
            account = self.account(record.bd_account_id)
            account.requests += 1
            if replay:
                account.replays += 1
            elif outcome == "flood_wait":
                account.flood += 1
            elif outcome == "peer_flood":
                account.peer_flood += 1
            elif status >= 300:
                account.errors += 1
        self._notify()

    def add_event(self, kind: str, envelope: dict[str, Any], due_mono: float) -> EventRecord:
        event = EventRecord(seq=len(self.events) + 1, kind=kind, envelope=envelope, due_mono=due_mono)
        self.events.append(event)
        self._notify()
        return event

    def event_changed(self) -> None:
        self._notify()


class SandboxState:
    """Config, seeded choices and the current :class:`Ledger`; what tests and benchmarks read directly.

    ``clock`` (seconds, default ``trio.current_time``) measures pacing and reply delays; ``wall`` stamps
    rows and events.
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        clock: Callable[[], float] = trio.current_time,
        wall: Callable[[], dt.datetime] = _wall_now,
    ) -> None:
        self.config = config if config is not None else SandboxConfig()
        self.clock = clock
        self.wall = wall
        self.runtime: Runtime | None = None
        self._telegram_id_base = int(time.time()) % 1_000_000 * 1_000
        self._telegram_ids: Counter[str] = Counter()
        self._changed = trio.Event()
        self._reseed()
        self.ledger = Ledger(self._notify)

    # -- reading -------------------------------------------------------------------------------------

    @property
    def received(self) -> list[ReceivedRecord]:
        return self.ledger.received

    @property
    def events(self) -> list[EventRecord]:
        return self.ledger.events

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The delivered message rows, in delivery order."""
        return self.ledger.messages

    def received_json(self, *, bd_account_id: str | None = None, since_seq: int = 0) -> list[dict[str, Any]]:
        return [
            r.to_json()
            for r in self.ledger.received[max(since_seq, 0) :]
            if bd_account_id is None or r.bd_account_id == bd_account_id
        ]

    def stats(self) -> dict[str, Any]:
        ledger = self.ledger
        return {
            "requests": len(ledger.received),
            "pending": sum(1 for r in ledger.received if r.status is None),
            "delivered": len(ledger.messages),
            "byStatus": {str(status): n for status, n in sorted(ledger.by_status.items())},
            "byOutcome": dict(sorted(ledger.by_outcome.items())),
            "accounts": {acc: state.counters() for acc, state in sorted(ledger.accounts.items())},
            "events": dict(sorted(Counter(e.status for e in ledger.events).items())),
        }

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds; it is re-checked after every recorded change."""
        while not predicate():
            await self._changed.wait()

    # -- changing ------------------------------------------------------------------------------------

    def update_config(self, patch: Mapping[str, Any]) -> SandboxConfig:
        """Apply a JSON patch of the config (raises ``ConfigPatchError``); a new seed reseeds."""
        new = self.config.patched(patch)
        reseed = new.seed != self.config.seed
        self.config = new
        if reseed:
            self._reseed()
        self._notify()
        return new

    def reset(self) -> None:
        """Forget everything recorded and restart the random streams from the seed."""
        self.ledger = Ledger(self._notify)
        self._reseed()
        self._notify()

    def _reseed(self) -> None:
        seed = self.config.seed
        self._failure_rng = random.Random(f"{seed}:failures")
        self._latency_rng = random.Random(f"{seed}:latency")
        self._echo_rng = random.Random(f"{seed}:echo")

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    # -- deciding ------------------------------------------------------------------------------------

    def admit(self, ledger: Ledger, request: SendRequest) -> Verdict:
        """Decide what this send gets, as Telegram would at the moment it arrives; an accepted send takes
        the account's pacing slot now."""
        config = self.config
        now = self.clock()
        account = ledger.account(request.bd_account_id)
        kind = config.account_errors.get(request.bd_account_id)
        if kind is not None:
            return Verdict.account_error(kind)
        if now < account.flood_until:
            return Verdict.flood_wait(wait_seconds(account.flood_until - now, config.flood_wait_s))
        gap = config.account_min_gap_s
        if gap > 0 and account.last_accepted is not None and now - account.last_accepted < gap:
            account.flood_until = now + config.flood_wait_s
            return Verdict.flood_wait(wait_seconds(config.flood_wait_s, config.flood_wait_s))
        if request.bd_account_id in config.peer_flood_accounts or (
            config.peer_flood_after is not None and account.sent >= config.peer_flood_after
        ):
            return Verdict.peer_flood()
        kind = config.recipient_errors.get(request.channel_id)
        if kind is None and request.contact_id is not None:
            kind = config.recipient_errors.get(request.contact_id)
        if kind is not None:
            return Verdict.recipient_error(kind)
        roll = self._failure_rng.random()
        if roll < config.error_rate:
            return Verdict.downstream_error()
        roll -= config.error_rate
        if roll < config.timeout_rate:
            verdict = Verdict.timeout()
        elif roll - config.timeout_rate < config.abort_rate:
            verdict = Verdict.abort()
        else:
            verdict = Verdict.sent()
        account.last_accepted = now
        account.sent += 1
        return verdict

    def latency_s(self) -> float:
        config = self.config
        jitter = self._latency_rng.uniform(-config.jitter_ms, config.jitter_ms) if config.jitter_ms else 0.0
        return max(0.0, config.latency_ms + jitter) / 1000.0

    def wants_echo(self) -> bool:
        return self.config.echo_rate > 0 and self._echo_rng.random() < self.config.echo_rate

    def reply_delay(self, channel_id: str) -> float | None:
        """Seconds until this recipient replies, or None if it does not; the same for a given seed."""
        rng = random.Random(f"{self.config.seed}:reply:{channel_id}")
        if rng.random() >= self.config.reply_rate:
            return None
        return rng.uniform(*self.config.reply_delay_s)

    def new_id(self) -> str:
        # Not seeded: ids must stay unique across runs and resets, since callers store them.
        return str(uuid.uuid4())

    def next_telegram_id(self, bd_account_id: str) -> str:
        """The account's next Telegram message id; increasing across resets and (to the second) restarts."""
        self._telegram_ids[bd_account_id] += 1
        return str(self._telegram_id_base + self._telegram_ids[bd_account_id])

    def deliver(self, ledger: Ledger, request: SendRequest) -> dict[str, Any]:
        """The message reached Telegram: record its ``messages`` row (original-v1 §5.3) and return it."""
        now = self.wall()
        row: dict[str, Any] = {
            "id": self.new_id(),
            "organization_id": request.organization_id,
            "contact_id": request.contact_id,
            "bd_account_id": request.bd_account_id,
            "channel": request.channel,
            "channel_id": request.channel_id,
            "direction": "outbound",
            "content": request.content or "",
            "status": "delivered",
            "unread": False,
            "metadata": {
                "sentBy": request.user_id,
                "idempotencyKey": request.idempotency_key,
                "source": request.source,
            },
            "sent_at": now,
            "created_at": now,
            "updated_at": now,
            "telegram_message_id": self.next_telegram_id(request.bd_account_id),
            "telegram_date": now.replace(microsecond=0),
            "loaded_at": None,
            "reply_to_telegram_id": request.reply_to_message_id,
            "telegram_entities": None,
            "telegram_media": {"fileName": request.file_name} if request.has_file else None,
            "telegram_extra": {},
            "our_reactions": None,
            "reactions": None,
        }
        ledger.messages.append(row)
        if request.key is not None:
            ledger.rows_by_key[request.key] = row
        return row
