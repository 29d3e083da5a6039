"""Tenant isolation, generated from ``api.OPERATIONS`` (SPEC R-API-4, original-v1 §7 items 24–27).

- Every operation with a path id, called by a second organization with the first one's real ids: 404.
- Ids of the first organization in a second organization's bodies and queries: 400 (or 404 for a query
  id, or nothing of theirs shown).
- Every /api route: 401 without or with a malformed X-Organization-Id, 401 without X-Internal-Auth when
  INTERNAL_AUTH_SECRET is set (health, ready and metrics stay open); 403 for a viewer's writes; 404 on a
  soft-deleted campaign's every id route.

After each group, every row of every table is compared with a snapshot taken before: nothing changed;
and no response carries anything of the first organization.
"""

from __future__ import annotations

import uuid
from typing import Any

import attrs
import pytest

from campaignsvc.http.api import OPERATIONS, Operation
from campaignsvc.http.app import create_app
from tests.factories import Org, make_org
from tests.integration.api_world import CampaignIds, Crm, build_campaign, seed_crm

# Every body model of a path-id operation, with a valid body (``{b_contact}`` is org B's contact).
SAMPLE_BODIES: dict[str, dict[str, Any]] = {
    "CsvImport": {"content": "telegram_id\n1234567\n"},
    "UsernameImport": {"text": "@someone_new"},
    "ParticipantsBulk": {"contactIds": ["{b_contact}"]},
    "ParticipantsAdd": {"contactIds": ["{b_contact}"]},
    "AccountPause": {"hours": 1},
    "CampaignPatch": {"name": "Taken over"},
    "ConflictsBody": {"contactIds": ["{b_contact}"]},
    "VariantRequest": {"content": "Hello"},
    "TemplateCreate": {"name": "x", "channel": "telegram", "content": "Hi"},
    "TemplatePatch": {"content": "Hijacked"},
    "StepCreate": {"templateId": "{b_template}"},
    "StepPatch": {"delayHours": 1},
    "VariantCreate": {"templateId": "{b_template}", "weight": 2},
    "IntentPatch": {"replyIntent": "interested"},
    "EntriesAdd": {"contactIds": ["{b_contact}"]},
    "RampBody": {"startPerDay": 1, "increasePerDay": 1, "maxPerDay": 5, "startedOn": "2026-01-01"},
    "CampaignCreate": {"name": "Mine"},
    "PresetCreate": {"name": "Mine", "content": "Hi"},
    "Envelope": {
        "id": "{random}",
        "type": "lead.created",
        "organizationId": "{b_org}",
        "data": {"contactId": "{b_contact}"},
    },
}
# Required query parameters.
SAMPLE_QUERIES: dict[str, dict[str, str]] = {
    "PreviewQuery": {"contactId": "{b_contact}"},
    "GroupContactsQuery": {"bdAccountId": "{b_account}", "telegramChatId": "-1"},
}
PUBLIC = {"/health", "/ready", "/metrics"}


