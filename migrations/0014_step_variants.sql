-- A/B variants per step (docs/semantics.md, "A/B variants"): besides its own template (the control), a
-- step may have up to four other templates, each with a weight; every participant gets one arm per step,
-- deterministically, and the ledger records the arm each send used (NULL: the control) so that later
-- outcomes are attributed to it. A step with auto_winner sends only the winning arm, once one is decided,
-- to the participants it has not been sent to yet.
CREATE TABLE IF NOT EXISTS campaign_step_variants (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    step_id uuid NOT NULL REFERENCES campaign_sequences (id) ON DELETE CASCADE,
    template_id uuid NOT NULL,
    weight integer NOT NULL DEFAULT 1 CHECK (weight >= 1),
    created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_campaign_step_variants_step ON campaign_step_variants (step_id, created_at, id);

ALTER TABLE campaign_sends ADD COLUMN IF NOT EXISTS variant_id uuid;
ALTER TABLE campaign_sequences ADD COLUMN IF NOT EXISTS auto_winner boolean NOT NULL DEFAULT false;
