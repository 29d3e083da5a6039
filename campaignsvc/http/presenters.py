"""Shaping rows into the original's response objects."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from campaignsvc.http.identity import Identity


def account_display_name(account: Mapping[str, Any]) -> str:
    """First non-empty of display name, "first last", username, phone, telegram id, id[:8] (§2.2)."""
    full = " ".join(
        part
        for part in ((account.get("first_name") or "").strip(), (account.get("last_name") or "").strip())
        if part
    )
    for candidate in (
        (account.get("display_name") or "").strip(),
        full,
        (account.get("username") or "").strip(),
        (account.get("phone_number") or "").strip(),
        (account.get("telegram_id") or "").strip(),
    ):
        if candidate:
            return candidate
    return str(account["id"])[:8]


def bd_account_object(account: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": account["id"],
        "displayName": account_display_name(account),
        "floodWaitUntil": account.get("flood_wait_until"),
        "floodWaitSeconds": account.get("flood_wait_seconds"),
        "floodReason": account.get("flood_reason"),
        "floodLastAt": account.get("flood_last_at"),
        "spamRestrictedAt": account.get("spam_restricted_at"),
        "spamRestrictionSource": account.get("spam_restriction_source"),
        "peerFloodCount1h": account.get("peer_flood_count_1h"),
        "photoFileId": account.get("photo_file_id"),
        "isActive": account.get("is_active"),
        "connectionState": account.get("connection_state"),
        "firstName": account.get("first_name"),
        "lastName": account.get("last_name"),
        "username": account.get("username"),
        "phoneNumber": account.get("phone_number"),
        "telegramId": account.get("telegram_id"),
    }


def visible_accounts(identity: Identity, accounts: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Role scope of BD accounts: viewers see none, agents their own, everyone else all."""
    scope = identity.account_scope
    if scope == "none":
        return []
    if scope == "own":
        return [a for a in accounts if a.get("created_by_user_id") == identity.user_id]
    return list(accounts)