@attrs.define
class Tenants:
    client: Any
    store: Any
    a: Crm
    b: Crm
    campaign: CampaignIds  # org A's
    deleted: CampaignIds  # org A's, soft-deleted
    theirs: CampaignIds  # org B's
    entry: str  # org A's do-not-contact entry
    variant: str  # an A/B variant of org A's campaign's first step

    def path_ids(self, campaign: CampaignIds) -> dict[str, str]:
        return {
            "id": campaign.id,
            "campaignId": campaign.id,
            "templateId": campaign.templates[0],
            "stepId": campaign.steps[0],
            "contactId": str(self.a.contacts[0]),
            "accountId": str(self.a.accounts[0]),
            "participantId": campaign.participants[0] if campaign.participants else str(uuid.uuid4()),
            "entryId": self.entry,
            "variantId": self.variant,
        }

    def fill(self, value: Any) -> Any:
        names = {
            "b_contact": str(self.b.contacts[0]),
            "b_account": str(self.b.accounts[0]),
            "b_template": self.theirs.templates[0],
            "b_org": str(self.b.org.id),
            "random": str(uuid.uuid4()),
        }
        if isinstance(value, str):
            return value.format(**names)
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        return value

    def secrets(self) -> list[str]:
        """What no response to org B may contain: org A's ids and names."""
        ids = [
            self.a.org.id,
            self.a.company,
            self.a.pipeline,
            self.a.user,
            *self.a.accounts,
            *self.a.contacts,
            *self.a.stages,
        ]
        campaigns = [self.campaign, self.deleted]
        return [
            *map(str, ids),
            *self.a.telegram_ids,
            *(c.id for c in campaigns),
            *(t for c in campaigns for t in c.templates),
            *(s for c in campaigns for s in c.steps),
            *(p for c in campaigns for p in c.participants),
            self.entry,
            self.variant,
            "world_a_listed",
            "World A",
        ]

    async def request(
        self, op: Operation, path: str, headers: dict[str, str], *, body: Any = None, query: Any = None
    ) -> tuple[int, bytes]:
        if body is None and op.body is not None:
            body = self.fill(SAMPLE_BODIES[op.body.__name__])
        if query is None and op.query is not None:
            query = self.fill(SAMPLE_QUERIES.get(op.query.__name__, {}))
        response = await self.client.open(
            path, method=op.method, json=body, headers=headers, query_string=query
        )
        return response.status_code, await response.get_data()

    def leaks(self, data: bytes) -> list[str]:
        text = data.decode("utf-8", errors="replace")
        return [s for s in self.secrets() if s in text]


# The running instance's own bookkeeping, written by its heartbeat whatever the requests do (migrations/0015).
INSTANCE_TABLES = {"campaign_instances", "campaign_account_leases"}


async def snapshot(store: Any) -> dict[str, list[str]]:
    """Every row of every table but the instance's bookkeeping, as text."""
    tables = [
        r["tablename"]
        for r in await store.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
        if r["tablename"] not in INSTANCE_TABLES
    ]
    return {
        t: [r["row"] for r in await store.fetch(f'SELECT t::text AS row FROM "{t}" t ORDER BY 1')]
        for t in tables
    }


def _changes(before: dict[str, list[str]], after: dict[str, list[str]]) -> dict[str, Any]:
    return {
        t: {"gone": sorted(set(before[t]) - set(after[t])), "new": sorted(set(after[t]) - set(before[t]))}
        for t in before
        if before[t] != after.get(t)
    }


@pytest.fixture
async def tenants(client, store, org: Org) -> Tenants:
    other = await make_org(store, "Other Org")
    a, b = await seed_crm(org), await seed_crm(other)

    def caller(who: Org):
        async def call(method: str, path: str, json_body: Any = None, *, expect: int | None = None, **_: Any):
            response = await client.open(path, method=method, json=json_body, headers=who.headers())
            body = await response.get_json()
            assert expect is None or response.status_code == expect, (path, response.status_code, body)
            return response.status_code, body

        return call

    campaign = await build_campaign(caller(org), a, name="World A")
    deleted = await build_campaign(caller(org), a, name="World A")
    response = await client.delete(deleted.url, headers=org.headers())
    assert response.status_code == 204
    theirs = await build_campaign(caller(other), b, name="Theirs")
    await caller(org)("POST", "/api/campaigns/do-not-contact", {"usernames": ["world_a_listed"]}, expect=200)
    _, listed = await caller(org)("GET", "/api/campaigns/do-not-contact", expect=200)
    _, variant = await caller(org)(
        "POST",
        f"{campaign.url}/sequences/{campaign.steps[0]}/variants",
        {"templateId": campaign.templates[1]},
        expect=201,
    )
    return Tenants(client, store, a, b, campaign, deleted, theirs, listed["data"][0]["id"], variant["id"])


def _with_path_ids() -> list[Operation]:
    return [op for op in OPERATIONS if op.path_params]


def test_every_path_parameter_and_body_has_a_sample():
    known = {
        "id",
        "campaignId",
        "templateId",
        "stepId",
        "contactId",
        "accountId",
        "participantId",
        "entryId",
        "variantId",
    }
    assert {p for op in OPERATIONS for p in op.path_params} <= known
    assert {op.body.__name__ for op in OPERATIONS if op.body} <= set(SAMPLE_BODIES)


