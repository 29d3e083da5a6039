"""Audience import and participants-bulk over the real app and database (original-v1 §2.4, §4.13)."""

from __future__ import annotations

import uuid

import trio

from tests.factories import make_org

CSV = "/api/campaigns/{}/audience/from-csv"
USERNAMES = "/api/campaigns/{}/audience/from-usernames"
BULK = "/api/campaigns/{}/participants-bulk"


async def _campaign(client, org, **body) -> str:
    body.setdefault("name", "Imports")
    response = await client.post("/api/campaigns", json=body, headers=org.headers())
    assert response.status_code == 201, await response.get_data()
    return (await response.get_json())["id"]


async def _post(client, org, path, body, role="owner"):
    response = await client.post(path, json=body, headers=org.headers(role))
    return response.status_code, await response.get_json()


async def _contacts(store, org):
    return await store.fetch(
        "SELECT id, first_name, last_name, telegram_id, username, email, phone FROM contacts "
        "WHERE organization_id = $1 ORDER BY created_at, telegram_id",
        org.id,
    )


# --- from-csv -----------------------------------------------------------------------------------------


async def test_csv__creates_contacts_and_returns_the_exact_shape(client, org, store):
    cid = await _campaign(client, org)
    content = (
        "\ufefffirst_name;last_name;telegram_id;username;email;phone\r\n"
        'Ivan;"Petrov; Jr";111;@Ivan_P;ivan@x.io;+7 900 000\r\n'
        "Ann;;222;;;\r\n"
    )
    status, body = await _post(client, org, CSV.format(cid), {"content": content})
    assert status == 200
    assert set(body) == {"contactIds", "created", "matched", "skipped", "invalidSamples"}
    assert (body["created"], body["matched"], body["skipped"], body["invalidSamples"]) == (2, 0, 0, [])
    rows = {r["telegram_id"]: r for r in await _contacts(store, org)}
    assert [str(rows["111"]["id"]), str(rows["222"]["id"])] == body["contactIds"]
    ivan = rows["111"]
    assert (ivan["first_name"], ivan["last_name"], ivan["username"], ivan["email"], ivan["phone"]) == (
        "Ivan",
        "Petrov; Jr",
        "ivan_p",
        "ivan@x.io",
        "+7 900 000",
    )
    assert await store.fetchval("SELECT count(*) FROM campaign_participants") == 0


async def test_csv__matches_existing_contacts_and_fills_missing_identifiers(client, org, store):
    cid = await _campaign(client, org)
    by_tg = await org.contact(first_name="Keep", telegram_id="111")
    by_user = await org.contact(first_name="Bob", username="Bob_Smith")
    by_mail = await org.contact(first_name="Eve", email="Eve@Mail.io")
    content = "name,telegram_id,username,email\nX,111,,\nY,333,bob_smith,\nZ,,,eve@mail.io\nNew,444,,\n"
    status, body = await _post(client, org, CSV.format(cid), {"content": content})
    assert status == 200
    assert (body["created"], body["matched"], body["skipped"]) == (1, 3, 0)
    assert body["contactIds"][:3] == [str(by_tg), str(by_user), str(by_mail)]
    bob = await store.fetchrow("SELECT first_name, telegram_id FROM contacts WHERE id = $1", by_user)
    assert (bob["first_name"], bob["telegram_id"]) == ("Bob", "333")  # filled, name kept
    assert await store.fetchval("SELECT first_name FROM contacts WHERE id = $1", by_tg) == "Keep"


async def test_csv__duplicate_telegram_ids_in_one_file_are_deduplicated_not_a_500(client, org, store):
    cid = await _campaign(client, org)
    content = "telegram_id,name\n555,A\n555,B\n 555 ,C\n556,D\n"
    status, body = await _post(client, org, CSV.format(cid), {"content": content})
    assert status == 200, body
    assert (body["created"], body["matched"], len(body["contactIds"])) == (2, 0, 2)
    assert [r["first_name"] for r in await _contacts(store, org)] == ["A", "D"]


