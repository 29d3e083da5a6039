"""``POST /api/campaigns/events`` is service-to-service: the gateway's X-Internal-Auth rides on every
signed-in user's request, so it proves nothing; EVENTS_INGEST_SECRET does."""

from __future__ import annotations

import uuid

import attrs
import pytest

from campaignsvc.http.app import create_app
from tests.factories import make_org
from tests.integration.dispatch_helpers import reply_event

INTERNAL = "gateway-secret"
INGEST = "ingest-secret"


def _client(services, **settings):
    return create_app(
        attrs.evolve(services, settings=attrs.evolve(services.settings, **settings))
    ).test_client()


async def _event(org, store):
    account = await org.bd_account()
    (contact,) = await org.contacts(1)
    return reply_event(org, contact_id=contact, account_id=account, channel_id="123")


async def _post(client, event, headers):
    response = await client.post("/api/campaigns/events", json=event, headers=headers)
    return response.status_code, await response.get_json()


@pytest.mark.parametrize("role", ["viewer", "owner"])
async def test_a_signed_in_user_through_the_gateway_is_refused(services, org, store, role):
    event = await _event(org, store)
    gateway = {**org.headers(role), "X-Internal-Auth": INTERNAL}
    for settings in (
        {"internal_auth_secret": INTERNAL},
        {"internal_auth_secret": INTERNAL, "events_ingest_secret": INGEST},
    ):
        code, body = await _post(_client(services, **settings), event, gateway)
        assert code in (401, 403), (settings, body)
    # Even with the right secret, user identity is not accepted.
    both = _client(services, internal_auth_secret=INTERNAL, events_ingest_secret=INGEST)
    code, body = await _post(both, event, {**gateway, "X-Events-Ingest-Secret": INGEST})
    assert (code, body["code"]) == (403, "FORBIDDEN")
    assert await store.fetchval("SELECT count(*) FROM campaign_processed_events") == 0


async def test_without_the_ingest_secret_a_secured_deployment_refuses_events(services, org, store):
    event = await _event(org, store)
    client = _client(services, internal_auth_secret=INTERNAL)
    code, body = await _post(client, event, {"X-Internal-Auth": INTERNAL, "X-Organization-Id": str(org.id)})
    assert code == 403 and "EVENTS_INGEST_SECRET" in body["error"]


async def test_wrong_or_missing_ingest_secret_is_401(services, org, store):
    event = await _event(org, store)
    client = _client(services, events_ingest_secret=INGEST)
    for headers in ({}, {"X-Events-Ingest-Secret": "wrong"}, {"X-Internal-Auth": INGEST}):
        code, body = await _post(client, event, headers)
        assert (code, body["code"]) == (401, "UNAUTHORIZED"), headers


async def test_organization_header_must_be_the_envelopes(services, org, store):
    event = await _event(org, store)
    other = await make_org(store, "Other")
    client = _client(services, events_ingest_secret=INGEST)
    secret = {"X-Events-Ingest-Secret": INGEST}
    code, body = await _post(client, event, {**secret, "X-Organization-Id": str(other.id)})
    assert (code, body["code"]) == (403, "FORBIDDEN")
    code, body = await _post(client, event, {**secret, "X-Organization-Id": "nope"})
    assert code == 400
    assert await store.fetchval("SELECT count(*) FROM campaign_processed_events") == 0


async def test_the_right_secret_delivers_as_before(services, org, store):
    event = await _event(org, store)
    client = _client(services, internal_auth_secret=INTERNAL, events_ingest_secret=INGEST)
    headers = {
        "X-Internal-Auth": INTERNAL,
        "X-Events-Ingest-Secret": INGEST,
        "X-Organization-Id": str(org.id),
    }
    code, body = await _post(client, event, headers)
    assert (code, body) == (
        200,
        {"ok": True, "type": "message.received", "duplicate": False, "ignored": False},
    )
    # X-Internal-Auth is still required where INTERNAL_AUTH_SECRET is set; alone, the ingest secret serves.
    code, _ = await _post(client, {**event, "id": str(uuid.uuid4())}, {"X-Events-Ingest-Secret": INGEST})
    assert code == 401
    only_ingest = _client(services, events_ingest_secret=INGEST)
    code, body = await _post(
        only_ingest, {**event, "id": str(uuid.uuid4())}, {"X-Events-Ingest-Secret": INGEST}
    )
    assert code == 200, body


async def test_an_open_development_deployment_accepts_services_but_not_users(client, org, store):
    event = await _event(org, store)
    code, body = await _post(client, event, {"X-Organization-Id": str(org.id)})
    assert code == 200, body
    code, body = await _post(client, {**event, "id": str(uuid.uuid4())}, org.headers("viewer"))
    assert (code, body["code"]) == (403, "FORBIDDEN")
