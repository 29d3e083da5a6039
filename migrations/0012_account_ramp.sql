-- Ramp-up of a new BD account (docs/semantics.md, "Ramp-up"): its daily budget starts at start_per_day on
-- started_on (a calendar day of the account's zone) and grows by increase_per_day on each later local day,
-- never above max_per_day; the account's effective cap is the lower of its own cap and that budget.
-- After a long FLOOD_WAIT or a PEER_FLOOD the budget steps down to half (step_down_budget, at
-- stepped_down_at) and holds until step_down_until, then grows again from there.
CREATE TABLE IF NOT EXISTS campaign_account_ramps (
    bd_account_id uuid PRIMARY KEY,
    start_per_day integer NOT NULL CHECK (start_per_day >= 1),
    increase_per_day integer NOT NULL CHECK (increase_per_day >= 0),
    max_per_day integer NOT NULL CHECK (max_per_day >= start_per_day),
    started_on date NOT NULL,
    step_down_budget integer CHECK (step_down_budget >= 1),
    stepped_down_at timestamptz,
    step_down_until timestamptz,
    step_down_reason varchar(32),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The account's ramp goes with the account (added where the CRM's bd_accounts exists, as
-- campaign_account_state's key).
DO $$
BEGIN
    IF to_regclass('bd_accounts') IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'campaign_account_ramps_bd_account_id_foreign') THEN
        ALTER TABLE campaign_account_ramps ADD CONSTRAINT campaign_account_ramps_bd_account_id_foreign
            FOREIGN KEY (bd_account_id) REFERENCES bd_accounts (id) ON DELETE CASCADE;
    END IF;
END
$$;