async def test_csv__without_header_every_row_is_imported(client, org):
    cid = await _campaign(client, org)
    content = "Ivan,111,@ivan_p\nAnn,222,@ann_s\n"
    status, body = await _post(client, org, CSV.format(cid), {"content": content, "hasHeader": False})
    assert (status, body["created"], body["skipped"]) == (200, 2, 0)


async def test_csv__bad_rows_are_counted_and_sampled(client, org):
    cid = await _campaign(client, org)
    content = "name,telegram_id,email\nA,abc,\nB,,nope\nC,,\nD,7,\n"
    status, body = await _post(client, org, CSV.format(cid), {"content": content})
    assert status == 200
    assert (body["created"], body["skipped"]) == (1, 3)
    assert body["invalidSamples"] == [
        "line 2: invalid telegram id 'abc'",
        "line 3: invalid email 'nope'",
        "line 4: no telegram id, username or email",
    ]


async def test_csv__telegram_id_of_a_deleted_contact_is_skipped_not_revived(client, org, store):
    cid = await _campaign(client, org)
    gone = await org.contact(telegram_id="900")
    await store.execute("UPDATE contacts SET deleted_at = now() WHERE id = $1", gone)
    status, body = await _post(client, org, CSV.format(cid), {"content": "telegram_id\n900\n901\n"})
    assert status == 200
    assert (body["created"], body["skipped"]) == (1, 1)
    assert str(gone) not in body["contactIds"]
    assert body["invalidSamples"] == ["line 2: telegram id 900 belongs to a deleted contact"]
    assert await store.fetchval("SELECT deleted_at IS NOT NULL FROM contacts WHERE id = $1", gone)


async def test_csv__large_file_is_written_in_batches(client, org, store):
    cid = await _campaign(client, org)
    existing = await org.contact(telegram_id="1000005")
    content = "telegram_id,name\n" + "".join(f"{1_000_000 + i},N{i}\n" for i in range(2500))
    status, body = await _post(client, org, CSV.format(cid), {"content": content})
    assert status == 200
    assert (body["created"], body["matched"], len(body["contactIds"])) == (2499, 1, 2500)
    assert body["contactIds"][5] == str(existing)
    assert await store.fetchval("SELECT count(*) FROM contacts WHERE organization_id = $1", org.id) == 2500


async def test_csv__blank_content_imports_nothing(client, org):
    cid = await _campaign(client, org)
    status, body = await _post(client, org, CSV.format(cid), {"content": "\r\n\r\n"})
    assert status == 200
    assert body == {"contactIds": [], "created": 0, "matched": 0, "skipped": 0, "invalidSamples": []}


async def test_csv__contacts_of_another_organization_are_never_matched(client, org, store):
    other = await make_org(store, "Other")
    theirs = await other.contact(telegram_id="777", username="their_user")
    cid = await _campaign(client, org)
    status, body = await _post(
        client, org, CSV.format(cid), {"content": "telegram_id,username\n777,their_user\n"}
    )
    assert (status, body["created"], body["matched"]) == (200, 1, 0)
    assert body["contactIds"] != [str(theirs)]
    assert await store.fetchval("SELECT username FROM contacts WHERE id = $1", theirs) == "their_user"


async def test_csv__validation_errors(client, org):
    cid = await _campaign(client, org)
    for body, path in [
        ({}, "content"),
        ({"content": ""}, "content"),
        ({"content": 5}, "content"),
        ({"content": "x", "hasHeader": "maybe"}, "hasHeader"),
        ({"content": "x" * 5_000_001}, "content"),
    ]:
        status, answer = await _post(client, org, CSV.format(cid), body)
        assert status == 400, body
        assert answer["code"] == "VALIDATION"
        assert [d["path"] for d in answer["details"]] == [path]


# --- from-usernames -----------------------------------------------------------------------------------