async def test_path_ids_of_another_organization__404_nothing_read_nothing_changed(tenants: Tenants):
    t = tenants
    before = await snapshot(t.store)
    ops = _with_path_ids()
    assert len(ops) >= 35
    failures = []
    for op in ops:
        if op.auth != "tenant":
            continue
        path = op.path.format(**t.path_ids(t.campaign))
        status, data = await t.request(op, path, t.b.org.headers())
        if status != 404 or t.leaks(data):
            failures.append((op.method, op.path, status, data[:200], t.leaks(data)))
    assert not failures
    assert _changes(before, await snapshot(t.store)) == {}


async def test_soft_deleted_campaign__404_on_every_id_route(tenants: Tenants):
    t = tenants
    before = await snapshot(t.store)
    failures = []
    for op in _with_path_ids():
        if not {"id", "campaignId"} & set(op.path_params):
            continue  # an account's own route: no campaign in it
        path = op.path.format(**t.path_ids(t.deleted))
        status, data = await t.request(op, path, t.a.org.headers())
        if status != 404:
            failures.append((op.method, op.path, status, data[:200]))
    assert not failures
    assert _changes(before, await snapshot(t.store)) == {}


def _body_cases(t: Tenants) -> list[tuple[str, str, Any, Any, int, list[str]]]:
    """(method, path, body, query, status, paths in details) with org A's ids in org B's requests."""
    a, url = t.a, t.theirs.url
    a_contact, a_account, a_user = str(a.contacts[0]), str(a.accounts[0]), str(a.user)
    a_pipeline, a_stage, a_template = str(a.pipeline), str(a.stages[0]), t.campaign.templates[0]
    stage_rule = {"inPipelineStage": {"pipelineId": a_pipeline, "stageIds": [a_stage]}}
    audience = {
        "bdAccountId": a_account,
        "bdAccountIds": [str(t.b.accounts[0]), a_account],
        "contactIds": [a_contact],
        "filters": {"companyId": str(a.company), "pipelineId": a_pipeline},
        "dynamicPipelineId": a_pipeline,
        "dynamicStageIds": [a_stage],
    }
    audience_paths = [
        "targetAudience.bdAccountId",
        "targetAudience.bdAccountIds.1",
        "targetAudience.contactIds.0",
        "targetAudience.filters.companyId",
        "targetAudience.filters.pipelineId",
        "targetAudience.dynamicPipelineId",
        "targetAudience.dynamicStageIds.0",
    ]
    return [
        ("POST", "/api/campaigns", {"name": "x", "companyId": str(a.company)}, None, 400, ["companyId"]),
        ("POST", "/api/campaigns", {"name": "x", "pipelineId": a_pipeline}, None, 400, ["pipelineId"]),
        ("POST", "/api/campaigns", {"name": "x", "targetAudience": audience}, None, 400, audience_paths),
        ("PATCH", url, {"targetAudience": audience}, None, 400, audience_paths),
        (
            "PATCH",
            url,
            {"leadCreationSettings": {"default_stage_id": a_stage, "default_responsible_id": a_user}},
            None,
            400,
            ["leadCreationSettings.default_stage_id", "leadCreationSettings.default_responsible_id"],
        ),
        ("POST", f"{url}/participants-bulk", {"contactIds": [a_contact]}, None, 400, ["contactIds.0"]),
        (
            "POST",
            f"{url}/participants-bulk",
            {"contactIds": [str(t.b.contacts[0])], "bdAccountId": a_account},
            None,
            400,
            ["bdAccountId"],
        ),
        ("POST", f"{url}/participants/add", {"contactIds": [a_contact]}, None, 400, ["contactIds.0"]),
        ("POST", f"{url}/audience/conflicts", {"contactIds": [a_contact]}, None, 400, ["contactIds.0"]),
        ("POST", f"{url}/sequences", {"templateId": a_template}, None, 400, ["templateId"]),
        (
            "PATCH",
            f"{url}/sequences/{t.theirs.steps[0]}",
            {"templateId": a_template},
            None,
            400,
            ["templateId"],
        ),
        (
            "POST",
            f"{url}/sequences",
            {"templateId": t.theirs.templates[0], "conditions": stage_rule},
            None,
            400,
            ["conditions.inPipelineStage.pipelineId", "conditions.inPipelineStage.stageIds.0"],
        ),
        (
            "PATCH",
            f"{url}/sequences/{t.theirs.steps[1]}",
            {"conditions": {"notInPipelineStage": stage_rule["inPipelineStage"]}},
            None,
            400,
            ["conditions.notInPipelineStage.pipelineId", "conditions.notInPipelineStage.stageIds.0"],
        ),
        (
            "POST",
            f"{url}/sequences/{t.theirs.steps[0]}/variants",
            {"templateId": a_template},
            None,
            400,
            ["templateId"],
        ),
        ("POST", f"{url}/ai/generate-variant", {"templateId": a_template}, None, 400, ["templateId"]),
        ("GET", f"{url}/preview", None, {"contactId": a_contact}, 404, []),
        (
            "GET",
            "/api/campaigns/group-sources/contacts",
            None,
            {"bdAccountId": a_account, "telegramChatId": a.chat},
            404,
            [],
        ),
        ("POST", f"/api/campaigns/{t.theirs.id}/accounts/{a_account}/pause", {}, None, 404, []),
    ]


