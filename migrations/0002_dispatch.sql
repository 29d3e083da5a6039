-- What the new design adds to the original tables. Additive only: new nullable (or defaulted) columns,
-- new tables, new indexes. An existing CRM database is migrated in place.

-- Columns the original's later migrations added; ensured here for databases that predate them.
ALTER TABLE campaign_participants ADD COLUMN IF NOT EXISTS replied_at timestamptz;
ALTER TABLE campaign_participants ADD COLUMN IF NOT EXISTS failed_at timestamptz;
ALTER TABLE campaign_participants ADD COLUMN IF NOT EXISTS last_error text;
ALTER TABLE campaign_sends ADD COLUMN IF NOT EXISTS read_at timestamptz;

-- Campaign lifecycle bookkeeping.
ALTER TABLE campaigns ADD COLUMN IF NOT EXISTS started_at timestamptz;
ALTER TABLE campaigns ADD COLUMN IF NOT EXISTS completed_at timestamptz;
-- Why the campaign is in its status when the system (not a user) put it there, e.g. 'peer_flood'.
ALTER TABLE campaigns ADD COLUMN IF NOT EXISTS status_reason varchar(64);

-- Participant scheduling state.
-- attempts: transient failures of the current step (reset when the step advances).
-- last_sent_at: when the last step was handed to Messaging successfully (reply wait counts from it).
-- waiting_reason: why a participant that is not terminal is not being sent right now
--   (window, gap, cap, flood, reply, retry, in_doubt, account_paused, paused).
ALTER TABLE campaign_participants ADD COLUMN IF NOT EXISTS attempts integer NOT NULL DEFAULT 0;
ALTER TABLE campaign_participants ADD COLUMN IF NOT EXISTS last_sent_at timestamptz;
ALTER TABLE campaign_participants ADD COLUMN IF NOT EXISTS waiting_reason varchar(32);

-- Due work per account and per campaign: the dispatcher's only scans.
CREATE INDEX IF NOT EXISTS idx_cp_due_by_account ON campaign_participants (bd_account_id, next_send_at)
    WHERE status IN ('pending', 'sent') AND next_send_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_cp_due_by_campaign ON campaign_participants (campaign_id, next_send_at)
    WHERE status IN ('pending', 'sent') AND next_send_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_cp_contact ON campaign_participants (contact_id);

-- The send ledger. One row per (participant, step) for every row written by campaignsvc (those carry an
-- idempotency key); rows the original wrote (audit rows without a key) stay as they are.
-- status: sending → sent | failed | deferred | in_doubt | skipped (deferred and in_doubt go back to sending
-- on the next attempt, with the same idempotency key).
ALTER TABLE campaign_sends ADD COLUMN IF NOT EXISTS campaign_id uuid;
ALTER TABLE campaign_sends ADD COLUMN IF NOT EXISTS bd_account_id uuid;
ALTER TABLE campaign_sends ADD COLUMN IF NOT EXISTS idempotency_key varchar(256);
ALTER TABLE campaign_sends ADD COLUMN IF NOT EXISTS content text;
ALTER TABLE campaign_sends ADD COLUMN IF NOT EXISTS attempts integer NOT NULL DEFAULT 0;
ALTER TABLE campaign_sends ADD COLUMN IF NOT EXISTS error_class varchar(32);
ALTER TABLE campaign_sends ADD COLUMN IF NOT EXISTS last_error text;
ALTER TABLE campaign_sends ADD COLUMN IF NOT EXISTS claimed_at timestamptz;
ALTER TABLE campaign_sends ADD COLUMN IF NOT EXISTS completed_at timestamptz;
ALTER TABLE campaign_sends ADD COLUMN IF NOT EXISTS owner_epoch bigint;
CREATE UNIQUE INDEX IF NOT EXISTS campaign_sends_ledger_key ON campaign_sends (campaign_participant_id, sequence_step)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_campaign_sends_account_sent ON campaign_sends (bd_account_id, sent_at)
    WHERE status = 'sent';
CREATE INDEX IF NOT EXISTS idx_campaign_sends_campaign_status ON campaign_sends (campaign_id, status);
CREATE INDEX IF NOT EXISTS idx_campaign_sends_unfinished ON campaign_sends (bd_account_id)
    WHERE status IN ('sending', 'in_doubt');

-- Per-account limiter state that must survive a restart, and the account's lease (one owning instance).
CREATE TABLE IF NOT EXISTS campaign_account_state (
    bd_account_id uuid PRIMARY KEY,
    last_send_at timestamptz,
    block_reason varchar(64),
    lease_owner uuid,
    lease_epoch bigint NOT NULL DEFAULT 0,
    lease_expires_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- Transactional outbox: events are written with the state change that causes them and relayed to
-- RabbitMQ in seq order with publisher confirms. id is the event id (AMQP message id).
CREATE TABLE IF NOT EXISTS campaign_outbox (
    seq bigserial PRIMARY KEY,
    id uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    organization_id uuid,
    event_type varchar(100) NOT NULL,
    envelope jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    published_at timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    last_error text
);
CREATE INDEX IF NOT EXISTS idx_campaign_outbox_unpublished ON campaign_outbox (seq) WHERE published_at IS NULL;

-- Inbound events already handled (idempotency by event id); pruned after a retention period.
CREATE TABLE IF NOT EXISTS campaign_processed_events (
    event_id uuid PRIMARY KEY,
    event_type varchar(100) NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_campaign_processed_events_at ON campaign_processed_events (processed_at);

DO $$
BEGIN
    IF to_regclass('bd_accounts') IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'campaign_account_state_bd_account_id_foreign') THEN
        ALTER TABLE campaign_account_state ADD CONSTRAINT campaign_account_state_bd_account_id_foreign
            FOREIGN KEY (bd_account_id) REFERENCES bd_accounts (id) ON DELETE CASCADE;
    END IF;
END
$$;