async def test_usernames__creates_matches_and_samples(client, org, store):
    cid = await _campaign(client, org)
    known = await org.contact(first_name="Known", username="Known_One")
    text = "@known_one\nhttps://t.me/New_Person\n123456789\nbad-token\nabc\n@new_person\n"
    status, body = await _post(client, org, USERNAMES.format(cid), {"text": text})
    assert status == 200
    assert set(body) == {"contactIds", "created", "matched", "skipped", "invalidSamples"}
    assert (body["created"], body["matched"], body["skipped"]) == (2, 1, 2)
    assert body["invalidSamples"] == ["bad-token", "abc"]
    assert body["contactIds"][0] == str(known)
    rows = {r["id"]: r for r in await _contacts(store, org)}
    new = rows[uuid.UUID(body["contactIds"][1])]
    assert (new["first_name"], new["username"]) == ("New_Person", "new_person")
    by_id = rows[uuid.UUID(body["contactIds"][2])]
    assert (by_id["first_name"], by_id["telegram_id"]) == ("Contact", "123456789")


async def test_usernames__no_valid_rows(client, org):
    cid = await _campaign(client, org)
    status, body = await _post(client, org, USERNAMES.format(cid), {"text": "a\nb"})
    assert status == 200
    assert body == {"contactIds": [], "created": 0, "matched": 0, "skipped": 2, "invalidSamples": ["a", "b"]}


async def test_usernames__validation(client, org):
    cid = await _campaign(client, org)
    for body in ({}, {"text": ""}, {"text": "x" * 500_001}, {"text": ["a"]}):
        status, answer = await _post(client, org, USERNAMES.format(cid), body)
        assert (status, answer["details"][0]["path"]) == (400, "text"), body


# --- participants-bulk --------------------------------------------------------------------------------


async def test_bulk__adds_pending_participants_after_the_last_queue_position(client, org, store):
    cid = await _campaign(client, org)
    account = await org.bd_account()
    first, *rest = await org.contacts(4)
    await store.execute(
        "INSERT INTO campaign_participants (campaign_id, contact_id, enqueue_order) VALUES ($1, $2, 7)",
        uuid.UUID(cid),
        first,
    )
    ids = [str(c) for c in [rest[1], first, rest[0], rest[1], rest[2]]]
    status, body = await _post(
        client, org, BULK.format(cid), {"contactIds": ids, "bdAccountId": str(account)}
    )
    assert (status, body) == (200, {"added": 3})
    rows = await store.fetch(
        "SELECT contact_id, bd_account_id, status, enqueue_order, next_send_at FROM campaign_participants "
        "WHERE campaign_id = $1 ORDER BY enqueue_order",
        uuid.UUID(cid),
    )
    assert [(r["contact_id"], r["enqueue_order"]) for r in rows] == [
        (first, 7),
        (rest[1], 8),
        (rest[0], 9),
        (rest[2], 10),
    ]
    assert {(r["status"], r["next_send_at"]) for r in rows[1:]} == {("pending", None)}
    assert {r["bd_account_id"] for r in rows[1:]} == {account}
    assert await store.fetchval("SELECT count(*) FROM campaign_sends") == 0


async def test_bulk__again_adds_nothing(client, org):
    cid = await _campaign(client, org)
    ids = [str(c) for c in await org.contacts(2)]
    assert (await _post(client, org, BULK.format(cid), {"contactIds": ids}))[1] == {"added": 2}
    assert (await _post(client, org, BULK.format(cid), {"contactIds": ids}))[1] == {"added": 0}


async def test_bulk__concurrent_additions_get_distinct_queue_positions(client, org, store):
    cid = await _campaign(client, org)
    batches = [[str(c) for c in await org.contacts(20)] for _ in range(4)]

    async def add(ids):
        status, body = await _post(client, org, BULK.format(cid), {"contactIds": ids})
        assert (status, body) == (200, {"added": 20})

    async with trio.open_nursery() as nursery:
        for ids in batches:
            nursery.start_soon(add, ids)
    orders = [
        r["enqueue_order"]
        for r in await store.fetch(
            "SELECT enqueue_order FROM campaign_participants WHERE campaign_id = $1", uuid.UUID(cid)
        )
    ]
    assert sorted(orders) == list(range(80))


