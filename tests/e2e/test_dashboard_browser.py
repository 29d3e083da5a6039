"""The dashboard in a real browser: headless Chromium opens ``/dashboard`` of the real service process, which
sends through the sandbox (a second real process), and sees account cards, states and campaign progress
appear and change; the campaign view of a selected campaign (why its contacts wait, its forecast, a draft's
pre-launch checks) showing what the API answers; and the API reference, ``/docs``, rendered by Swagger UI
and making a call with the identity headers. Screenshots are kept in ``test-artifacts/``."""

from __future__ import annotations

import datetime as dt
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
    http: httpx.AsyncClient,
    org: Org,
    name: str,
    accounts: list,
    contacts: list,
    gap_s: float,
    start: bool = True,
) -> str:
    """A campaign of one step, started with ``contacts`` added; or a draft of no steps with them as its
    audience."""
    headers = org.headers()
    audience = {"bdAccountIds": [str(a) for a in accounts], "sendDelaySeconds": gap_s}
    if not start:
        audience["contactIds"] = [str(c) for c in contacts]
    created = await http.post(
        "/api/campaigns", json={"name": name, "targetAudience": audience}, headers=headers
    )
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    if not start:
        return cid
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


WAITING_BAR = """JSON.stringify({
  campaign: document.getElementById('waiting-panel').dataset.campaignId,
  segments: Array.from(document.querySelectorAll('#waiting-panel .waiting-bar > div')).map(s =>
    [s.dataset.code, Number(s.dataset.count), s.title, parseFloat(s.style.width)]),
  legend: Array.from(document.querySelectorAll('#waiting-panel .waiting-legend li')).map(li =>
    [li.dataset.code, Number(li.querySelector('.count').textContent), li.title]),
  asOf: document.querySelector('#waiting-panel .as-of').textContent})"""
FORECAST = """JSON.stringify({
  campaign: document.getElementById('forecast-panel').dataset.campaignId,
  days: Array.from(document.querySelectorAll('#forecast-chart rect.day')).map(r =>
    [r.dataset.date, Number(r.dataset.sends)]),
  finishLines: document.querySelectorAll('#forecast-chart line.finish').length,
  whatIfLines: Array.from(document.querySelectorAll('#forecast-chart line.whatif')).map(l =>
    Number(l.dataset.extraAccounts)),
  finishesAt: document.querySelector('#forecast-panel .finishes-at').dataset.finishesAt,
  finishText: document.querySelector('#forecast-panel .finishes-at').textContent,
  remaining: document.querySelector('#forecast-panel .remaining').textContent,
  bottleneck: document.querySelector('#forecast-panel .bottleneck').dataset.bottleneck,
  whatIf: Array.from(document.querySelectorAll('#forecast-panel .what-if li')).map(li =>
    [Number(li.dataset.extraAccounts), li.dataset.finishesAt])})"""
PREFLIGHT = """JSON.stringify({
  campaign: document.getElementById('preflight-panel').dataset.campaignId,
  hidden: document.getElementById('preflight-panel').hidden,
  headline: document.querySelector('#preflight-panel .headline').textContent,
  checks: Array.from(document.querySelectorAll('#preflight-panel .check')).map(c =>
    [c.dataset.code, c.dataset.state, Number(c.dataset.count),
     c.querySelector('.check-message').textContent])})"""


FAILING_FORECAST = """(() => {
  const real = window.fetch;
  window.fetch = (path, init) => String(path).endsWith('/forecast')
    ? Promise.resolve(new Response(JSON.stringify({error: 'forecast down'}), {status: 500}))
    : real(path, init);
})();"""


def _ready(name: str, cid: str) -> str:
    return (
        f"document.getElementById('{name}-panel')?.dataset.state === 'ready' && "
        f"document.getElementById('{name}-panel')?.dataset.campaignId === '{cid}'"
    )


