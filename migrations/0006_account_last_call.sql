-- campaign_account_state.last_call_at: the exact start of the account's latest Messaging call whose outcome
-- was recorded. last_send_at is the latest start known at all (a claim writes the start it plans before the
-- call); when last_call_at has caught up with it, the latest call's start is exact, otherwise its outcome
-- was never recorded (the process died) and a restarted limiter allows for a late departure.
ALTER TABLE campaign_account_state ADD COLUMN IF NOT EXISTS last_call_at timestamptz;
