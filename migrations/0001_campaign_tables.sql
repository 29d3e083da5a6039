-- The campaign tables exactly as the original service left them (original-v1 §3.1): same names, columns,
-- defaults and indexes, so campaignsvc runs against an existing CRM database. Every statement is
-- IF NOT EXISTS: on a database that already has these tables nothing changes.
-- Foreign keys to CRM tables are added only where those tables exist (CRM_SCHEMA=external on an empty
-- database creates the campaign tables alone).

CREATE TABLE IF NOT EXISTS campaigns (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL,
    company_id uuid,
    pipeline_id uuid,
    name varchar(255) NOT NULL,
    status varchar(50) NOT NULL DEFAULT 'draft',
    target_audience jsonb DEFAULT '{}',
    schedule jsonb,
    created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    lead_creation_settings jsonb,
    created_by_user_id uuid,
    deleted_at timestamptz
);
CREATE INDEX IF NOT EXISTS campaigns_organization_id_index ON campaigns (organization_id);
CREATE INDEX IF NOT EXISTS campaigns_status_index ON campaigns (status);

CREATE TABLE IF NOT EXISTS campaign_templates (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL,
    campaign_id uuid REFERENCES campaigns (id) ON DELETE CASCADE,
    name varchar(255) NOT NULL,
    channel varchar(50) NOT NULL,
    content text NOT NULL,
    conditions jsonb DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    media_url text,
    media_type varchar(30),
    media_metadata jsonb DEFAULT '{}',
    variant_group uuid,
    variant_weight integer NOT NULL DEFAULT 100
);
CREATE INDEX IF NOT EXISTS campaign_templates_campaign_id_index ON campaign_templates (campaign_id);
CREATE INDEX IF NOT EXISTS campaign_templates_organization_id_index ON campaign_templates (organization_id);
CREATE INDEX IF NOT EXISTS idx_templates_variant_group ON campaign_templates (variant_group)
    WHERE variant_group IS NOT NULL;

CREATE TABLE IF NOT EXISTS campaign_sequences (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    campaign_id uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    order_index integer NOT NULL,
    template_id uuid NOT NULL REFERENCES campaign_templates (id) ON DELETE RESTRICT,
    delay_hours integer NOT NULL DEFAULT 24,
    conditions jsonb DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    trigger_type varchar(20) NOT NULL DEFAULT 'delay',
    delay_minutes integer NOT NULL DEFAULT 0,
    is_hidden boolean NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS campaign_sequences_campaign_id_index ON campaign_sequences (campaign_id);

CREATE TABLE IF NOT EXISTS campaign_participants (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    campaign_id uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    contact_id uuid NOT NULL,
    bd_account_id uuid,
    channel_id varchar(100),
    status varchar(50) NOT NULL DEFAULT 'pending',
    current_step integer NOT NULL DEFAULT 0,
    next_send_at timestamptz,
    metadata jsonb DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    enqueue_order integer NOT NULL DEFAULT 0,
    replied_at timestamptz,
    failed_at timestamptz,
    last_error text,
    CONSTRAINT campaign_participants_campaign_id_contact_id_unique UNIQUE (campaign_id, contact_id)
);
CREATE INDEX IF NOT EXISTS campaign_participants_campaign_id_index ON campaign_participants (campaign_id);
CREATE INDEX IF NOT EXISTS campaign_participants_campaign_id_next_send_at_index
    ON campaign_participants (campaign_id, next_send_at);
CREATE INDEX IF NOT EXISTS idx_campaign_participants_status
    ON campaign_participants (campaign_id, status, next_send_at);
CREATE INDEX IF NOT EXISTS idx_cp_campaign_status ON campaign_participants (campaign_id, status);
CREATE INDEX IF NOT EXISTS idx_campaign_participants_bd_channel ON campaign_participants (bd_account_id, channel_id)
    WHERE status IN ('pending', 'sent');

CREATE TABLE IF NOT EXISTS campaign_sends (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    campaign_participant_id uuid NOT NULL REFERENCES campaign_participants (id) ON DELETE CASCADE,
    sequence_step integer NOT NULL,
    message_id uuid,
    sent_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    status varchar(50) NOT NULL DEFAULT 'sent',
    metadata jsonb DEFAULT '{}',
    read_at timestamptz
);
CREATE INDEX IF NOT EXISTS campaign_sends_campaign_participant_id_index ON campaign_sends (campaign_participant_id);
CREATE INDEX IF NOT EXISTS idx_campaign_sends_participant ON campaign_sends (campaign_participant_id, sent_at DESC);

DO $$
DECLARE
    fk record;
BEGIN
    FOR fk IN
        SELECT * FROM (VALUES
            ('campaigns', 'organization_id', 'organizations', 'CASCADE'),
            ('campaigns', 'company_id', 'companies', 'NO ACTION'),
            ('campaigns', 'pipeline_id', 'pipelines', 'NO ACTION'),
            ('campaigns', 'created_by_user_id', 'users', 'SET NULL'),
            ('campaign_templates', 'organization_id', 'organizations', 'CASCADE'),
            ('campaign_participants', 'contact_id', 'contacts', 'CASCADE'),
            ('campaign_participants', 'bd_account_id', 'bd_accounts', 'SET NULL')
        ) AS t (tbl, col, ref, on_delete)
    LOOP
        IF to_regclass(fk.ref) IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = fk.tbl || '_' || fk.col || '_foreign') THEN
            EXECUTE format(
                'ALTER TABLE %I ADD CONSTRAINT %I FOREIGN KEY (%I) REFERENCES %I (id) ON DELETE %s',
                fk.tbl, fk.tbl || '_' || fk.col || '_foreign', fk.col, fk.ref, fk.on_delete);
        END IF;
    END LOOP;
    IF to_regclass('conversations') IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'conversations_campaign_id_foreign') THEN
        ALTER TABLE conversations ADD CONSTRAINT conversations_campaign_id_foreign
            FOREIGN KEY (campaign_id) REFERENCES campaigns (id) ON DELETE SET NULL;
    END IF;
END
$$;