def _stamp(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _settled_waiting(http: httpx.AsyncClient, org: Org, cid: str, at_most: int) -> dict[str, int]:
    """The campaign's stats.waiting once the first sends went out (at most ``at_most`` open) and three
    reads a second apart agree."""
    reads: list[dict[str, int]] = []
    with trio.move_on_after(30):
        while True:
            stats = (await http.get(f"/api/campaigns/{cid}/stats", headers=org.headers())).json()
            reads = [*reads[-2:], stats["waiting"]]
            settled = len(reads) == 3 and reads[0] == reads[1] == reads[2]
            if settled and "account_paused" in reads[0] and sum(reads[0].values()) <= at_most:
                return reads[0]
            await trio.sleep(1)
    raise AssertionError(f"the waiting counts did not settle: {reads}")


async def _shown_forecast(page, http: httpx.AsyncClient, org: Org, cid: str) -> dict:
    """The forecast panel shows what GET /forecast answers: one bar per day, the finish (or why never)."""
    shown = json.loads(await page.evaluate(FORECAST))
    forecast = (await http.get(f"/api/campaigns/{cid}/forecast", headers=org.headers())).json()
    assert shown["campaign"] == cid
    assert shown["days"] == [[d["date"], d["sends"]] for d in forecast["daily"]]
    assert shown["remaining"] == str(forecast["remainingSends"])
    assert shown["bottleneck"] == forecast["bottleneck"]
    if forecast["finishesAt"] is None:
        assert shown["finishesAt"] == "" and shown["finishLines"] == 0
        assert shown["finishText"] == f"never — {forecast['reason']}"
    else:
        assert abs(_stamp(shown["finishesAt"]) - _stamp(forecast["finishesAt"])) < dt.timedelta(minutes=1)
        assert shown["finishText"] != "never"
        assert shown["finishLines"] == (1 if forecast["daily"] else 0)  # no chart when nothing is left
    assert [n for n, _ in shown["whatIf"]] == [w["extraAccounts"] for w in forecast["whatIf"]]
    if forecast["daily"]:
        assert shown["whatIfLines"] == [w["extraAccounts"] for w in forecast["whatIf"] if w["finishesAt"]]
    return forecast


async def test_dashboard__chromium_shows_a_campaigns_waits_forecast_and_a_drafts_preflight(
    database_url, org, tmp_path
):
    # One send a day for Clara, one every 10 minutes for Sam and Petra, Petra paused for the campaign: after
    # the first sends the active campaign's other participants wait for different reasons, and stay so
    # while the test looks.
    clara = await org.bd_account(display_name="Capped Clara", max_dm_per_day=1)
    sam = await org.bd_account(display_name="Slow Sam", max_dm_per_day=500)
    petra = await org.bd_account(display_name="Paused Petra", max_dm_per_day=500)
    reachable = await org.contacts(15)
    unreachable = await org.contact(first_name="Nobody", telegram_id=None, username=None)

    service_port, sandbox_port = free_port(), free_port()
    sandbox_log = tmp_path / "sandbox.log"
    with sandbox_log.open("wb") as out:
        sandbox = subprocess.Popen(
            [sys.executable, "-m", "campaignsvc", "sandbox", "--port", str(sandbox_port), "--seed", "5",
             "--reply-rate", "0", "--events-url", f"http://127.0.0.1:{service_port}"],
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
        async with httpx.AsyncClient(base_url=service.base_url, timeout=30) as http:
            active = await _campaign(http, org, "Mixed waits", [clara, sam, petra], reachable[:12], 600)
            paused = await http.post(f"/api/campaigns/{active}/accounts/{petra}/pause", headers=org.headers())
            assert paused.status_code == 200, paused.text
            draft = await _campaign(
                http, org, "Draft without steps", [sam], [*reachable[12:], unreachable], 60, start=False
            )
            waiting = await _settled_waiting(http, org, active, at_most=10)
            assert len(waiting) >= 2 and "queued" in waiting, waiting
            open_ = sum(waiting.values())

            async with chromium_page(tmp_path / "chromium-profile") as page:
                await page.call("Page.navigate", url=f"{service.base_url}/dashboard?org={org.id}")
                await page.wait_for("document.querySelectorAll('.campaign').length === 2")
                assert await page.evaluate("document.getElementById('campaign-view').hidden")

                # A click on the card selects it: the hash names it and the view opens.
                await page.evaluate(
                    f"document.querySelector('.campaign[data-campaign-id=\"{active}\"]').click()"
                )
                await page.wait_for(f"window.location.hash === '#campaign={active}'")
                await page.wait_for(_ready("waiting", active))
                await page.wait_for(_ready("forecast", active), within=60)
                assert await page.evaluate(
                    f"document.querySelector('.campaign[data-campaign-id=\"{active}\"]')"
                    ".classList.contains('selected')"
                )
                bar = json.loads(await page.evaluate(WAITING_BAR))
                api_waiting = (
                    await http.get(f"/api/campaigns/{active}/stats", headers=org.headers())
                ).json()["waiting"]
                assert api_waiting == waiting
                assert {code: count for code, count, _, _ in bar["segments"]} == waiting
                assert {code: count for code, count, _ in bar["legend"]} == waiting
                assert abs(sum(width for *_, width in bar["segments"]) - 100) < 0.5
                # The codes' meanings are in the titles, as in docs/visibility.md.
                titles = {code: title for code, _, title in bar["legend"]}
                assert "paused for this campaign" in titles["account_paused"]
                assert "Behind other sends" in titles["queued"]
                assert f"{open_} open participant(s)" in bar["asOf"]
                assert not await page.evaluate("document.getElementById('preflight-panel').hidden === false")

                forecast = await _shown_forecast(page, http, org, active)
                assert forecast["remainingSends"] == open_ and forecast["finishesAt"] is not None
                assert len(forecast["daily"]) >= 4  # one send a day for Clara's
                await page.evaluate("window.scrollTo(0, 0)")
                await page.screenshot(ARTIFACTS / "dashboard-campaign.png")
                assert (ARTIFACTS / "dashboard-campaign.png").stat().st_size > 10_000

                # The keyboard selects the draft: Tab reaches its name's link, Enter opens it.
                await page.evaluate(
                    f"document.querySelector('.campaign[data-campaign-id=\"{draft}\"] a.select').focus()"
                )
                for kind in ("keyDown", "keyUp"):
                    await page.call(
                        "Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter",
                        windowsVirtualKeyCode=13, text="\\r" if kind == "keyDown" else "",
                    )  # fmt: skip
                await page.wait_for(f"window.location.hash === '#campaign={draft}'")
                await page.wait_for(_ready("preflight", draft), within=30)
                report = (await http.get(f"/api/campaigns/{draft}/preflight", headers=org.headers())).json()
                checks = json.loads(await page.evaluate(PREFLIGHT))
                assert not checks["hidden"] and report["ok"] is False, report
                failing = [c for c in report["checks"] if c["count"] and c["severity"] == "error"]
                warned = [c for c in report["checks"] if c["count"] and c["severity"] == "warning"]
                assert {c["code"] for c in failing} == {"no_steps"}
                assert "no_channel" in {c["code"] for c in warned}
                expected = (
                    "Fix 1 problem before starting"
                    if len(failing) == 1
                    else (f"Fix {len(failing)} problems before starting")
                )
                assert checks["headline"].startswith(expected), checks["headline"]
                states = [state for _, state, _, _ in checks["checks"]]
                assert states == sorted(states, key=["error", "warning", "pass"].index)
                assert states.count("error") == len(failing) and states.count("warning") == len(warned)
                assert sorted(code for code, *_ in checks["checks"]) == sorted(
                    c["code"] for c in report["checks"]
                )
                shown_checks = {code: rest for code, *rest in checks["checks"]}
                messages = {c["code"]: c["message"] for c in report["checks"]}
                assert checks["checks"][0][0] == "no_steps"  # the failing error first
                assert shown_checks["no_steps"] == ["error", 1, messages["no_steps"]]
                assert shown_checks["no_channel"] == ["warning", 1, messages["no_channel"]]
                assert shown_checks["no_accounts"] == ["pass", 0, messages["no_accounts"]]
                await page.wait_for(_ready("forecast", draft), within=60)
                draft_forecast = await _shown_forecast(page, http, org, draft)
                assert draft_forecast["remainingSends"] == 0  # no step to send
                waiting_draft = json.loads(await page.evaluate(WAITING_BAR))
                assert waiting_draft["campaign"] == draft and waiting_draft["segments"] == []

                # A reload keeps the selection: the hash names the campaign.
                await page.call("Page.reload")
                await page.wait_for(_ready("preflight", draft), within=30)
                assert json.loads(await page.evaluate(PREFLIGHT))["checks"] == checks["checks"]
                await page.evaluate("window.scrollTo(0, 0)")
                await page.screenshot(ARTIFACTS / "dashboard-draft.png")
                assert (ARTIFACTS / "dashboard-draft.png").stat().st_size > 10_000

                # Closing the view clears the hash.
                await page.evaluate("document.getElementById('view-close').click()")
                await page.wait_for("document.getElementById('campaign-view').hidden")
                assert await page.evaluate("window.location.hash") == ""
                assert page.problems() == []

                # A failing forecast breaks its panel only: the page's fetch answers 500 for it.
                await page.call(
                    "Page.addScriptToEvaluateOnNewDocument",
                    source=FAILING_FORECAST,
                )
                await page.call("Page.navigate", url="about:blank")  # a new document, not a hash change
                await page.call(
                    "Page.navigate", url=f"{service.base_url}/dashboard?org={org.id}#campaign={active}"
                )
                await page.wait_for(
                    "document.getElementById('forecast-panel')?.dataset.state === 'error'", within=30
                )
                assert "500" in await page.evaluate(
                    "document.querySelector('#forecast-panel .panel-problem').textContent"
                )
                await page.wait_for(_ready("waiting", active))
                await page.wait_for("document.querySelectorAll('.campaign').length === 2")
                await page.wait_for("document.querySelectorAll('.account').length === 3")
                assert await page.evaluate("document.getElementById('problem').hidden")
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