async def test_bulk__foreign_or_deleted_contacts_and_foreign_account_are_rejected_unused(client, org, store):
    other = await make_org(store, "Other")
    foreign_contact = (await other.contacts(1))[0]
    foreign_account = await other.bd_account()
    mine, deleted = await org.contacts(2)
    await store.execute("UPDATE contacts SET deleted_at = now() WHERE id = $1", deleted)
    cid = await _campaign(client, org)
    body = {
        "contactIds": [str(mine), str(foreign_contact), str(uuid.uuid4()), str(deleted)],
        "bdAccountId": str(foreign_account),
    }
    status, answer = await _post(client, org, BULK.format(cid), body)
    assert status == 400
    assert answer["code"] == "VALIDATION"
    assert [d["path"] for d in answer["details"]] == [
        "contactIds.1",
        "contactIds.2",
        "contactIds.3",
        "bdAccountId",
    ]
    assert await store.fetchval("SELECT count(*) FROM campaign_participants") == 0


async def test_bulk__validation(client, org):
    cid = await _campaign(client, org)
    ok = str(uuid.uuid4())
    for body, path in [
        ({}, "contactIds"),
        ({"contactIds": []}, "contactIds"),
        ({"contactIds": ["nope"]}, "contactIds.0"),
        ({"contactIds": [ok] * 5001}, "contactIds"),
        ({"contactIds": [ok], "bdAccountId": "x"}, "bdAccountId"),
    ]:
        status, answer = await _post(client, org, BULK.format(cid), body)
        assert (status, answer["code"]) == (400, "VALIDATION"), body
        assert answer["details"][0]["path"] == path, body


# --- shared rules -------------------------------------------------------------------------------------

BODIES = {
    CSV: {"content": "telegram_id\n1\n"},
    USERNAMES: {"text": "@some_user"},
    BULK: {"contactIds": [str(uuid.uuid4())]},
}


async def test_all__missing_other_org_and_deleted_campaigns_are_404(client, org, store):
    cid = await _campaign(client, org)
    other = await make_org(store, "Other")
    deleted = await _campaign(client, org, name="gone")
    await store.execute("UPDATE campaigns SET deleted_at = now() WHERE id = $1", uuid.UUID(deleted))
    for path, body in BODIES.items():
        for who, campaign in [(org, str(uuid.uuid4())), (other, cid), (org, deleted)]:
            status, answer = await _post(client, who, path.format(campaign), body)
            assert (status, answer) == (404, {"error": "Campaign not found", "code": "NOT_FOUND"}), path
    assert await store.fetchval("SELECT count(*) FROM contacts WHERE organization_id = $1", other.id) == 0


async def test_all__bad_campaign_id_is_400(client, org):
    for path, body in BODIES.items():
        status, answer = await _post(client, org, path.format("not-a-uuid"), body)
        assert status == 400
        assert answer["details"] == [{"path": "id", "message": "must be a UUID"}]


async def test_all__viewer_403_and_anonymous_401(client, org, store):
    cid = await _campaign(client, org)
    for path, body in BODIES.items():
        assert (await _post(client, org, path.format(cid), body, role="viewer"))[0] == 403
        response = await client.post(path.format(cid), json=body)
        assert response.status_code == 401
    assert await store.fetchval("SELECT count(*) FROM contacts") == 0


async def test_openapi__documents_the_audience_endpoints(client):
    doc = await (await client.get("/openapi.json")).get_json()
    for path in ("from-csv", "from-usernames"):
        operation = doc["paths"][f"/api/campaigns/{{id}}/audience/{path}"]["post"]
        assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ImportResult"
        }
    bulk = doc["paths"]["/api/campaigns/{id}/participants-bulk"]["post"]
    assert set(bulk["responses"]) >= {"200", "400", "401", "403", "404"}
    assert "BulkAdded" in doc["components"]["schemas"]
    for path in ("/api/campaigns/{id}/participants/{contactId}", "/api/campaigns/{id}/participants"):
        removal = doc["paths"][path]["delete"]["responses"]
        assert set(removal) == {"200", "400", "401", "403", "404", "409", "503"}, path
        content = removal["200"]["content"]
        assert set(content) == {"application/json"}, path  # JSON only (recorded examples ride along)
        assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/Deleted"}, path


