-- Several instances on one database (docs/architecture.md, "Several instances"): each BD account is sent
-- for by the one instance that holds its lease. An instance is alive while its heartbeat is fresher than
-- the lease length; its leases live as long as it does (one heartbeat renews all of them, not one write
-- per account). A lease's epoch grows with every change of hands, and every claim and outcome write names
-- the epoch it was made under: once the lease moved on, the database refuses them.
CREATE TABLE IF NOT EXISTS campaign_instances (
    id text PRIMARY KEY,
    boot_id uuid NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS campaign_account_leases (
    bd_account_id uuid PRIMARY KEY,
    owner text,                -- NULL: released, free to take
    epoch bigint NOT NULL DEFAULT 1,
    taken_at timestamptz NOT NULL DEFAULT now(),
    released_at timestamptz
);
CREATE INDEX IF NOT EXISTS idx_campaign_account_leases_owner ON campaign_account_leases (owner);

-- The instance whose claim wrote (or last took back) the ledger row.
ALTER TABLE campaign_sends ADD COLUMN IF NOT EXISTS sent_by text;
