"""What the demo shows in the terminal: a live block of progress bars and account states (redrawn in place
on a terminal, printed now and then otherwise), events as they happen, and the closing summary.

Plain ANSI escapes; colour only on a terminal and without ``NO_COLOR``.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import attrs

BAR_WIDTH = 30
PLAIN_EVERY_S = 5.0


@attrs.define
class CampaignProgress:
    id: str
    name: str
    status: str
    participants: int = 0
    contacted: int = 0
    messages: int = 0
    replied: int = 0
    failed: int | None = None
    skipped: int | None = None
    waiting: int | None = None
    # Active, but every account of it has used its daily cap: nothing more goes out today.
    done_for_today: bool = False

    @property
    def label(self) -> str:
        return "done for today" if self.done_for_today and self.status == "active" else self.status

    @property
    def settled(self) -> bool:
        return self.status == "completed" or self.done_for_today

    @classmethod
    def from_stats(cls, cid: str, name: str, status: str, stats: dict[str, Any]) -> CampaignProgress:
        phase = stats.get("byPhase") or {}
        by_status = stats.get("byStatus") or {}
        failed = phase.get("failed", by_status.get("failed"))
        return cls(
            id=cid,
            name=name,
            status=status,
            participants=int(stats.get("total", 0)),
            contacted=int(stats.get("contactsSent", stats.get("total_sent", 0))),
            messages=int(stats.get("totalSends", 0)),
            replied=int(phase.get("replied", stats.get("total_replied", 0))),
            failed=None if failed is None else int(failed),
            skipped=phase.get("skipped"),
            waiting=phase.get("waiting"),
        )

    @classmethod
    def from_detail(cls, detail: dict[str, Any], messages: int) -> CampaignProgress:
        """Without the stats endpoint: the KPIs of the campaign detail (no failed/skipped split)."""
        return cls(
            id=str(detail["id"]),
            name=detail["name"],
            status=detail["status"],
            participants=int(detail.get("total_participants") or 0),
            contacted=int(detail.get("total_sent") or 0),
            messages=messages,
            replied=int(detail.get("total_replied") or 0),
        )

    def segments(self) -> tuple[int, int, int, int, int]:
        """(replied, contacted without reply, failed, skipped, waiting); they add up to participants."""
        failed = self.failed or 0
        skipped = self.skipped or 0
        replied = min(self.replied, self.participants)
        if self.waiting is not None:
            waiting = self.waiting
            contacted = max(0, self.participants - replied - failed - skipped - waiting)
        else:
            contacted = max(0, min(self.contacted, self.participants) - replied)
            waiting = max(0, self.participants - replied - contacted - failed - skipped)
        return replied, contacted, failed, skipped, waiting


def account_state(item: dict[str, Any], now: dt.datetime) -> tuple[str, str]:
    """(kind, label) of a throttle item: what the account is doing, for people."""
    state = item.get("state", "idle")
    cap = item.get("dailyCap") or 0
    if state == "restricted":
        return "restricted", "restricted"
    if state == "flood_blocked":
        until = _parse(item.get("blockedUntil"))
        left = f" ({(until - now).total_seconds():.1f}s left)" if until and until > now else ""
        when = until.astimezone().strftime("%H:%M:%S") if until else "?"
        return "flood", f"FLOOD_WAIT until {when}{left}"
    if state == "daily_cap" or (cap and item.get("sentToday", 0) >= cap):
        return "cap", "daily cap reached"
    if state == "sending":
        return "sending", "sending"
    if state == "waiting_gap":
        nxt = _parse(item.get("nextAllowedAt"))
        left = f" (next in {max(0.0, (nxt - now).total_seconds()):.1f}s)" if nxt else ""
        return "gap", f"waiting for gap{left}"
    return "idle", "idle"


def _parse(value: Any) -> dt.datetime | None:
    if not value:
        return None
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


_COLORS = {
    "replied": "32",
    "contacted": "34",
    "failed": "31",
    "skipped": "90",
    "flood": "1;31",
    "cap": "33",
    "sending": "32",
    "gap": "36",
    "idle": "90",
    "restricted": "35",
    "bold": "1",
    "dim": "2",
}


class Display:
    def __init__(self, out: TextIO | None = None, *, live: bool | None = None) -> None:
        self.out = out or sys.stdout
        self.live = self.out.isatty() if live is None else live
        self.color = self.live and not os.environ.get("NO_COLOR")
        self._drawn = 0
        self._block: list[str] = []
        self._last_plain = -PLAIN_EVERY_S

    def paint(self, text: str, what: str) -> str:
        if not self.color:
            return text
        return f"\x1b[{_COLORS[what]}m{text}\x1b[0m"

    # --- output ---------------------------------------------------------------------------------------

    def _erase(self) -> None:
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def _draw(self) -> None:
        for line in self._block:
            self.out.write(line + "\n")
        self._drawn = len(self._block)

    def line(self, text: str = "") -> None:
        """A line that stays (above the live block)."""
        if self.live:
            self._erase()
            self.out.write(text + "\n")
            self._draw()
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def event(self, at: dt.datetime, symbol: str, text: str, what: str = "bold") -> None:
        self.line(f"  {at.astimezone().strftime('%H:%M:%S')} {self.paint(symbol, what)} {text}")

    def progress(
        self,
        elapsed_s: float,
        campaigns: Sequence[CampaignProgress],
        accounts: Sequence[dict[str, Any]],
        now: dt.datetime,
    ) -> None:
        if self.live:
            self._block = self._live_block(elapsed_s, campaigns, accounts, now)
            self._erase()
            self._draw()
            self.out.flush()
        elif elapsed_s - self._last_plain >= PLAIN_EVERY_S:
            self._last_plain = elapsed_s
            parts = [
                f"{c.name}: {c.contacted}/{c.participants} contacted, {c.replied} replied" for c in campaigns
            ]
            self.line(f"  [{_clock(elapsed_s)}] " + " | ".join(parts))

    def freeze(self) -> None:
        """Leave the live block on screen as plain lines; later output goes below it."""
        self._drawn = 0
        self._block = []

    def _bar(self, c: CampaignProgress) -> str:
        total = max(c.participants, 1)
        parts = zip(c.segments(), ("replied", "contacted", "failed", "skipped", "dim"), "█▓▒░·", strict=True)
        cells = []
        used = 0
        for i, (count, what, char) in enumerate(parts):
            width = BAR_WIDTH - used if i == 4 else round(count * BAR_WIDTH / total)
            width = max(0, min(width, BAR_WIDTH - used))
            used += width
            if width:
                cells.append(self.paint(char * width, what))
        return "[" + "".join(cells) + "]"

    def _live_block(
        self,
        elapsed_s: float,
        campaigns: Sequence[CampaignProgress],
        accounts: Sequence[dict[str, Any]],
        now: dt.datetime,
    ) -> list[str]:
        name_w = max([len(c.name) for c in campaigns] + [8])
        lines = ["", self.paint(f"  Campaigns  ({_clock(elapsed_s)})", "bold")]
        for c in campaigns:
            extra = []
            if c.failed:
                extra.append(self.paint(f"{c.failed} failed", "failed"))
            if c.skipped:
                extra.append(self.paint(f"{c.skipped} skipped", "skipped"))
            tail = ", ".join(extra)
            lines.append(
                f"  {c.name:<{name_w}} {self._bar(c)} {c.contacted:>3}/{c.participants:<3} contacted  "
                f"{self.paint(f'{c.replied} replied', 'replied')}"
                + (f", {tail}" if tail else "")
                + f"  {self.paint(c.label, 'dim')}"
            )
        lines.append(self.paint("  Accounts", "bold"))
        acc_w = max([len(a.get("displayName", "")) for a in accounts] + [8])
        for a in accounts:
            kind, label = account_state(a, now)
            cap = a.get("dailyCap") or 0
            queue = sum((a.get("queueDepth") or {}).values())
            lines.append(
                f"  {a.get('displayName', ''):<{acc_w}} {self.paint(f'{label:<34}', kind)} "
                f"sent today {a.get('sentToday', 0):>3}/{cap if cap else '∞'}"
                + (f"  queue {queue}" if queue else "")
            )
        return lines


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A plain text table: the first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [["—" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def fmt(row: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return [fmt(cells[0]), rule, *(fmt(r) for r in cells[1:])]
