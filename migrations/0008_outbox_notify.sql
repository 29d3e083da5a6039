-- Rows written to the outbox wake the relay when their transaction commits, whoever wrote them (any
-- code path, any instance): one notification per inserting statement, delivered on commit, merged by
-- PostgreSQL within a transaction. The relay still polls, so a notification missed while it was not
-- listening only delays publication.
CREATE OR REPLACE FUNCTION campaignsvc_outbox_written() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('campaign_outbox', '');
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS campaign_outbox_written ON campaign_outbox;
CREATE TRIGGER campaign_outbox_written AFTER INSERT ON campaign_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION campaignsvc_outbox_written();
