-- Step identity: a participant's progress and a send's idempotency key follow the step, not its position.
--
-- campaign_sequences.step_key is a step's number within its campaign, given once when the step is created
-- and never reused (campaigns.step_keys_used counts the numbers handed out). The ledger's sequence_step and
-- the idempotency key `campaign:{c}:participant:{p}:step:{k}` use it, so moving, inserting or deleting
-- steps never gives a sent step a new key. Existing steps get their position as their key: that is what
-- the ledger and the keys already sent to Messaging hold for campaigns whose steps were never edited.

ALTER TABLE campaign_sequences ADD COLUMN IF NOT EXISTS step_key integer;
ALTER TABLE campaigns ADD COLUMN IF NOT EXISTS step_keys_used integer NOT NULL DEFAULT 0;

UPDATE campaign_sequences s SET step_key = r.k
FROM (
    SELECT id, (row_number() OVER (PARTITION BY campaign_id ORDER BY order_index, created_at, id) - 1)::int AS k
    FROM campaign_sequences
) r
WHERE s.id = r.id AND s.step_key IS NULL;

-- Never below a number the ledger already holds (steps deleted before this migration).
UPDATE campaigns c SET step_keys_used = GREATEST(
    c.step_keys_used,
    COALESCE((SELECT max(step_key) + 1 FROM campaign_sequences s WHERE s.campaign_id = c.id), 0),
    COALESCE((SELECT max(sd.sequence_step) + 1 FROM campaign_sends sd
              JOIN campaign_participants cp ON cp.id = sd.campaign_participant_id
              WHERE cp.campaign_id = c.id), 0));

-- Every writer (this service, the duplicate endpoint, the original service in a shared database) gets a
-- fresh key: a trigger rather than code at each INSERT.
CREATE OR REPLACE FUNCTION campaign_sequences_assign_step_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.step_key IS NULL THEN
        UPDATE campaigns SET step_keys_used = step_keys_used + 1
        WHERE id = NEW.campaign_id
        RETURNING step_keys_used - 1 INTO NEW.step_key;
    END IF;
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS campaign_sequences_step_key ON campaign_sequences;
CREATE TRIGGER campaign_sequences_step_key BEFORE INSERT ON campaign_sequences
    FOR EACH ROW EXECUTE FUNCTION campaign_sequences_assign_step_key();

ALTER TABLE campaign_sequences ALTER COLUMN step_key SET NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS campaign_sequences_step_key ON campaign_sequences (campaign_id, step_key);