async def test_body_and_query_ids_of_another_organization__rejected(tenants: Tenants):
    t = tenants
    before = await snapshot(t.store)
    headers = t.b.org.headers()
    failures = []
    for method, path, body, query, status, paths in _body_cases(t):
        response = await t.client.open(path, method=method, json=body, headers=headers, query_string=query)
        data = await response.get_data()
        error = await response.get_json()
        got = [d["path"] for d in error.get("details") or []] if isinstance(error, dict) else None
        if response.status_code != status or (paths and got != paths) or t.leaks(data):
            failures.append((method, path, response.status_code, got, t.leaks(data)))
    assert not failures
    # Filters naming another organization's account find nothing of theirs.
    for path, query in [
        ("/api/campaigns/contacts-for-picker", {"sourceBdAccountId": str(t.a.accounts[0])}),
        (f"{t.theirs.url}/participants", {"bdAccountId": str(t.a.accounts[0])}),
    ]:
        response = await t.client.get(path, query_string=query, headers=headers)
        assert response.status_code == 200
        assert await response.get_json() == []
    assert _changes(before, await snapshot(t.store)) == {}


async def test_identity__401_without_or_with_a_bad_organization_and_403_for_viewer_writes(tenants: Tenants):
    t = tenants
    before = await snapshot(t.store)
    failures = []
    for op in OPERATIONS:
        if op.auth != "tenant":
            continue
        path = op.path.format(**t.path_ids(t.campaign))
        user = str(t.a.org.owner_id)
        for headers in ({}, {"X-User-Id": user}, {"X-Organization-Id": "not-a-uuid", "X-User-Id": user}):
            status, data = await t.request(op, path, headers)
            if status != 401 or t.leaks(data):
                failures.append((op.method, op.path, headers, status))
        if 403 in op.errors:  # a write
            status, _ = await t.request(op, path, t.a.org.headers("viewer"))
            if status != 403:
                failures.append((op.method, op.path, "viewer", status))
    assert not failures
    assert _changes(before, await snapshot(t.store)) == {}


async def test_internal_secret__401_on_every_route_but_health_ready_metrics(tenants: Tenants, services):
    t = tenants
    secret = "s3cret-between-services"
    guarded = attrs.evolve(services, settings=attrs.evolve(services.settings, internal_auth_secret=secret))
    client = create_app(guarded).test_client()
    t = attrs.evolve(t, client=client)
    before = await snapshot(t.store)
    owner = t.a.org.headers()
    failures = []
    for op in OPERATIONS:
        path = op.path.format(**t.path_ids(t.campaign))
        for headers in (owner, {**owner, "X-Internal-Auth": "wrong"}):
            status, _ = await t.request(op, path, headers)
            expected = 200 if op.path in PUBLIC else 401
            if status != expected:
                failures.append((op.method, op.path, status))
    for path in ("/dashboard", "/dashboard/dashboard.js"):
        if (await client.get(path)).status_code != 401:
            failures.append(("GET", path))
    assert not failures
    assert _changes(before, await snapshot(t.store)) == {}
    # With the secret, the same owner is served.
    response = await client.get(t.campaign.url, headers={**owner, "X-Internal-Auth": secret})
    assert response.status_code == 200
