"""Migrations on an empty database: the resulting schema, idempotence, the advisory lock, both modes."""

from __future__ import annotations

import asyncpg
import pytest
import trio
from trio_asyncio import aio_as_trio

from campaignsvc.errors import MigrationError
from campaignsvc.storage import migrate

TS = "timestamptz"
# original-v1 §3.1, column → (type, nullable, default fragment or None)
CAMPAIGN_TABLES = {
    "campaigns": {
        "id": ("uuid", False, "gen_random_uuid()"),
        "organization_id": ("uuid", False, None),
        "company_id": ("uuid", True, None),
        "pipeline_id": ("uuid", True, None),
        "name": ("varchar(255)", False, None),
        "status": ("varchar(50)", False, "'draft'"),
        "target_audience": ("jsonb", True, "'{}'"),
        "schedule": ("jsonb", True, None),
        "created_at": (TS, False, "CURRENT_TIMESTAMP"),
        "updated_at": (TS, False, "CURRENT_TIMESTAMP"),
        "lead_creation_settings": ("jsonb", True, None),
        "created_by_user_id": ("uuid", True, None),
        "deleted_at": (TS, True, None),
        # added by campaignsvc
        "started_at": (TS, True, None),
        "completed_at": (TS, True, None),
        "status_reason": ("varchar(64)", True, None),
    },
    "campaign_templates": {
        "id": ("uuid", False, "gen_random_uuid()"),
        "organization_id": ("uuid", False, None),
        "campaign_id": ("uuid", True, None),
        "name": ("varchar(255)", False, None),
        "channel": ("varchar(50)", False, None),
        "content": ("text", False, None),
        "conditions": ("jsonb", True, "'{}'"),
        "created_at": (TS, False, "CURRENT_TIMESTAMP"),
        "updated_at": (TS, False, "CURRENT_TIMESTAMP"),
        "media_url": ("text", True, None),
        "media_type": ("varchar(30)", True, None),
        "media_metadata": ("jsonb", True, "'{}'"),
        "variant_group": ("uuid", True, None),
        "variant_weight": ("integer", False, "100"),
    },
    "campaign_sequences": {
        "id": ("uuid", False, "gen_random_uuid()"),
        "campaign_id": ("uuid", False, None),
        "order_index": ("integer", False, None),
        "template_id": ("uuid", False, None),
        "delay_hours": ("integer", False, "24"),
        "conditions": ("jsonb", True, "'{}'"),
        "created_at": (TS, False, "CURRENT_TIMESTAMP"),
        "updated_at": (TS, False, "CURRENT_TIMESTAMP"),
        "trigger_type": ("varchar(20)", False, "'delay'"),
        "delay_minutes": ("integer", False, "0"),
        "is_hidden": ("boolean", False, "false"),
        "step_key": ("integer", False, None),
        "auto_winner": ("boolean", False, "false"),
    },
    "campaign_participants": {
        "id": ("uuid", False, "gen_random_uuid()"),
        "campaign_id": ("uuid", False, None),
        "contact_id": ("uuid", False, None),
        "bd_account_id": ("uuid", True, None),
        "channel_id": ("varchar(100)", True, None),
        "status": ("varchar(50)", False, "'pending'"),
        "current_step": ("integer", False, "0"),
        "next_send_at": (TS, True, None),
        "metadata": ("jsonb", True, "'{}'"),
        "created_at": (TS, False, "CURRENT_TIMESTAMP"),
        "updated_at": (TS, False, "CURRENT_TIMESTAMP"),
        "enqueue_order": ("integer", False, "0"),
        "replied_at": (TS, True, None),
        "failed_at": (TS, True, None),
        "last_error": ("text", True, None),
        # added by campaignsvc
        "attempts": ("integer", False, "0"),
        "last_sent_at": (TS, True, None),
        "waiting_reason": ("varchar(32)", True, None),
        "lead_id": ("uuid", True, None),
        "lead_created_at": (TS, True, None),
        "lead_due_at": (TS, True, None),
        "first_sent_at": (TS, True, None),
        "read_at": (TS, True, None),
        "auto_replied_at": (TS, True, None),
        "reply_intent": ("varchar(32)", True, None),
        "reply_intent_by": ("varchar(16)", True, None),
    },
    "campaign_sends": {
        "id": ("uuid", False, "gen_random_uuid()"),
        "campaign_participant_id": ("uuid", False, None),
        "sequence_step": ("integer", False, None),
        "message_id": ("uuid", True, None),
        "sent_at": (TS, False, "CURRENT_TIMESTAMP"),
        "status": ("varchar(50)", False, "'sent'"),
        "metadata": ("jsonb", True, "'{}'"),
        "read_at": (TS, True, None),
        # added by campaignsvc
        "campaign_id": ("uuid", True, None),
        "bd_account_id": ("uuid", True, None),
        "idempotency_key": ("varchar(256)", True, None),
        "content": ("text", True, None),
        "attempts": ("integer", False, "0"),
        "error_class": ("varchar(32)", True, None),
        "last_error": ("text", True, None),
        "claimed_at": (TS, True, None),
        "completed_at": (TS, True, None),
        "owner_epoch": ("bigint", True, None),
        "variant_id": ("uuid", True, None),
        "sent_by": ("text", True, None),
    },
    "campaign_step_variants": {
        "id": ("uuid", False, "gen_random_uuid()"),
        "step_id": ("uuid", False, None),
        "template_id": ("uuid", False, None),
        "weight": ("integer", False, "1"),
        "created_at": (TS, False, "CURRENT_TIMESTAMP"),
    },
}
CAMPAIGN_INDEXES = {
    "campaigns_organization_id_index",
    "campaigns_status_index",
    "campaign_templates_campaign_id_index",
    "campaign_templates_organization_id_index",
    "idx_templates_variant_group",
    "campaign_sequences_campaign_id_index",
    "campaign_sequences_step_key",
    "campaign_participants_campaign_id_contact_id_unique",
    "campaign_participants_campaign_id_index",
    "campaign_participants_campaign_id_next_send_at_index",
    "idx_campaign_participants_status",
    "idx_cp_campaign_status",
    "idx_campaign_participants_bd_channel",
    "campaign_sends_campaign_participant_id_index",
    "idx_campaign_sends_participant",
    "campaign_sends_ledger_key",
    "idx_cp_due_by_account",
    "idx_cp_due_by_campaign",
    "idx_cp_report_page",
    "idx_cp_report_sent",
    "idx_cp_report_read",
    "idx_cp_report_unread",
    "idx_cp_report_failed",
    "idx_cp_reply_intent",
    "campaign_dnc_contact",
    "campaign_dnc_telegram",
    "campaign_dnc_username",
    "idx_campaign_sends_campaign_time",
    "idx_campaign_step_variants_step",
    "idx_campaign_account_leases_owner",
}
NEW_TABLES = {
    "campaign_outbox",
    "campaign_processed_events",
    "campaign_account_state",
    "campaign_account_ramps",
    "campaign_do_not_contact",
    "campaign_step_variants",
    "campaign_instances",
    "campaign_account_leases",
    "campaignsvc_migrations",
}
# original-v1 §3.2: a selection of the columns campaignsvc reads, with their types.
CRM_COLUMNS = {
    "organizations": {
        "id": "uuid",
        "name": "varchar(255)",
        "slug": "varchar(255)",
        "timezone": "varchar(50)",
    },
    "users": {"id": "uuid", "email": "varchar(255)", "organization_id": "uuid", "role": "varchar(50)"},
    "user_profiles": {"user_id": "uuid", "first_name": "varchar(255)", "last_name": "varchar(255)"},
    "companies": {"id": "uuid", "organization_id": "uuid", "name": "varchar(255)"},
    "contacts": {
        "first_name": "varchar(255)",
        "last_name": "varchar(255)",
        "email": "varchar(255)",
        "phone": "varchar(50)",
        "telegram_id": "varchar(100)",
        "display_name": "varchar(255)",
        "username": "varchar(255)",
        "bio": "text",
        "premium": "boolean",
        "consent_flags": "jsonb",
        "deleted_at": TS,
        "company_id": "uuid",
    },
    "bd_accounts": {
        "telegram_id": "varchar(100)",
        "is_active": "boolean",
        "send_blocked_until": TS,
        "max_dm_per_day": "integer",
        "connection_state": "varchar(32)",
        "flood_wait_until": TS,
        "flood_wait_seconds": "integer",
        "flood_reason": "text",
        "flood_last_at": TS,
        "timezone": "varchar(64)",
        "working_hours_start": "varchar(5)",
        "working_hours_end": "varchar(5)",
        "working_days": "integer[]",
        "spam_restricted_at": TS,
        "spam_restriction_source": "varchar(32)",
        "peer_flood_count_1h": "integer",
        "display_name": "varchar(255)",
        "photo_file_id": "text",
        "created_by_user_id": "uuid",
    },
    "bd_account_sync_chats": {
        "bd_account_id": "uuid",
        "telegram_chat_id": "varchar(255)",
        "title": "varchar(500)",
        "peer_type": "varchar(50)",
    },
    "messages": {
        "contact_id": "uuid",
        "bd_account_id": "uuid",
        "channel_id": "varchar(255)",
        "direction": "varchar(20)",
        "content": "text",
        "status": "varchar(50)",
        "metadata": "jsonb",
    },
    "pipelines": {"id": "uuid", "organization_id": "uuid", "name": "varchar(255)", "is_default": "boolean"},
    "stages": {"pipeline_id": "uuid", "name": "varchar(100)", "order_index": "integer"},
    "leads": {
        "contact_id": "uuid",
        "pipeline_id": "uuid",
        "stage_id": "uuid",
        "revenue_amount": "numeric(14,2)",
        "responsible_id": "uuid",
        "deleted_at": TS,
    },
    "contact_telegram_sources": {
        "telegram_chat_id": "varchar(64)",
        "telegram_chat_title": "varchar(512)",
        "search_keyword": "varchar(256)",
    },
    "conversations": {
        "channel_id": "varchar(255)",
        "campaign_id": "uuid",
        "shared_chat_created_at": TS,
        "won_at": TS,
        "revenue_amount": "numeric(12,2)",
        "lost_at": TS,
        "lead_id": "uuid",
    },
    "lead_activity_log": {
        "lead_id": "uuid",
        "type": "varchar(50)",
        "metadata": "jsonb",
        "correlation_id": "varchar(255)",
    },
}


