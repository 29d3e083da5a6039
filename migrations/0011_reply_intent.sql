-- What a reply was (usecases/inbound.py, domain/replies.py): an automatic answer (Telegram's away and
-- greeting messages, a connected business bot) is recorded apart and does not stop the sequence; a person's
-- reply carries the intent the classifier read in it, which a person may correct (then the rules never
-- overwrite it).
ALTER TABLE campaign_participants ADD COLUMN IF NOT EXISTS auto_replied_at timestamptz;
ALTER TABLE campaign_participants ADD COLUMN IF NOT EXISTS reply_intent varchar(32);
ALTER TABLE campaign_participants ADD COLUMN IF NOT EXISTS reply_intent_by varchar(16);

-- repliesByIntent of the stats: replied participants of a campaign by intent.
CREATE INDEX IF NOT EXISTS idx_cp_reply_intent ON campaign_participants (campaign_id, reply_intent)
    WHERE status = 'replied';
