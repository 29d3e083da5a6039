"""One definition of a time zone for the API and the dispatcher: what the dispatcher would ignore is a
400 at the edge."""

from __future__ import annotations

import pytest

from campaignsvc.domain.schedule import Schedule

REJECTED = ["Factory", "posix/Europe/Berlin", "right/UTC", "localtime", "Mars/Olympus"]
HOURS = {"start": "09:00", "end": "18:00"}


def _schedule(zone):
    return {"timezone": zone, "workingHours": HOURS, "daysOfWeek": [1, 2, 3, 4, 5]}


async def _draft(client, org):
    response = await client.post("/api/campaigns", json={"name": "tz"}, headers=org.headers())
    assert response.status_code == 201
    return (await response.get_json())["id"]


async def _create(client, org, zone):
    response = await client.post(
        "/api/campaigns", json={"name": "tz", "schedule": _schedule(zone)}, headers=org.headers()
    )
    return response.status_code, await response.get_json()


async def _patch(client, org, cid, zone):
    response = await client.patch(
        f"/api/campaigns/{cid}", json={"schedule": _schedule(zone)}, headers=org.headers()
    )
    return response.status_code, await response.get_json()


@pytest.mark.parametrize("zone", REJECTED)
async def test_zones_the_dispatcher_ignores_are_400_on_create_and_patch(client, org, zone):
    assert Schedule.from_json(_schedule("UTC")) is not None
    code, body = await _create(client, org, zone)
    assert code == 400, body
    assert [d["path"] for d in body["details"]] == ["schedule.timezone"]
    cid = await _draft(client, org)
    code, body = await _patch(client, org, cid, zone)
    assert code == 400, body
    assert [d["path"] for d in body["details"]] == ["schedule.timezone"]


@pytest.mark.parametrize("zone", ["Europe/Berlin", "europe/berlin", " EUROPE/BERLIN "])
async def test_iana_names_in_any_case_are_stored_canonical_and_honoured(client, org, zone):
    code, row = await _create(client, org, zone)
    assert code == 201, row
    assert row["schedule"]["timezone"] == "Europe/Berlin"
    assert Schedule.from_json(row["schedule"]).tz.key == "Europe/Berlin"
    cid = await _draft(client, org)
    code, row = await _patch(client, org, cid, zone)
    assert (code, row["schedule"]["timezone"]) == (200, "Europe/Berlin")