# --- removing participants ----------------------------------------------------------------------------


async def _enrolled(client, org, store, count=3):
    cid = await _campaign(client, org)
    contacts = await org.contacts(count)
    status, body = await _post(client, org, BULK.format(cid), {"contactIds": [str(c) for c in contacts]})
    assert (status, body) == (200, {"added": count})
    return cid, contacts


async def _delete(client, org, path, role="owner"):
    response = await client.delete(path, headers=org.headers(role))
    return response.status_code, await response.get_json()


async def test_remove_one__answers_the_count_and_its_ledger_goes_with_it(client, org, store):
    cid, contacts = await _enrolled(client, org, store)
    participant = await store.fetchval(
        "SELECT id FROM campaign_participants WHERE contact_id = $1", contacts[0]
    )
    await store.execute(
        "INSERT INTO campaign_sends (campaign_participant_id, campaign_id, sequence_step, status) VALUES ($1, $2, 0, 'sent')",
        participant,
        uuid.UUID(cid),
    )
    response = await client.delete(f"/api/campaigns/{cid}/participants/{contacts[0]}", headers=org.headers())
    assert (response.status_code, response.mimetype) == (200, "application/json")
    assert await response.get_json() == {"deleted": 1}
    assert await store.fetchval("SELECT count(*) FROM campaign_participants") == 2
    assert await store.fetchval("SELECT count(*) FROM campaign_sends") == 0
    # Not (or no longer) a participant: nothing to remove, as the bulk removal answers an empty campaign.
    assert await _delete(client, org, f"/api/campaigns/{cid}/participants/{contacts[0]}") == (
        200,
        {"deleted": 0},
    )
    assert await _delete(client, org, f"/api/campaigns/{cid}/participants/{uuid.uuid4()}") == (
        200,
        {"deleted": 0},
    )
    assert await store.fetchval("SELECT count(*) FROM campaign_participants") == 2


async def test_remove_all__returns_the_count(client, org, store):
    cid, _ = await _enrolled(client, org, store, 4)
    assert await _delete(client, org, f"/api/campaigns/{cid}/participants") == (200, {"deleted": 4})
    assert await _delete(client, org, f"/api/campaigns/{cid}/participants") == (200, {"deleted": 0})


async def test_remove__refused_while_active_allowed_when_paused_or_completed(client, org, store):
    cid, contacts = await _enrolled(client, org, store)
    for status in ("active", "paused", "completed"):
        await store.execute("UPDATE campaigns SET status = $2 WHERE id = $1", uuid.UUID(cid), status)
        one = await _delete(client, org, f"/api/campaigns/{cid}/participants/{contacts.pop()}")
        if status == "active":
            assert one == (
                409,
                {"error": "Pause the campaign before removing participants", "code": "CONFLICT"},
            )
            assert (await _delete(client, org, f"/api/campaigns/{cid}/participants"))[0] == 409
        else:
            assert one == (200, {"deleted": 1}), status
    assert await store.fetchval("SELECT count(*) FROM campaign_participants") == 1


async def test_remove__a_participant_with_an_unfinished_send_is_kept(client, org, store):
    cid, contacts = await _enrolled(client, org, store)
    busy = await store.fetchval("SELECT id FROM campaign_participants WHERE contact_id = $1", contacts[1])
    await store.execute(
        "INSERT INTO campaign_sends (campaign_participant_id, campaign_id, sequence_step, status, idempotency_key) "
        "VALUES ($1, $2, 0, 'in_doubt', 'k')",
        busy,
        uuid.UUID(cid),
    )
    status, body = await _delete(client, org, f"/api/campaigns/{cid}/participants/{contacts[1]}")
    assert (status, body) == (
        409,
        {
            "error": "A message to this participant is being sent; try again when it is recorded",
            "code": "CONFLICT",
        },
    )
    assert await _delete(client, org, f"/api/campaigns/{cid}/participants") == (200, {"deleted": 2})
    assert await store.fetchval("SELECT id FROM campaign_participants") == busy


