-- Per-campaign account pauses (the original paused an account for every campaign at once) and the
-- durable marker of lead creation (exactly one pipeline call per participant, across restarts).

CREATE TABLE IF NOT EXISTS campaign_account_pauses (
    campaign_id uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    bd_account_id uuid NOT NULL,
    paused_until timestamptz,          -- NULL: until resumed
    created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (campaign_id, bd_account_id)
);

-- lead_id / lead_created_at: set once the pipeline service confirmed the lead (201 or 409).
-- lead_due_at: a lead is owed (trigger met) and not created yet; the lead creator works these off.
ALTER TABLE campaign_participants ADD COLUMN IF NOT EXISTS lead_id uuid;
ALTER TABLE campaign_participants ADD COLUMN IF NOT EXISTS lead_created_at timestamptz;
ALTER TABLE campaign_participants ADD COLUMN IF NOT EXISTS lead_due_at timestamptz;
CREATE INDEX IF NOT EXISTS idx_cp_lead_due ON campaign_participants (lead_due_at)
    WHERE lead_due_at IS NOT NULL AND lead_created_at IS NULL;
