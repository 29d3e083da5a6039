"""``/openapi.json`` is kept true: a realistic scenario drives every operation of ``api.OPERATIONS`` through
the real app, with the dispatcher sending to the sandbox so that the reports are not empty, and every
response, success or error, must be documented: its status code, its content type and its body, validated
(JSON Schema 2020-12, formats checked, no undocumented fields) against the document's own schema.

An operation the scenario never exercises with a success fails the test, so a new endpoint cannot skip it.

The same run is where the document's examples come from: with ``CAMPAIGNSVC_RECORD_EXAMPLES=1`` it writes
the first request that succeeded and the first response of each status and content type of every
operation to ``campaignsvc/http/examples.json`` (long lists and texts shortened when the shorter value
still matches its schema). Without it, every status an example shows must be one this run produced;
tests/unit/test_openapi_examples.py checks that every operation has examples and that they match.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

import trio

from campaignsvc.http.api import OPERATIONS, Operation
from campaignsvc.http.openapi import EXAMPLES_FILE, load_examples, operation_key
from tests.factories import Org
from tests.integration.api_world import build_campaign, seed_crm
from tests.integration.dispatch_helpers import reply_event, start_env
from tests.openapi_schema import SchemaCheck

RECORD_ENV = "CAMPAIGNSVC_RECORD_EXAMPLES"
EXAMPLES_PATH = Path(__file__).resolve().parents[2] / "campaignsvc" / "http" / EXAMPLES_FILE
# An example shows the shape, not every row: lists past this many items and texts past this many lines
# are cut, when what remains still matches the schema.
EXAMPLE_ITEMS = 3
EXAMPLE_LINES = 16


def _shortened(value: Any) -> Any:
    if isinstance(value, list):
        return [_shortened(item) for item in value[:EXAMPLE_ITEMS]]
    if isinstance(value, dict):
        return {key: _shortened(item) for key, item in value.items()}
    if isinstance(value, str) and value.count("\n") > EXAMPLE_LINES:
        return "".join(value.splitlines(keepends=True)[:EXAMPLE_LINES])
    return value


class Conformance:
    """Calls the app and checks each response against the document."""

    def __init__(self, client: Any, document: dict[str, Any], headers: dict[str, str]) -> None:
        self.client = client
        self.document = document
        self.headers = headers
        self.schemas = SchemaCheck(document)
        # Literal segments win over path parameters, as in the router (/agents before /{id}).
        self.routes = sorted(
            ((re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", op.path) + "$"), op) for op in OPERATIONS),
            key=lambda item: item[1].path.count("{"),
        )
        self.seen: dict[tuple[str, str], collections.Counter[int]] = collections.defaultdict(
            collections.Counter
        )
        # Per operation: the first request that succeeded, the first body of each status and content type.
        self.requests: dict[str, dict[str, Any]] = {}
        self.responses: dict[str, dict[str, dict[str, Any]]] = collections.defaultdict(dict)

    def operation(self, method: str, path: str) -> Operation:
        for pattern, op in self.routes:
            if op.method == method and pattern.match(path):
                return op
        raise AssertionError(f"{method} {path} is not an operation of the document")

    async def call(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        query: dict[str, Any] | None = None,
        expect: int | None = None,
    ) -> tuple[int, Any]:
        response = await self.client.open(
            path,
            method=method,
            json=json_body,
            headers=self.headers if headers is None else headers,
            query_string=query,
        )
        data = await response.get_data()
        op = self.operation(method, path)
        body = self.check(op, response.status_code, response.mimetype, data)
        self.seen[(op.method, op.path)][response.status_code] += 1
        self.record(op, path, query, json_body, response.status_code, response.mimetype, body)
        if expect is not None:
            assert response.status_code == expect, (method, path, response.status_code, body)
        return response.status_code, body

    def check(self, op: Operation, status: int, mimetype: str, data: bytes) -> Any:
        where = f"{op.method} {op.path} → {status}"
        responses = self.document["paths"][op.path][op.method.lower()]["responses"]
        assert str(status) in responses, f"{where}: status not documented ({sorted(responses)})"
        if status == 204:
            assert data == b"", f"{where}: a 204 has no body"
            return None
        content = responses[str(status)]["content"]
        assert mimetype in content, f"{where}: content type {mimetype} not documented ({sorted(content)})"
        body = json.loads(data) if mimetype == "application/json" else data.decode("utf-8")
        errors = self.schemas.errors(content[mimetype]["schema"], body)
        assert not errors, f"{where}: the body does not match its schema:\n" + "\n".join(errors[:20])
        return body

    def record(
        self, op: Operation, path: str, query: Any, json_body: Any, status: int, mimetype: str, body: Any
    ) -> None:
        key = operation_key(op)
        if 200 <= status < 300 and key not in self.requests:
            pattern = re.sub(r"\{([^}]+)\}", r"(?P<\1>[^/]+)", op.path)
            match = re.fullmatch(pattern, path)
            assert match is not None, (op.path, path)
            request: dict[str, Any] = {"parameters": {**match.groupdict(), **(query or {})}}
            if json_body is not None:
                request["body"] = json_body
            self.requests[key] = request
        content = self.responses[key].setdefault(str(status), {})
        if status != 204 and mimetype not in content:
            schema = self.document["paths"][op.path][op.method.lower()]["responses"][str(status)]["content"]
            short = _shortened(body)
            fits = short == body or not self.schemas.errors(schema[mimetype]["schema"], short)
            content[mimetype] = short if fits else body

    def examples(self) -> dict[str, Any]:
        """What the run recorded, as http/examples.json holds it."""
        return {
            key: {"request": self.requests[key], "responses": dict(sorted(self.responses[key].items()))}
            for key in sorted(self.requests)
        }

    def stale_examples(self, recorded: dict[str, Any]) -> list[str]:
        """Statuses or content types of the checked-in examples that this run did not produce."""
        stale = []
        for key, example in recorded.items():
            for status, by_type in example["responses"].items():
                produced = self.responses.get(key, {}).get(status)
                if produced is None or not set(by_type) <= set(produced):
                    stale.append(f"{key} → {status} {sorted(by_type)}")
        return stale

    def never_succeeded(self) -> list[str]:
        return [
            f"{op.method} {op.path}"
            for op in OPERATIONS
            if not any(200 <= s < 300 for s in self.seen[(op.method, op.path)])
        ]


async def _wait(predicate: Any, store: Any, sql: str, *args: Any, within: float = 20) -> None:
    with trio.fail_after(within):
        while not predicate(await store.fetchval(sql, *args)):
            await trio.sleep(0.05)


async def test_every_operation_answers_what_openapi_json_documents(nursery, store, org: Org):
    env = await start_env(nursery, store, org)
    document = await (await env.client.get("/openapi.json")).get_json()
    c = Conformance(env.client, document, org.headers())
    call = c.call
    crm = await seed_crm(org)
    acc1, acc2 = (str(a) for a in crm.accounts)
    failing = crm.telegram_ids[3]
    env.sandbox.state.update_config({"recipient_errors": {failing: "privacy"}})

    # Identity and validation errors are documented too.
    await call("GET", "/api/campaigns", headers={}, expect=401)
    await call("GET", "/api/campaigns", headers={"X-Organization-Id": "nope"}, expect=401)
    await call("POST", "/api/campaigns", {"name": "x"}, headers=org.headers("viewer"), expect=403)
    await call("POST", "/api/campaigns", {"name": ""}, expect=400)
    await call("GET", "/api/campaigns/not-a-uuid", expect=400)
    await call("GET", f"/api/campaigns/{uuid.uuid4()}", expect=404)

    # Presets and lookups.
    await call(
        "POST",
        "/api/campaigns/presets",
        {"name": "Intro", "content": "Hi {{contact.first_name}}"},
        expect=201,
    )
    _, presets = await call("GET", "/api/campaigns/presets", expect=200)
    assert presets
    _, agents = await call("GET", "/api/campaigns/agents", expect=200)
    assert len(agents) == 2
    ramp_url = f"/api/campaigns/agents/{acc2}/ramp"
    ramp = {"startPerDay": 50, "increasePerDay": 10, "maxPerDay": 200, "startedOn": "2026-01-05"}
    _, ramped = await call("PUT", ramp_url, ramp, expect=200)
    assert ramped["budgetToday"] >= 50
    _, ramped = await call("GET", ramp_url, expect=200)
    assert ramped["startPerDay"] == 50 and ramped["stepDown"] is None
    await call("PUT", ramp_url, {**ramp, "maxPerDay": 10}, expect=400)
    await call("PUT", ramp_url, ramp, headers=org.headers("viewer"), expect=403)
    await call("GET", f"/api/campaigns/agents/{uuid.uuid4()}/ramp", expect=404)
    await call("DELETE", ramp_url, expect=204)
    await call("DELETE", ramp_url, expect=404)
    _, sources = await call("GET", "/api/campaigns/group-sources", expect=200)
    assert sources
    query = {"bdAccountId": acc1, "telegramChatId": crm.chat}
    _, members = await call("GET", "/api/campaigns/group-sources/contacts", query=query, expect=200)
    assert members["contactIds"] == [str(crm.contacts[0])]
    await call("GET", "/api/campaigns/group-sources/contacts", query={"bdAccountId": acc1}, expect=400)
    query = {"bdAccountId": str(uuid.uuid4()), "telegramChatId": "1"}
    await call("GET", "/api/campaigns/group-sources/contacts", query=query, expect=404)
    _, keywords = await call("GET", "/api/campaigns/telegram-source-keywords", expect=200)
    assert keywords == ["founders"]
    _, groups = await call("GET", "/api/campaigns/telegram-source-groups", expect=200)
    assert groups
    _, picker = await call("GET", "/api/campaigns/contacts-for-picker", query={"limit": 50}, expect=200)
    assert len(picker) == 4
    await call("GET", "/api/campaigns/contacts-for-picker", query={"limit": "x"}, expect=400)

    # A campaign with templates, steps and participants; edits while it is a draft.
    ids = await build_campaign(call, crm)
    url = ids.url
    _, extra = await call(
        "POST", f"{url}/templates", {"name": "spare", "channel": "telegram", "content": ""}, expect=201
    )
    await call(
        "POST", f"{url}/templates", {"name": "bad", "channel": "telegram", "content": "{x"}, expect=400
    )
    await call("PATCH", f"{url}/templates/{extra['id']}", {"name": "spare 2"}, expect=200)
    _, step = await call(
        "POST", f"{url}/sequences", {"orderIndex": 5, "templateId": extra["id"], "isHidden": True}, expect=201
    )
    await call("DELETE", f"{url}/templates/{extra['id']}", expect=409)
    await call("PATCH", f"{url}/sequences/{step['id']}", {"delayMinutes": 5}, expect=200)
    await call("DELETE", f"{url}/sequences/{step['id']}", expect=204)
    await call("DELETE", f"{url}/sequences/{step['id']}", expect=404)
    await call("DELETE", f"{url}/templates/{extra['id']}", expect=204)
    _, templates = await call("GET", f"{url}/templates", expect=200)
    assert len(templates) == 2
    _, steps = await call("GET", f"{url}/sequences", expect=200)
    assert len(steps) == 2
    # A/B variants of the first step: one kept, one added and removed.
    _, ab_template = await call(
        "POST",
        f"{url}/templates",
        {"name": "b", "channel": "telegram", "content": "Hello, {a|one} question"},
        expect=201,
    )
    variants = f"{url}/sequences/{steps[0]['id']}/variants"
    _, kept = await call("POST", variants, {"templateId": ab_template["id"], "weight": 2}, expect=201)
    _, gone = await call("POST", variants, {"templateId": ids.templates[1]}, expect=201)
    await call("POST", variants, {"templateId": ab_template["id"], "weight": 0}, expect=400)
    await call("DELETE", f"{variants}/{gone['id']}", expect=204)
    await call("DELETE", f"{variants}/{gone['id']}", expect=404)
    await call("PATCH", f"{url}/sequences/{steps[1]['id']}", {"autoWinner": True}, expect=200)
    _, steps = await call("GET", f"{url}/sequences", expect=200)
    assert [v["id"] for v in steps[0]["variants"]] == [kept["id"]] and steps[1]["autoWinner"] is True
    await call(
        "PATCH",
        url,
        {
            "name": "World outreach",
            "leadCreationSettings": {"trigger": "on_reply", "default_stage_id": str(crm.stages[0])},
            "schedule": {"timezone": "UTC", "workingHours": {"start": "00:00", "end": "23:59"}},
        },
        expect=200,
    )
    _, detail = await call("GET", url, expect=200)
    assert len(detail["selected_contacts"]) == 4 and detail["total_participants"] == 4

    # Audience.
    csv = 'first_name,telegram_id,username\n"New, Person",555000111,\nBad,,@@\n'
    _, imported = await call("POST", f"{url}/audience/from-csv", {"content": csv}, expect=200)
    assert imported["created"] == 1 and imported["skipped"] == 1
    _, listed = await call(
        "POST", f"{url}/audience/from-usernames", {"text": "@new_person\nt.me/x"}, expect=200
    )
    assert listed["contactIds"]
    conflicts = {"contactIds": [str(crm.contacts[0]), imported["contactIds"][0]]}
    _, found = await call("POST", f"{url}/audience/conflicts", conflicts, expect=200)
    assert found["conflicts"][0]["is_current_campaign"] is True
    _, added = await call(
        "POST", f"{url}/participants/add", {"contactIds": imported["contactIds"]}, expect=200
    )
    assert added["inserted"] == 1
    await call("POST", f"{url}/participants-bulk", {"contactIds": [str(uuid.uuid4())]}, expect=400)

    # Preview and the AI stub.
    _, preview = await call("GET", f"{url}/preview", query={"contactId": str(crm.contacts[0])}, expect=200)
    assert [s["status"] for s in preview["steps"]] == ["send", "send"]
    await call("GET", f"{url}/preview", query={"contactId": str(uuid.uuid4())}, expect=404)

    # Ready to launch: every check listed, none failing.
    _, preflight = await call("GET", f"{url}/preflight", expect=200)
    assert preflight["ok"] is True and not [c for c in preflight["checks"] if c["count"]]
    await call("GET", f"/api/campaigns/{uuid.uuid4()}/preflight", expect=404)
    # The organization's do-not-contact list.
    dnc = "/api/campaigns/do-not-contact"
    _, added = await call(
        "POST", dnc, {"usernames": ["@never_again"], "telegramIds": ["99887766"]}, expect=200
    )
    assert added == {"added": 2}
    await call("POST", dnc, {}, expect=400)
    _, listed = await call("GET", dnc, query={"q": "never", "limit": 10}, expect=200)
    assert listed["total"] == 1
    await call("DELETE", f"{dnc}/{listed['data'][0]['id']}", expect=204)
    await call("DELETE", f"{dnc}/{listed['data'][0]['id']}", expect=404)
    # When it will finish.
    _, forecast = await call("GET", f"{url}/forecast", query={"extraAccounts": 1}, expect=200)
    assert forecast["remainingSends"] > 0
    await call("GET", f"{url}/forecast", query={"extraAccounts": 11}, expect=400)
    _, variant = await call(
        "POST", f"{url}/ai/generate-variant", {"templateId": ids.templates[0]}, expect=200
    )
    assert variant["provider"] == "stub"

    # Running: the first step goes to everyone, one recipient refuses, one contact replies.
    _, started = await call("POST", f"{url}/start", expect=200)
    assert started["status"] == "active"
    await env.wait_sent(4)
    await _wait(lambda n: n == 1, store, "SELECT count(*) FROM campaign_participants WHERE status = 'failed'")
    replier = (
        await store.fetch("SELECT * FROM campaign_participants WHERE contact_id = $1", crm.contacts[0])
    )[0]
    event = reply_event(
        org,
        contact_id=replier["contact_id"],
        account_id=replier["bd_account_id"],
        channel_id=replier["channel_id"],
    )
    _, delivered = await call("POST", "/api/campaigns/events", event, headers={}, expect=200)
    assert delivered["ignored"] is False
    await _wait(
        lambda n: n == 1, store, "SELECT count(*) FROM campaign_participants WHERE status = 'replied'"
    )
    # A person corrects what the reply means.
    intent_url = f"{url}/participants/{replier['id']}"
    _, corrected = await call("PATCH", intent_url, {"replyIntent": "question"}, expect=200)
    assert corrected["replyIntent"] == "question"
    await call("PATCH", intent_url, {"replyIntent": "maybe"}, expect=400)
    await call("PATCH", f"{url}/participants/{uuid.uuid4()}", {"replyIntent": "question"}, expect=404)
    await call("PATCH", intent_url, {"replyIntent": "question"}, headers=org.headers("viewer"), expect=403)
    now = dt.datetime.now(dt.UTC)
    await store.execute(
        "INSERT INTO conversations (organization_id, bd_account_id, channel_id, contact_id, campaign_id, "
        "shared_chat_created_at, won_at, revenue_amount) VALUES ($1, $2, $3, $4, $5, $6, $7, 1250.50)",
        org.id,
        replier["bd_account_id"],
        replier["channel_id"],
        replier["contact_id"],
        uuid.UUID(ids.id),
        now,
        now,
    )

    # Edits of a running campaign are refused.
    await call("PATCH", f"{url}/templates/{ids.templates[0]}", {"content": "x"}, expect=409)
    await call("POST", f"{url}/sequences", {"templateId": ids.templates[0]}, expect=409)
    await call("POST", variants, {"templateId": ids.templates[1]}, expect=409)
    await call("DELETE", f"{url}/participants", expect=409)
    await call("DELETE", f"{url}/participants/{crm.contacts[1]}", expect=409)
    await call("PATCH", url, {"schedule": None}, expect=400)

    # Reports, with data.
    _, stats = await call("GET", f"{url}/stats", expect=200)
    assert stats["total"] == 5 and stats["error_summary"]["count"] == 1 and stats["total_won"] == 1
    _, accounts = await call("GET", f"{url}/participant-accounts", expect=200)
    assert len(accounts) == 2
    _, analytics = await call("GET", f"{url}/analytics", query={"days": 7}, expect=200)
    assert analytics["sendsByDay"] and analytics["sendsByAccountByDay"] and analytics["repliedByDay"]
    await call("GET", f"{url}/analytics", query={"days": "abc"}, expect=400)
    _, ab = await call("GET", f"{url}/analytics/variants", query={"minSample": 1}, expect=200)
    assert sum(arm["sent"] for arm in ab["steps"][0]["arms"]) == 4 and len(ab["steps"][0]["arms"]) == 2
    await call("GET", f"{url}/analytics/variants", query={"minSample": 0}, expect=400)
    _, rows = await call("GET", f"{url}/participants", expect=200)
    assert {r["status_phase"] for r in rows} >= {"sent", "replied", "failed"}
    _, replied = await call("GET", f"{url}/participants", query={"filter": "replied"}, expect=200)
    assert len(replied) == 1 and replied[0]["conversation_id"]
    await call("GET", f"{url}/participants", query={"status": "bogus"}, expect=400)
    _, sends = await call("GET", f"{url}/sends", query={"limit": 2}, expect=200)
    assert len(sends["data"]) == 2 and sends["pagination"]["total"] >= 4
    # The export: JSON rows by default (as the front end asks, and with no Accept at all), CSV on request.
    axios = {**org.headers(), "Accept": "application/json, text/plain, */*"}
    for headers, query in ((None, None), (axios, None), (None, {"format": "json"})):
        _, export = await call("GET", f"{url}/participants/export", headers=headers, query=query, expect=200)
        assert len(export) == 5 and {r["display_status"] for r in export} >= {"sent", "replied", "failed"}
    as_csv = {**org.headers(), "Accept": "text/csv"}
    for headers, query in ((as_csv, None), (None, {"format": "csv"})):
        _, export = await call("GET", f"{url}/participants/export", headers=headers, query=query, expect=200)
        assert export.startswith("\ufeffparticipant_id,") and export.count("\r\n") == 6
    await call("GET", f"{url}/participants/export", query={"format": "xml"}, expect=400)
    _, throttle = await call("GET", "/api/campaigns/agents/throttle", expect=200)
    assert sum(a["sentToday"] for a in throttle) >= 4
    _, page = await call("GET", "/api/campaigns", query={"status": "active"}, expect=200)
    assert page["data"][0]["total_sent"] >= 4 and page["summary"]["total_won"] == 1
    _, detail = await call("GET", url, expect=200)
    assert "selected_contacts" not in detail

    # Lifecycle: pause, one account paused and resumed, resume, stop, retry the failed one, stop again.
    await call("POST", f"{url}/resume", expect=409)
    _, paused = await call("POST", f"{url}/pause", expect=200)
    assert paused["status"] == "paused"
    await call("POST", f"{url}/pause", expect=404)
    await call("POST", f"{url}/accounts/{acc2}/pause", {"hours": 1}, expect=200)
    await call("POST", f"{url}/accounts/{acc2}/resume", expect=200)
    await call("POST", f"{url}/accounts/{uuid.uuid4()}/resume", expect=404)
    await call("POST", f"{url}/resume", expect=200)
    _, stopped = await call("PATCH", url, {"status": "completed"}, expect=200)
    assert stopped["status"] == "completed"
    await call("POST", f"{url}/stop", expect=200)
    _, retried = await call("POST", f"{url}/participants/retry-failed", expect=200)
    assert retried == {"retried": 1, "campaignStatus": "active"}
    await call("POST", f"{url}/stop", expect=200)
    await _wait(
        lambda n: n == 0,
        store,
        "SELECT count(*) FROM campaign_participants WHERE status IN ('sending', 'in_doubt')",
    )

    # Copies, removals, reset and delete.
    _, copy_row = await call("POST", f"{url}/duplicate", expect=201)
    assert copy_row["name"] == "Copy of World outreach"
    await call("POST", f"{url}/start", headers=org.headers("viewer"), expect=403)
    _, removed_one = await call("DELETE", f"{url}/participants/{crm.contacts[1]}", expect=200)
    assert removed_one == {"deleted": 1}
    _, removed_one = await call("DELETE", f"{url}/participants/{crm.contacts[1]}", expect=200)
    assert removed_one == {"deleted": 0}
    await call("DELETE", f"{url}/participants/{crm.contacts[2]}", headers=org.headers("viewer"), expect=403)
    _, removed = await call("DELETE", f"{url}/accounts/{acc2}", expect=200)
    assert removed["remainingBdAccountIds"] == [acc1]
    await call("DELETE", f"{url}/accounts/{acc1}", expect=400)
    _, deleted = await call("DELETE", f"{url}/participants", expect=200)
    assert deleted["deleted"] == 4
    _, reset = await call("POST", f"{url}/reset-progress", expect=200)
    assert reset["status"] == "draft"
    await call("DELETE", url, expect=204)
    await call("GET", url, expect=404)

    # The service's own endpoints, open without identity.
    _, health = await call("GET", "/health", headers={}, expect=200)
    assert health["checks"]["db"] == "ok"
    await call("GET", "/ready", headers={}, expect=200)
    _, text = await call("GET", "/metrics", headers={}, expect=200)
    assert "http_requests_total" in text

    missing = c.never_succeeded()
    assert not missing, f"operations the scenario never exercised with a success: {missing}"
    assert sum(sum(s.values()) for s in c.seen.values()) > len(OPERATIONS)

    if os.environ.get(RECORD_ENV) == "1":
        EXAMPLES_PATH.write_text(json.dumps(c.examples(), indent=2, ensure_ascii=False) + "\n")
    else:
        stale = c.stale_examples(load_examples())
        assert not stale, (
            f"examples of responses this scenario no longer produces: {stale}; "
            f"record them again with {RECORD_ENV}=1 (docs/compat.md)"
        )
