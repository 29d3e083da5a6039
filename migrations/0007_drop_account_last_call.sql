-- The exact start of an account's latest call is the ledger's sent_at (written with the outcome, in the
-- outcome batch's own statement); campaign_account_state.last_call_at repeated it in a second statement per
-- batch, which delayed every release of a campaign slot by a round-trip.
ALTER TABLE campaign_account_state DROP COLUMN IF EXISTS last_call_at;