async def test_remove__tenancy_roles_and_ids(client, org, store):
    cid, contacts = await _enrolled(client, org, store)
    other = await make_org(store, "Other")
    one, every = f"/api/campaigns/{cid}/participants/{contacts[0]}", f"/api/campaigns/{cid}/participants"
    for path in (one, every):
        assert (await _delete(client, other, path))[1] == {"error": "Campaign not found", "code": "NOT_FOUND"}
        assert (await _delete(client, org, path, role="viewer"))[0] == 403
        assert (await client.delete(path)).status_code == 401
    # A contact of another organization is no participant here: nothing removed, nothing told.
    theirs = (await other.contacts(1))[0]
    assert await _delete(client, org, f"/api/campaigns/{cid}/participants/{theirs}") == (200, {"deleted": 0})
    status, body = await _delete(client, org, f"/api/campaigns/{cid}/participants/not-a-uuid")
    assert (status, body["details"]) == (400, [{"path": "contactId", "message": "must be a UUID"}])
    gone = await _campaign(client, org, name="gone")
    await store.execute("UPDATE campaigns SET deleted_at = now() WHERE id = $1", uuid.UUID(gone))
    assert (await _delete(client, org, f"/api/campaigns/{gone}/participants"))[0] == 404
    assert await store.fetchval("SELECT count(*) FROM campaign_participants") == 3


# --- limits -------------------------------------------------------------------------------------------


def _limited(services, **settings):
    import attrs

    from campaignsvc.http.app import create_app

    return create_app(
        attrs.evolve(services, settings=attrs.evolve(services.settings, **settings))
    ).test_client()


async def test_limits__a_body_past_csv_import_max_bytes_is_413_and_nothing_is_imported(services, org, store):
    client = _limited(services, csv_import_max_bytes=2048)
    cid = await _campaign(client, org)
    content = "telegram_id\n" + "".join(f"{100000 + i}\n" for i in range(400))  # ~2.8 kB
    for path, body in ((CSV, {"content": content}), (USERNAMES, {"text": content})):
        status, error = await _post(client, org, path.format(cid), body)
        assert status == 413, error
        assert error["code"] == "PAYLOAD_TOO_LARGE" and "CSV_IMPORT_MAX_BYTES" in error["error"]
    small = "telegram_id\n111\n"
    assert (await _post(client, org, CSV.format(cid), {"content": small}))[0] == 200
    assert await store.fetchval("SELECT count(*) FROM contacts WHERE organization_id = $1", org.id) == 1


async def test_limits__more_rows_than_csv_import_max_rows_is_400_with_the_limit(services, org, store):
    client = _limited(services, csv_import_max_rows=3)
    cid = await _campaign(client, org)
    status, error = await _post(
        client, org, CSV.format(cid), {"content": "telegram_id\n1001\n1002\n1003\n1004\n"}
    )
    assert status == 400 and "more than 3 rows" in error["error"], error
    status, error = await _post(
        client, org, USERNAMES.format(cid), {"text": "alice_1\nbob_22\ncarol_3\ndave_44"}
    )
    assert status == 400 and "CSV_IMPORT_MAX_ROWS" in error["error"], error
    assert await store.fetchval("SELECT count(*) FROM contacts WHERE organization_id = $1", org.id) == 0
    # Exactly the limit (a header and blank lines are not rows) is accepted.
    status, body = await _post(client, org, CSV.format(cid), {"content": "telegram_id\n1001\n\n1002\n1003\n"})
    assert (status, body["created"]) == (200, 3)
