"""Reporting rules (original-v1 §2.8, §2.9): a participant's phase, the campaign's KPIs, the name a contact
is shown by. Pure: the caller brings the counts and totals it read; the HTTP layer names the JSON fields.

The phase is the front end's ``status_phase``; storage/reporting's participant filters are the same rule in
SQL, built from ``TERMINAL`` and ``DONE``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import attrs

from campaignsvc.domain.status import ParticipantStatus as P

# Participant statuses after which nothing more is sent, and those of them that mean "the sequence ran
# out" (vs. replied / failed). The phases are the front end's vocabulary (status_phase).
TERMINAL = (P.FAILED, P.REPLIED, P.COMPLETED, P.STOPPED, P.SKIPPED)
DONE = (P.COMPLETED, P.STOPPED, P.SKIPPED)
PHASES = ("waiting", "sent", "read", "replied", "completed", "skipped", "failed")


def phase_of(status: str, sent: bool, read: bool) -> str:
    """The participant's status_phase: ``sent`` is "a first message went out", ``read`` "the latest
    message sent was read"."""
    if status in (P.FAILED, P.REPLIED):
        return status
    if status in DONE:
        return "completed" if sent else "skipped"
    if sent:
        return "read" if read else "sent"
    return "waiting"


def is_read(status: str, sent: bool, marked: bool) -> bool:
    """The latest message sent was read: a read mark, or a reply to a message sent (a reply is read by
    definition)."""
    return marked or (sent and status == P.REPLIED)


def js_round(value: float, digits: int = 0) -> float:
    """``Math.round(value · 10^digits) / 10^digits``, as the original computed its rates: halves go up
    (towards +∞, so -2.5 → -2), not to even as Python's ``round`` does."""
    scale: float = 10**digits  # an int at run time, as before; typed so the quotient is a float
    return math.floor(value * scale + 0.5) / scale


def rate(part: float, whole: float, digits: int = 1) -> float:
    """``part`` as a percentage of ``whole``, rounded to ``digits``; 0 (the int, shown as ``0``) when
    ``whole`` is 0."""
    return js_round(part / whole * 100, digits) if whole else 0


def per(amount: float, count: float, digits: int = 2) -> float:
    """``amount / count`` rounded to ``digits``; 0 (the int) when ``count`` is 0."""
    return js_round(amount / count, digits) if count else 0


def contact_name(
    display_name: str | None,
    first_name: str | None,
    last_name: str | None,
    username: str | None,
    telegram_id: str | None,
) -> str:
    """The contact's display name, else its first and last name, else its username, else its Telegram id;
    "" when it has none of them."""
    full = " ".join(p for p in ((first_name or "").strip(), (last_name or "").strip()) if p)
    for candidate in ((display_name or "").strip(), full, username, telegram_id):
        if candidate:
            return candidate
    return ""


@attrs.frozen
class ParticipantCounts:
    """A campaign's participants per status: all of them, those sent to (a first message went out), and
    those with a read mark."""

    all: Mapping[str, int] = attrs.field(factory=dict)
    sent: Mapping[str, int] = attrs.field(factory=dict)
    read: Mapping[str, int] = attrs.field(factory=dict)

    @classmethod
    def of(cls, rows: Iterable[tuple[str, str, int]]) -> ParticipantCounts:
        """From ``(kind, status, n)`` rows, kind one of ``all``, ``sent``, ``read``."""
        by: dict[str, dict[str, int]] = {"all": {}, "sent": {}, "read": {}}
        for kind, status, n in rows:
            by[kind][status] = n
        return cls(all=by["all"], sent=by["sent"], read=by["read"])


@attrs.frozen
class Outcomes:
    """What the campaign's conversations led to: shared chats, won and lost deals, the revenue of the won
    ones, and the average hours from the first send to the shared chat and to the win (None: none)."""

    shared: int = 0
    won: int = 0
    lost: int = 0
    revenue: float = 0.0
    hours_to_shared: float | None = None
    hours_to_won: float | None = None


@attrs.frozen
class Kpis:
    """The campaign's numbers. Rates are percentages rounded to one decimal (``replied_percent`` to a whole
    number), money per participant to two, hours to one; a rate or amount over nothing is 0."""

    total: int
    by_status: Mapping[str, int]
    by_phase: Mapping[str, int]
    failed: int
    sent: int
    read: int
    replied: int
    shared: int
    won: int
    lost: int
    revenue: float
    replied_percent: int  # replied / total
    read_rate: float  # read / sent
    reply_rate: float  # replied / read
    conversion_rate: float  # shared / replied
    win_rate: float  # won / replied
    revenue_per_sent: float
    revenue_per_reply: float
    revenue_per_won: float
    hours_to_shared: float | None
    hours_to_won: float | None


def phase_counts(counts: ParticipantCounts) -> dict[str, int]:
    """Participants per phase, every phase present, in ``PHASES`` order. A read mark counts only for a
    participant sent to."""
    phases = dict.fromkeys(PHASES, 0)
    for status, n in counts.all.items():
        sent = counts.sent.get(status, 0)
        read = min(counts.read.get(status, 0), sent)
        phases[phase_of(status, True, True)] += read
        phases[phase_of(status, True, False)] += sent - read
        phases[phase_of(status, False, False)] += n - sent
    return phases


def kpis(counts: ParticipantCounts, outcomes: Outcomes) -> Kpis:
    total = sum(counts.all.values())
    replied = counts.all.get("replied", 0)
    sent = sum(counts.sent.values())
    # A reply is read by definition; the CRM's read receipts count for everyone else.
    read = sum(n for s, n in counts.read.items() if s != "replied") + counts.sent.get("replied", 0)
    shared, won, revenue = outcomes.shared, outcomes.won, outcomes.revenue
    return Kpis(
        total=total,
        by_status=counts.all,
        by_phase=phase_counts(counts),
        failed=counts.all.get("failed", 0),
        sent=sent,
        read=read,
        replied=replied,
        shared=shared,
        won=won,
        lost=outcomes.lost,
        revenue=revenue,
        replied_percent=int(rate(replied, total, 0)),
        read_rate=rate(read, sent),
        reply_rate=rate(replied, read),
        conversion_rate=rate(shared, replied),
        win_rate=rate(won, replied),
        revenue_per_sent=per(revenue, sent),
        revenue_per_reply=per(revenue, replied),
        revenue_per_won=per(revenue, won),
        hours_to_shared=None if outcomes.hours_to_shared is None else js_round(outcomes.hours_to_shared, 1),
        hours_to_won=None if outcomes.hours_to_won is None else js_round(outcomes.hours_to_won, 1),
    )
