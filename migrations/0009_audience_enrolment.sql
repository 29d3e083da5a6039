-- Starting a campaign with a large audience writes its participants in two transactions
-- (actors/enrolment.py): the earliest due ones with the campaign's activation, so its first messages go out
-- while the rest is written in a second transaction. A row here says the campaign's audience is not all
-- written yet; the writer of the rest holds it locked (FOR UPDATE) while it writes and deletes it when done.
--
-- While the row exists: the campaign is not completed for lack of participants; every change to the
-- campaign that locks it (storage/campaigns.get_for_update) first waits for the writer; and a writer that
-- died (the row exists, nobody holds it) is replaced by the next enrolment of the campaign — its actor's,
-- or a lifecycle change's — which enrols the audience's contacts still missing.
CREATE TABLE IF NOT EXISTS campaign_enrolments (
    campaign_id uuid PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP
);
