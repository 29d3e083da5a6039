"""The dashboard in a real browser: headless Chromium opens ``/dashboard`` of the real service process, which
sends through the sandbox (a second real process), and sees account cards, states and campaign progress
appear and change; and the API reference, ``/docs``, rendered by Swagger UI and making a call with the
identity headers. Screenshots are kept in ``test-artifacts/``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from tests.conftest import ROOT, free_port, start_service, stop_service
from tests.e2e.browser import chromium_page
from tests.factories import Org

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts"

CARDS = """JSON.stringify(Array.from(document.querySelectorAll('.account')).map(c => ({
  id: c.dataset.accountId, state: c.dataset.state, kind: c.dataset.kind, sentToday: Number(c.dataset.sentToday),
  label: c.querySelector('.state').textContent, chart: c.querySelectorAll('svg rect.b').length})))"""
CAMPAIGNS = """JSON.stringify(Array.from(document.querySelectorAll('.campaign')).map(c => ({
  id: c.dataset.campaignId, status: c.dataset.status, sent: Number(c.dataset.sent), total: Number(c.dataset.total),
  segments: c.querySelectorAll('.bar > div').length, text: c.querySelector('.counts').textContent})))"""


def _read(path: Path) -> str:
    return path.read_text(errors="replace")


async def _wait_http(url: str, process: subprocess.Popen, log: Path) -> None:
    async with httpx.AsyncClient(timeout=2) as http:
        with trio.fail_after(30):
            while True:
                assert process.poll() is None, _read(log)
                try:
                    if (await http.get(url)).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await trio.sleep(0.1)


async def _campaign(
    http: httpx.AsyncClient, org: Org, name: str, accounts: list, contacts: list, gap_s: float
) -> str:
    headers = org.headers()
    audience = {"bdAccountIds": [str(a) for a in accounts], "sendDelaySeconds": gap_s}
    created = await http.post(
        "/api/campaigns", json={"name": name, "targetAudience": audience}, headers=headers
    )
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    template = await http.post(
        f"/api/campaigns/{cid}/templates",
        json={"name": "intro", "channel": "telegram", "content": "Hi {{contact.first_name|there}}!"},
        headers=headers,
    )
    step = {"orderIndex": 0, "templateId": template.json()["id"], "delayHours": 0, "delayMinutes": 0}
    assert (await http.post(f"/api/campaigns/{cid}/sequences", json=step, headers=headers)).status_code == 201
    added = await http.post(
        f"/api/campaigns/{cid}/participants/add",
        json={"contactIds": [str(c) for c in contacts]},
        headers=headers,
    )
    assert added.status_code == 200, added.text
    started = await http.post(f"/api/campaigns/{cid}/start", headers=headers)
    assert started.status_code == 200, started.text
    return cid


async def test_dashboard__chromium_shows_live_account_states_and_campaign_progress(
    database_url, org, tmp_path
):
    steady_a = await org.bd_account(display_name="Steady Anna", max_dm_per_day=500)
    steady_b = await org.bd_account(display_name="Steady Boris", max_dm_per_day=500)
    capped = await org.bd_account(display_name="Capped Clara", max_dm_per_day=4)
    flooded = await org.bd_account(display_name="Flooded Dmitri", max_dm_per_day=500)
    contacts = await org.contacts(160)

    service_port, sandbox_port = free_port(), free_port()
    sandbox_log = tmp_path / "sandbox.log"
    # Sends closer than 0.5 s to the previous one of the same account get FLOOD_WAIT for 20 s.
    with sandbox_log.open("wb") as out:
        sandbox = subprocess.Popen(
            [sys.executable, "-m", "campaignsvc", "sandbox", "--port", str(sandbox_port), "--seed", "3",
             "--account-min-gap-s", "0.5", "--flood-wait-s", "20", "--reply-rate", "0.3",
             "--reply-delay-s", "1", "4", "--events-url", f"http://127.0.0.1:{service_port}"],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
    service = None
    try:
        await _wait_http(f"http://127.0.0.1:{sandbox_port}/health", sandbox, sandbox_log)
        service = await start_service(
            {
                "DATABASE_URL": database_url,
                "PORT": str(service_port),
                "MESSAGING_SERVICE_URL": f"http://127.0.0.1:{sandbox_port}",
                "CAMPAIGN_MIN_GAP_MS_SAME_BD_ACCOUNT": "200",
                "LOG_LEVEL": "info",
            },
            tmp_path / "service.log",
        )
        async with httpx.AsyncClient(base_url=service.base_url, timeout=10) as http:
            await _campaign(http, org, "Steady outreach", [steady_a, steady_b], contacts[:120], 0.7)
            await _campaign(http, org, "Capped invites", [capped], contacts[120:140], 0.6)
            await _campaign(http, org, "Too fast", [flooded], contacts[140:], 0.25)

            page_response = await http.get("/dashboard")
            assert page_response.status_code == 200 and "text/html" in page_response.headers["content-type"]

        async with chromium_page(tmp_path / "chromium-profile") as page:
            await page.call("Page.navigate", url=f"{service.base_url}/dashboard?org={org.id}")
            await page.wait_for("document.querySelectorAll('.account').length === 4")
            await page.wait_for("document.querySelectorAll('.campaign').length === 3")
            first_cards = {c["id"]: c for c in json.loads(await page.evaluate(CARDS))}
            first_campaigns = {c["id"]: c for c in json.loads(await page.evaluate(CAMPAIGNS))}
            refreshes = int(await page.evaluate("document.body.dataset.refreshes"))
            assert set(first_cards) == {str(a) for a in (steady_a, steady_b, capped, flooded)}
            assert all(c["segments"] == 5 for c in first_campaigns.values())

            # The page refreshes itself: the capped account reaches its cap, the fast one is flood-blocked,
            # and the steady accounts keep sending, without reloading the page.
            await page.wait_for(
                f"document.querySelector('[data-account-id=\"{capped}\"]')?.dataset.kind === 'cap'",
                within=30,
            )
            await page.wait_for(
                f"document.querySelector('[data-account-id=\"{flooded}\"]')?.dataset.kind === 'flood'",
                within=30,
            )
            await trio.sleep(2.5)
            later_cards = {c["id"]: c for c in json.loads(await page.evaluate(CARDS))}
            later_campaigns = {c["id"]: c for c in json.loads(await page.evaluate(CAMPAIGNS))}
            assert int(await page.evaluate("document.body.dataset.refreshes")) > refreshes
            assert "flood-blocked until" in later_cards[str(flooded)]["label"]
            assert later_cards[str(capped)]["label"] == "daily cap reached"
            assert later_cards[str(capped)]["sentToday"] == 4
            for account in (steady_a, steady_b):
                assert later_cards[str(account)]["sentToday"] > first_cards[str(account)]["sentToday"]
                assert later_cards[str(account)]["chart"] >= 1
            steady = next(c for c in later_campaigns.values() if c["total"] == 120)
            assert steady["sent"] > first_campaigns[steady["id"]]["sent"]
            assert "replied" in steady["text"] and "pending" in steady["text"]

            await page.screenshot(ARTIFACTS / "dashboard.png")
            assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
            assert page.problems() == []
        log = service.log()
        assert "Traceback" not in log
        assert '"status": 500' not in log
    finally:
        if service is not None:
            assert stop_service(service) == 0
        sandbox.terminate()
        sandbox.wait(15)


def _in_operation(selector: str, then: str = "") -> str:
    """An expression for ``selector`` inside GET /api/campaigns's block (Swagger UI's deep-link id)."""
    return f"document.querySelector('#operations-campaigns-get_api_campaigns {selector}'){then}"


async def test_docs__chromium_renders_swagger_ui_and_tries_a_call_with_the_identity_headers(
    database_url, org, tmp_path
):
    service = await start_service(
        {"DATABASE_URL": database_url, "CAMPAIGN_MIN_GAP_MS_SAME_BD_ACCOUNT": "0", "LOG_LEVEL": "info"},
        tmp_path / "service.log",
    )
    try:
        async with httpx.AsyncClient(base_url=service.base_url, timeout=10) as http:
            document = (await http.get("/openapi.json")).json()
        operations = sum(len(methods) for methods in document["paths"].values())
        listed = document["paths"]["/api/campaigns"]["get"]["responses"]["200"]["content"]
        example_id = listed["application/json"]["examples"]["recorded"]["value"]["data"][0]["id"]

        async with chromium_page(tmp_path / "chromium-profile") as page:
            # ?org= fills the Authorize dialog's X-Organization-Id, as the dashboard's link passes it on.
            await page.call("Page.navigate", url=f"{service.base_url}/docs?org={org.id}&role=supervisor")
            await page.wait_for("document.body?.dataset.ready === 'true'")
            await page.wait_for(f"document.querySelectorAll('#swagger-ui .opblock').length === {operations}")
            assert await page.evaluate("document.querySelector('#swagger-ui .info .title').textContent")
            assert await page.evaluate("!!document.querySelector('#swagger-ui .btn.authorize.locked')")

            # Try it out: GET /api/campaigns from the page, with the headers the dialog holds.
            await page.evaluate(_in_operation(".opblock-summary-control", ".click()"))
            await page.wait_for(_in_operation(".try-out__btn", " !== null"))
            await page.evaluate(_in_operation(".try-out__btn", ".click()"))
            await page.wait_for(_in_operation(".execute", " !== null"))
            await page.evaluate(_in_operation(".execute", ".click()"))
            status = await page.wait_for(
                _in_operation(
                    ".live-responses-table tr.response .response-col_status", "?.textContent.trim()"
                )
            )
            assert status.startswith("200"), status
            curl = await page.evaluate(_in_operation(".curl-command", ".textContent"))
            assert f"X-Organization-Id: {org.id}" in curl and "X-User-Role: supervisor" in curl
            assert "status=active" in curl  # the recorded example's query, filled in
            body = await page.evaluate(
                _in_operation(".live-responses-table tr.response .response-col_description", ".textContent")
            )
            assert '"data": []' in body and '"total": 0' in body  # this organization has no campaign
            # The recorded example is shown with the documented response.
            assert example_id in await page.evaluate(_in_operation(".responses-inner", ".textContent"))

            await page.evaluate("window.scrollTo(0, 0)")
            await page.screenshot(ARTIFACTS / "docs.png")
            assert (ARTIFACTS / "docs.png").stat().st_size > 10_000
            assert page.problems() == []
        log = service.log()
        assert "Traceback" not in log and '"status": 500' not in log
    finally:
        assert stop_service(service) == 0
