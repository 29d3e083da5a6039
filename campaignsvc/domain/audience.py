"""A campaign's audience (``campaigns.target_audience``) as the service reads it, parsed once.

The stored JSON keeps every key the client sent (unknown ones included, original-v1 §2.7); this type is the
service's reading of it: which contacts, which BD accounts in which order, the gap between two sends of an
account, the daily target and the reply wait. Values stored by older versions without validation are read
leniently (a malformed id is left out, an out-of-range gap clamped), never an error at send time.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

DEFAULT_GAP_S = 60.0
MAX_GAP_S = 86_400.0
# How long an automatic answer (away message, business bot) holds the participant's next send back.
DEFAULT_AUTO_REPLY_PAUSE_HOURS = 24.0


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return min(max(float(value), 0.0), MAX_GAP_S)


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _uuids(values: Iterable[Any]) -> tuple[uuid.UUID, ...]:
    out: dict[uuid.UUID, None] = {}
    for value in values:
        try:
            out.setdefault(uuid.UUID(str(value)))
        except ValueError:
            continue
    return tuple(out)


def _uuid(value: Any) -> uuid.UUID | None:
    found = _uuids([value]) if value else ()
    return found[0] if found else None


@attrs.frozen
class Audience:
    stored: Mapping[str, Any] = attrs.field(hash=False)
    account_ids: tuple[uuid.UUID, ...]
    contact_ids: tuple[uuid.UUID, ...]
    limit: int | None
    company_id: uuid.UUID | None
    pipeline_id: uuid.UUID | None
    only_new: bool
    gap_min_s: float
    gap_max_s: float
    daily_target: int | None
    reply_wait_hours: float | None
    auto_reply_pause_hours: float = DEFAULT_AUTO_REPLY_PAUSE_HOURS

    @classmethod
    def parse(cls, stored: Mapping[str, Any] | None) -> Audience:
        raw = dict(stored or {})
        accounts = raw.get("bdAccountIds") or ([raw["bdAccountId"]] if raw.get("bdAccountId") else [])
        given = raw.get("filters")
        filters: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
        wait = raw.get("replyWaitHours")
        pause = raw.get("autoReplyPauseHours")
        low, high = gap_range(raw)
        return cls(
            stored=raw,
            account_ids=_uuids(accounts if isinstance(accounts, list) else []),
            contact_ids=_uuids(raw.get("contactIds") or []),
            limit=_positive_int(raw.get("limit")),
            company_id=_uuid(filters.get("companyId")),
            pipeline_id=_uuid(filters.get("pipelineId")),
            only_new=bool(raw.get("onlyNew")),
            gap_min_s=low,
            gap_max_s=high,
            daily_target=_positive_int(raw.get("dailySendTarget")),
            reply_wait_hours=float(wait) if isinstance(wait, (int, float)) else None,
            auto_reply_pause_hours=(
                min(max(float(pause), 0.0), 720.0)
                if isinstance(pause, (int, float)) and not isinstance(pause, bool)
                else DEFAULT_AUTO_REPLY_PAUSE_HOURS
            ),
        )

    def without_account(self, account_id: uuid.UUID) -> dict[str, Any]:
        """The stored JSON with ``account_id`` taken out of its accounts (as ``bdAccountIds``)."""
        stored = dict(self.stored)
        stored.pop("bdAccountId", None)
        stored["bdAccountIds"] = [str(a) for a in self.account_ids if a != account_id]
        return stored


def gap_range(audience: Mapping[str, Any]) -> tuple[float, float]:
    """The gap between two sends of one account, as v1 resolved it: a ``[sendDelayMinSeconds,
    sendDelayMaxSeconds]`` range, else a fixed ``sendDelaySeconds``, else 60 s."""
    low, high = _number(audience.get("sendDelayMinSeconds")), _number(audience.get("sendDelayMaxSeconds"))
    if low is not None and high is not None:
        return (min(low, high), max(low, high))
    fixed = _number(audience.get("sendDelaySeconds"))
    if fixed is not None:
        return (fixed, fixed)
    return (DEFAULT_GAP_S, DEFAULT_GAP_S)
