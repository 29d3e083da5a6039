-- One do-not-contact list per organization (usecases/do_not_contact.py): contacts, Telegram ids and
-- usernames nobody in the organization may message again. Checked when a campaign enrols its audience and
-- in every claim, immediately before a send; filled by a person, by a reply read as "unsubscribe", or by
-- Messaging saying the user blocked the account.
CREATE TABLE IF NOT EXISTS campaign_do_not_contact (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL,
    contact_id uuid,
    telegram_id varchar(64),
    username varchar(64),  -- lower case, without the leading @
    reason varchar(32) NOT NULL DEFAULT 'manual',  -- manual | reply_unsubscribe | blocked_by_user
    added_by_user_id uuid,
    source_campaign_id uuid,
    created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CHECK (contact_id IS NOT NULL OR telegram_id IS NOT NULL OR username IS NOT NULL)
);
CREATE UNIQUE INDEX IF NOT EXISTS campaign_dnc_contact ON campaign_do_not_contact (organization_id, contact_id)
    WHERE contact_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS campaign_dnc_telegram ON campaign_do_not_contact (organization_id, telegram_id)
    WHERE telegram_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS campaign_dnc_username ON campaign_do_not_contact (organization_id, username)
    WHERE username IS NOT NULL;
CREATE INDEX IF NOT EXISTS campaign_dnc_listing ON campaign_do_not_contact (organization_id, created_at DESC, id);
