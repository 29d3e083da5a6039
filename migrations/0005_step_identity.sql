-- Step identity: a participant's progress and a send's idempotency key follow the step, not its position.
--
-- campaign_sequences.step_key is a step's number within its campaign, given once when the step is created
-- and not reused while the ledger holds it. The ledger's sequence_step and the idempotency key
-- `campaign:{c}:participant:{p}:step:{k}` use it, so moving, inserting or deleting steps never gives a sent
-- step a new key. Existing steps get their position as their key: that is what the ledger and the keys
-- already sent to Messaging hold for campaigns whose steps were never edited.

ALTER TABLE campaign_sequences ADD COLUMN IF NOT EXISTS step_key integer;

UPDATE campaign_sequences s SET step_key = r.k
FROM (
    SELECT id, (row_number() OVER (PARTITION BY campaign_id ORDER BY order_index, created_at, id) - 1)::int AS k
    FROM campaign_sequences
) r
WHERE s.id = r.id AND s.step_key IS NULL;

-- Every writer (this service, the duplicate endpoint, the original service in a shared database) gets a
-- fresh key: a trigger rather than code at each INSERT. The next key is past every step of the campaign and
-- every number its ledger holds (a deleted step's sends keep theirs). Rows inserted earlier by the same
-- statement are visible here (a volatile BEFORE ROW trigger), so a multi-row copy numbers its steps too.
CREATE OR REPLACE FUNCTION campaign_sequences_assign_step_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.step_key IS NULL THEN
        NEW.step_key := GREATEST(
            COALESCE((SELECT max(step_key) + 1 FROM campaign_sequences WHERE campaign_id = NEW.campaign_id), 0),
            COALESCE((SELECT max(sequence_step) + 1 FROM campaign_sends WHERE campaign_id = NEW.campaign_id), 0));
    END IF;
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS campaign_sequences_step_key ON campaign_sequences;
CREATE TRIGGER campaign_sequences_step_key BEFORE INSERT ON campaign_sequences
    FOR EACH ROW EXECUTE FUNCTION campaign_sequences_assign_step_key();

ALTER TABLE campaign_sequences ALTER COLUMN step_key SET NOT NULL;
-- Two writers racing for one campaign's next key fail loudly instead of sharing it.
CREATE UNIQUE INDEX IF NOT EXISTS campaign_sequences_step_key ON campaign_sequences (campaign_id, step_key);
