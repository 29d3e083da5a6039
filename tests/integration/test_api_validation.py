"""Input that JSON or a URL allows but PostgreSQL cannot store is a 400 at the edge, never a 500: NUL
characters (in text and jsonb) and non-finite numbers (in jsonb). Found by the fuzz run."""

from __future__ import annotations

import uuid

import pytest


async def _campaign(client, org) -> str:
    response = await client.post("/api/campaigns", json={"name": "Edge"}, headers=org.headers())
    return (await response.get_json())["id"]


@pytest.mark.parametrize(
    ("path", "body", "where"),
    [
        ("/api/campaigns", {"name": "a\x00b"}, "name"),
        ("/api/campaigns", {"name": "x", "schedule": {"note": ["ok", "bad\x00"]}}, "schedule.note.1"),
        ("/api/campaigns", {"name": "x", "targetAudience": {"k\x00": 1}}, "targetAudience.k\\u0000"),
        ("/api/campaigns", {"name": "x", "schedule": {"weight": float("nan")}}, "schedule.weight"),
        ("/api/campaigns", {"name": "x", "targetAudience": {"big": float("inf")}}, "targetAudience.big"),
        ("/api/campaigns/presets", {"name": "p", "content": "\x003"}, "content"),
        ("{campaign}/templates", {"name": "t", "channel": "telegram", "content": "\x00"}, "content"),
        ("{campaign}/audience/from-csv", {"content": "first_name\nA\x00n\n"}, "content"),
    ],
)
async def test_unstorable_body_values__are_400_with_the_path(client, org, path, body, where):
    if path.startswith("{campaign}"):
        path = path.replace("{campaign}", f"/api/campaigns/{await _campaign(client, org)}")
    response = await client.post(path, json=body, headers=org.headers())
    assert response.status_code == 400, await response.get_data()
    error = await response.get_json()
    assert error["code"] == "VALIDATION"
    assert [d["path"] for d in error["details"]] == [where]


@pytest.mark.parametrize(
    ("path", "query", "where"),
    [
        (
            "/api/campaigns/group-sources/contacts",
            {"bdAccountId": str(uuid.uuid4()), "telegramChatId": "\x00"},
            "telegramChatId",
        ),
        ("/api/campaigns/contacts-for-picker", {"search": "an\x00n"}, "search"),
        ("/api/campaigns", {"status": "draft\x00"}, "status"),
    ],
)
async def test_nul_in_a_query_value__is_400(client, org, path, query, where):
    response = await client.get(path, query_string=query, headers=org.headers())
    assert response.status_code == 400
    assert (await response.get_json())["details"] == [
        {"path": where, "message": "must not contain NUL characters"}
    ]


async def test_booleans_and_numbers_are_not_interchanged(client, org):
    """The body is read with JSON's own types: false is not 0 and 0 is not false."""
    campaign = await _campaign(client, org)
    response = await client.post(
        "/api/campaigns", json={"name": "x", "schedule": {"daysOfWeek": [False]}}, headers=org.headers()
    )
    assert response.status_code == 400
    assert (await response.get_json())["details"][0]["path"] == "schedule.daysOfWeek.0"
    response = await client.post(
        f"/api/campaigns/{campaign}/audience/from-csv",
        json={"content": "telegram_id\n123\n", "hasHeader": 0},
        headers=org.headers(),
    )
    assert response.status_code == 400
    assert (await response.get_json())["details"][0]["path"] == "hasHeader"