async def _query(dsn: str, sql: str, *args: object) -> list[asyncpg.Record]:
    async def run():
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return await aio_as_trio(run)()


async def _columns(dsn: str) -> dict[str, dict[str, tuple[str, bool, str | None]]]:
    rows = await _query(
        dsn,
        """
        SELECT c.relname AS table_name, a.attname AS column_name,
               format_type(a.atttypid, a.atttypmod) AS type, NOT a.attnotnull AS nullable,
               pg_get_expr(d.adbin, d.adrelid) AS default
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
        """,
    )
    short = {
        "timestamp with time zone": TS,
        "character varying": "varchar",
    }
    out: dict[str, dict[str, tuple[str, bool, str | None]]] = {}
    for r in rows:
        typ = r["type"]
        for long, s in short.items():
            typ = typ.replace(long, s)
        out.setdefault(r["table_name"], {})[r["column_name"]] = (typ, r["nullable"], r["default"])
    return out


async def _indexes(dsn: str) -> set[str]:
    rows = await _query(dsn, "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
    return {r["indexname"] for r in rows}


async def test_migrate__empty_database_gets_campaign_and_crm_schema(empty_database_url):
    applied = await migrate.apply(empty_database_url, migrate.discover(crm_schema="standalone"))
    assert applied[0].startswith("crm/")
    assert "campaign/0001_campaign_tables.sql" in applied

    columns = await _columns(empty_database_url)
    for table, expected in CAMPAIGN_TABLES.items():
        assert set(columns[table]) == set(expected), table
        for name, (typ, nullable, default) in expected.items():
            got_type, got_nullable, got_default = columns[table][name]
            assert (got_type, got_nullable) == (typ, nullable), f"{table}.{name}"
            if default is None:
                assert got_default is None, f"{table}.{name} default {got_default}"
            else:
                assert got_default is not None and default in got_default, (
                    f"{table}.{name} default {got_default}"
                )
    for table, expected in CRM_COLUMNS.items():
        for name, typ in expected.items():
            assert columns[table][name][0] == typ, f"{table}.{name}"
    assert set(columns) >= NEW_TABLES
    assert await _indexes(empty_database_url) >= CAMPAIGN_INDEXES

    fks = await _query(
        empty_database_url,
        "SELECT conname FROM pg_constraint WHERE contype = 'f' AND conname LIKE '%_foreign'",
    )
    assert {
        "campaigns_organization_id_foreign",
        "campaign_participants_contact_id_foreign",
        "conversations_campaign_id_foreign",
    } <= {r["conname"] for r in fks}


async def test_migrate__rerun_changes_nothing(empty_database_url):
    migrations = migrate.discover(crm_schema="standalone")
    await migrate.apply(empty_database_url, migrations)
    before = await _columns(empty_database_url)
    assert await migrate.apply(empty_database_url, migrations) == []
    assert await _columns(empty_database_url) == before
    recorded = await _query(empty_database_url, "SELECT count(*) AS n FROM campaignsvc_migrations")
    assert recorded[0]["n"] == len(migrations)


async def test_migrate__external_mode_creates_only_campaign_tables(empty_database_url):
    applied = await migrate.apply(empty_database_url, migrate.discover(crm_schema="external"))
    assert all(name.startswith("campaign/") for name in applied)
    tables = set(await _columns(empty_database_url))
    assert set(CAMPAIGN_TABLES) <= tables
    assert not tables & set(CRM_COLUMNS)


async def test_migrate__existing_original_tables_are_extended_in_place(empty_database_url):
    # A CRM database that already ran the original's migrations: v1 tables exist, with data.
    crm = migrate.discover(crm_schema="standalone")
    await migrate.apply(empty_database_url, [m for m in crm if m.migration_set == "crm"] + [crm[1]])
    await _query(
        empty_database_url,
        "WITH o AS (INSERT INTO organizations (name, slug) VALUES ('o', 'o') RETURNING id) "
        "INSERT INTO campaigns (organization_id, name) SELECT id, 'old' FROM o",
    )
    await migrate.apply(empty_database_url, crm)
    rows = await _query(empty_database_url, "SELECT name, started_at FROM campaigns")
    assert [(r["name"], r["started_at"]) for r in rows] == [("old", None)]


async def test_migrate__edited_applied_migration_is_refused(empty_database_url):
    migrations = migrate.discover(crm_schema="external")
    await migrate.apply(empty_database_url, migrations)
    edited = [migrate.Migration(m.migration_set, m.name, m.sql + "\n-- edited") for m in migrations]
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrate.apply(empty_database_url, edited)


async def test_migrate__broken_file_is_rolled_back_and_named(empty_database_url):
    bad = [migrate.Migration("campaign", "9999_bad.sql", "CREATE TABLE ok_part (id int); SELECT nope;")]
    with pytest.raises(MigrationError, match=r"9999_bad\.sql"):
        await migrate.apply(empty_database_url, bad)
    assert "ok_part" not in await _columns(empty_database_url)


async def test_migrate__concurrent_runs_apply_each_file_once(empty_database_url):
    migrations = migrate.discover(crm_schema="standalone")
    results: list[list[str]] = []

    async def one():
        results.append(await migrate.apply(empty_database_url, migrations))

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(one)
    assert sorted(len(r) for r in results) == [0, 0, len(migrations)]
