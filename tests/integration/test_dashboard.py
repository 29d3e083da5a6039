"""``GET /dashboard``: the page and its files are served without identity headers, nothing else is, and the
API calls the page makes answer for an organization with a running campaign."""

from __future__ import annotations

from importlib import resources

import attrs

from campaignsvc.domain.waiting import Code
from campaignsvc.http.app import create_app
from tests.integration.dispatch_helpers import start_env


async def test_dashboard__page_and_assets_are_served_without_headers(client):
    page = await client.get("/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = (await page.get_data()).decode()
    assert '<script src="/dashboard/dashboard.js"' in html and "/dashboard/dashboard.css" in html
    assert "http://" not in html and "https://" not in html  # nothing from elsewhere: works offline
    assert "default-src 'none'" in page.headers["content-security-policy"]

    for name, kind in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        asset = await client.get(f"/dashboard/{name}")
        assert asset.status_code == 200, name
        assert asset.headers["content-type"].startswith(kind)
        assert asset.headers["cache-control"] == "no-cache"
    script = (await (await client.get("/dashboard/dashboard.js")).get_data()).decode()
    for path in ("/api/campaigns/agents/throttle", "/api/campaigns?limit=", "/stats", "X-Organization-Id"):
        assert path in script
    # The campaign view: its panels in the page, what they read, every text set as text.
    for panel in ('id="campaign-view"', 'id="waiting-panel"', 'id="forecast-panel"', 'id="preflight-panel"'):
        assert panel in html, panel
    for path in ("/forecast", "/preflight", "#campaign=", "hashchange", "textContent"):
        assert path in script, path
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script and "eval(" not in script


async def test_dashboard__every_waiting_code_has_a_meaning_on_the_page(client):
    script = (await (await client.get("/dashboard/dashboard.js")).get_data()).decode()
    css = (await (await client.get("/dashboard/dashboard.css")).get_data()).decode()
    for code in Code:
        assert f'["{code.value}", "' in script, code
        assert f".w-{code.value} " in css, code


async def test_dashboard__unknown_files_are_404_never_500(client):
    for path in (
        "/dashboard/nope.js",
        "/dashboard/..%2Fapp.py",
        "/dashboard/dashboard.py",
        "/dashboard/static",
    ):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert (await response.get_json())["code"] == "NOT_FOUND"


async def test_dashboard__needs_the_internal_secret_when_one_is_set(services):
    guarded = attrs.evolve(services, settings=attrs.evolve(services.settings, internal_auth_secret="s3cret"))
    client = create_app(guarded).test_client()
    assert (await client.get("/dashboard")).status_code == 401
    assert (await client.get("/dashboard/dashboard.js")).status_code == 401
    assert (await client.get("/dashboard", headers={"X-Internal-Auth": "s3cret"})).status_code == 200


async def test_dashboard__the_api_calls_of_the_page_answer_while_a_campaign_runs(store, org, nursery):
    env = await start_env(nursery, store, org, min_gap_ms_same_bd_account=50)
    account = await org.bd_account(display_name="Dash Account", max_dm_per_day=3)
    contacts = await org.contacts(5)
    cid = await env.campaign(
        accounts=[account], contacts=contacts, steps=[{}], audience={"sendDelaySeconds": 0.05}
    )
    await env.api("POST", f"/api/campaigns/{cid}/start")
    await env.wait_sent(3)
    # What the page sends with ?org=…: the organization and the supervisor role, no user.
    headers = {"X-Organization-Id": str(org.id), "X-User-Role": "supervisor"}
    for _ in range(2):
        throttle = await env.client.get("/api/campaigns/agents/throttle", headers=headers)
        assert throttle.status_code == 200
        (item,) = [a for a in await throttle.get_json() if a["bdAccountId"] == str(account)]
        assert item["displayName"] == "Dash Account"
        assert item["dailyCap"] == 3 and item["sentToday"] == 3
        assert len(item["sendsPerMinute"]) == 60 and sum(item["sendsPerMinute"]) == 3
        listed = await env.client.get("/api/campaigns?limit=12", headers=headers)
        assert listed.status_code == 200
        assert [c["id"] for c in (await listed.get_json())["data"]] == [cid]
        stats = await env.client.get(f"/api/campaigns/{cid}/stats", headers=headers)
        assert stats.status_code in (200, 404)  # the page falls back to the list's KPIs without it
        page = await env.client.get(f"/dashboard?org={org.id}")
        assert page.status_code == 200


def test_dashboard__static_files_ship_with_the_package():
    static = resources.files("campaignsvc.http").joinpath("static")
    assert {p.name for p in static.iterdir()} >= {"dashboard.html", "dashboard.js", "dashboard.css"}
