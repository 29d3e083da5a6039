-- CRM baseline: the tables of the CRM that campaignsvc reads or writes (original-v1 §3.2), with the same
-- names and types. Applied only with CRM_SCHEMA=standalone (tests, demo, running on its own); against the
-- real CRM database (CRM_SCHEMA=external) the CRM owns these tables and this set is skipped.
-- `messages` is a plain table here (the CRM hash-partitions it by organization_id).

CREATE TABLE IF NOT EXISTS organizations (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name varchar(255) NOT NULL,
    slug varchar(255) NOT NULL UNIQUE,
    timezone varchar(50) DEFAULT 'UTC',
    created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email varchar(255) NOT NULL UNIQUE,
    password_hash varchar(255),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    role varchar(50) DEFAULT 'bidi',
    created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS users_organization_id_index ON users (organization_id);

CREATE TABLE IF NOT EXISTS user_profiles (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    organization_id uuid REFERENCES organizations (id) ON DELETE CASCADE,
    first_name varchar(255),
    last_name varchar(255),
    avatar_url text,
    timezone varchar(64),
    created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS companies (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name varchar(255) NOT NULL,
    industry varchar(255),
    size varchar(50),
    description text,
    website varchar(255),
    created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS companies_organization_id_index ON companies (organization_id);

CREATE TABLE IF NOT EXISTS contacts (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    company_id uuid REFERENCES companies (id),
    first_name varchar(255) NOT NULL,
    last_name varchar(255),
    email varchar(255),
    phone varchar(50),
    telegram_id varchar(100),
    display_name varchar(255),
    username varchar(255),
    bio text,
    premium boolean,
    consent_flags jsonb DEFAULT '{}',
    deleted_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS contacts_organization_id_index ON contacts (organization_id);
CREATE INDEX IF NOT EXISTS contacts_company_id_index ON contacts (company_id);
CREATE UNIQUE INDEX IF NOT EXISTS idx_contacts_org_telegram_id_unique ON contacts (organization_id, telegram_id)
    WHERE telegram_id IS NOT NULL AND TRIM(telegram_id) <> '';

CREATE TABLE IF NOT EXISTS bd_accounts (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    telegram_id varchar(100) NOT NULL UNIQUE,
    phone_number varchar(50),
    is_active boolean NOT NULL DEFAULT true,
    created_by_user_id uuid REFERENCES users (id) ON DELETE SET NULL,
    first_name varchar(255),
    last_name varchar(255),
    username varchar(255),
    photo_file_id text,
    display_name varchar(255),
    is_demo boolean NOT NULL DEFAULT false,
    send_blocked_until timestamptz,
    max_dm_per_day integer,
    connection_state varchar(32) NOT NULL DEFAULT 'disconnected',
    flood_wait_until timestamptz,
    flood_wait_seconds integer,
    flood_reason text,
    flood_last_at timestamptz,
    timezone varchar(64),
    working_hours_start varchar(5),
    working_hours_end varchar(5),
    working_days integer[],
    auto_responder_enabled boolean NOT NULL DEFAULT false,
    auto_responder_system_prompt text,
    auto_responder_history_count integer NOT NULL DEFAULT 25,
    spam_restricted_at timestamptz,
    spam_restriction_source varchar(32),
    peer_flood_count_1h integer NOT NULL DEFAULT 0,
    peer_flood_first_at timestamptz,
    last_spambot_check_at timestamptz,
    last_spambot_result text,
    spam_check_retry_count integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS bd_accounts_organization_id_index ON bd_accounts (organization_id);

CREATE TABLE IF NOT EXISTS bd_account_sync_chats (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    bd_account_id uuid NOT NULL REFERENCES bd_accounts (id) ON DELETE CASCADE,
    telegram_chat_id varchar(255) NOT NULL,
    title varchar(500),
    peer_type varchar(50) NOT NULL,
    is_folder boolean NOT NULL DEFAULT false,
    folder_id integer,
    access_hash bigint,
    sync_list_origin varchar(32) DEFAULT 'sync_selection',
    created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (bd_account_id, telegram_chat_id)
);

CREATE TABLE IF NOT EXISTS messages (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    contact_id uuid,
    bd_account_id uuid,
    channel varchar(50) NOT NULL,
    channel_id varchar(255) NOT NULL,
    direction varchar(20) NOT NULL,
    content text NOT NULL,
    status varchar(50) DEFAULT 'sent',
    unread boolean DEFAULT true,
    metadata jsonb DEFAULT '{}',
    sent_at timestamptz,
    telegram_message_id varchar(64),
    telegram_date timestamptz,
    loaded_at timestamptz,
    reply_to_telegram_id varchar(64),
    telegram_entities jsonb,
    telegram_media jsonb,
    telegram_extra jsonb,
    our_reactions jsonb,
    reactions jsonb,
    created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (id, organization_id)
);
CREATE INDEX IF NOT EXISTS messages_contact_id_index ON messages (organization_id, contact_id);
CREATE INDEX IF NOT EXISTS messages_chat_index ON messages (bd_account_id, channel_id);
CREATE UNIQUE INDEX IF NOT EXISTS messages_telegram_unique
    ON messages (bd_account_id, channel_id, telegram_message_id, organization_id)
    WHERE telegram_message_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS pipelines (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name varchar(255) NOT NULL,
    description text,
    is_default boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS pipelines_organization_id_index ON pipelines (organization_id);

CREATE TABLE IF NOT EXISTS stages (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    pipeline_id uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name varchar(100) NOT NULL,
    order_index integer NOT NULL,
    color varchar(20),
    created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS stages_pipeline_id_index ON stages (pipeline_id);

CREATE TABLE IF NOT EXISTS leads (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    contact_id uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    pipeline_id uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    stage_id uuid NOT NULL REFERENCES stages (id),
    order_index integer DEFAULT 0,
    responsible_id uuid REFERENCES users (id) ON DELETE SET NULL,
    revenue_amount numeric(14, 2),
    deleted_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (organization_id, contact_id, pipeline_id)
);
CREATE INDEX IF NOT EXISTS leads_contact_id_index ON leads (contact_id);

CREATE TABLE IF NOT EXISTS contact_telegram_sources (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    contact_id uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    bd_account_id uuid REFERENCES bd_accounts (id) ON DELETE CASCADE,
    telegram_chat_id varchar(64),
    telegram_chat_title varchar(512),
    search_keyword varchar(256),
    created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (organization_id, contact_id, bd_account_id, telegram_chat_id)
);

CREATE TABLE IF NOT EXISTS conversations (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    bd_account_id uuid REFERENCES bd_accounts (id) ON DELETE CASCADE,
    channel varchar(50) NOT NULL DEFAULT 'telegram',
    channel_id varchar(255) NOT NULL,
    contact_id uuid REFERENCES contacts (id) ON DELETE SET NULL,
    lead_id uuid REFERENCES leads (id) ON DELETE SET NULL,
    campaign_id uuid,
    became_lead_at timestamptz,
    last_viewed_at timestamptz,
    first_manager_reply_at timestamptz,
    shared_chat_created_at timestamptz,
    shared_chat_channel_id bigint,
    won_at timestamptz,
    revenue_amount numeric(12, 2),
    lost_at timestamptz,
    loss_reason text,
    shared_chat_invite_link text,
    created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (organization_id, bd_account_id, channel, channel_id),
    CONSTRAINT conversations_revenue_requires_won CHECK (revenue_amount IS NULL OR won_at IS NOT NULL),
    CONSTRAINT conversations_not_won_and_lost CHECK (NOT (won_at IS NOT NULL AND lost_at IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS conversations_campaign_id_index ON conversations (campaign_id);

CREATE TABLE IF NOT EXISTS lead_activity_log (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    lead_id uuid NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    type varchar(50) NOT NULL,
    metadata jsonb DEFAULT '{}',
    correlation_id varchar(255),
    created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS lead_activity_log_lead_id_index ON lead_activity_log (lead_id);
