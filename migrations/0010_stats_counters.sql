-- Counters per campaign, kept by PostgreSQL in the transactions that change the rows they count, so
-- GET /stats reads a handful of rows instead of counting a million participants and their ledger
-- (bench/stats_scale.py).
--
-- campaign_participant_counts: per (campaign, status), the participants (total), those sent to
--   (first_sent_at set) and those with a read mark (read_at set). A status nobody is in has no row.
-- campaign_send_counts: per campaign, its ledger rows with status 'sent' (the stats' totalSends). A
--   campaign with none has no row.
--
-- Every writer keeps them right without knowing they exist (the dispatcher, the recorder, replies,
-- lifecycle, audience imports and removals, foreign-key cascades, the original service in a shared
-- database): statement-level triggers with transition tables turn each INSERT, UPDATE and DELETE into
-- grouped deltas, the transaction collects them, and a deferred trigger adds them to the counters when it
-- commits.
--
-- Why at commit, not in the statement: a counter row is shared by every transaction of its campaign. Were
-- it updated in the statement, a transaction would hold it while its later statements wait for participant
-- rows, and another transaction holding such a row would wait for the counter: a deadlock the tables alone
-- never had. Applied at commit, the counters are the last rows a transaction locks, in one order
-- (participant counters by campaign and status, then send counters by campaign), held only until its
-- commit ends, and nothing waits for a participant or ledger row while holding one.
CREATE TABLE IF NOT EXISTS campaign_participant_counts (
    campaign_id uuid NOT NULL,
    status varchar(50) NOT NULL,
    total bigint NOT NULL,
    sent bigint NOT NULL,
    read bigint NOT NULL,
    PRIMARY KEY (campaign_id, status)
);

CREATE TABLE IF NOT EXISTS campaign_send_counts (
    campaign_id uuid PRIMARY KEY,
    sent bigint NOT NULL
);

-- The deltas a transaction collected and has not applied yet: one row per database session (pid), so no
-- two transactions ever write the same row, rewritten by each transaction of the session that collects
-- something, so the table stays a page or two. The row holds this transaction's deltas only while the
-- transaction-local setting campaignsvc.counts_pending names it (its xid); otherwise what is there was an
-- earlier transaction's. seq changes whenever a transaction starts over in the row, which queues its
-- commit-time work (the triggers on this table). Element i of the arrays is one delta: of
-- campaign_participant_counts (counter 'participants': campaign, status, total, sent, read) or of
-- campaign_send_counts (counter 'sends': campaign, total = change of its sent rows). Nothing here
-- outlives a transaction, hence UNLOGGED.
CREATE UNLOGGED TABLE IF NOT EXISTS campaign_count_pending (
    pid integer PRIMARY KEY,
    seq bigint NOT NULL,
    counter text[] NOT NULL,
    campaign_id uuid[] NOT NULL,
    status varchar[] NOT NULL,
    total bigint[] NOT NULL,
    sent bigint[] NOT NULL,
    read bigint[] NOT NULL
);

-- Adds a statement's deltas to its transaction's: merged into the session's row when it holds this
-- transaction's, else written over it (or inserted: the session's first). A savepoint rolled back takes
-- its deltas, the setting and what they queued with it.
CREATE OR REPLACE FUNCTION campaignsvc_counts_collect(
    k text[], c uuid[], s varchar[], t bigint[], se bigint[], r bigint[]
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('campaignsvc.counts_pending', true) = pg_current_xact_id()::text THEN
        UPDATE campaign_count_pending p
        SET (counter, campaign_id, status, total, sent, read) = (
            SELECT array_agg(m.k), array_agg(m.c), array_agg(m.s), array_agg(m.t), array_agg(m.se), array_agg(m.r)
            FROM (
                SELECT u.k, u.c, u.s, sum(u.t)::bigint AS t, sum(u.se)::bigint AS se, sum(u.r)::bigint AS r
                FROM unnest(p.counter || k, p.campaign_id || c, p.status || s, p.total || t, p.sent || se, p.read || r)
                     AS u (k, c, s, t, se, r)
                GROUP BY u.k, u.c, u.s
            ) m
        )
        WHERE p.pid = pg_backend_pid();
    ELSE
        -- Named first: once constraints are IMMEDIATE, the write below applies the deltas at once.
        PERFORM set_config('campaignsvc.counts_pending', pg_current_xact_id()::text, true);
        UPDATE campaign_count_pending
        SET seq = seq + 1, counter = k, campaign_id = c, status = s, total = t, sent = se, read = r
        WHERE pid = pg_backend_pid();
        IF NOT FOUND THEN
            INSERT INTO campaign_count_pending (pid, seq, counter, campaign_id, status, total, sent, read)
            VALUES (pg_backend_pid(), 1, k, c, s, t, se, r);
        END IF;
    END IF;
END
$$;

-- A statement on campaign_participants: its deltas per (campaign, status). An UPDATE that changes no
-- status, first send or read mark (most of the dispatcher's) collects nothing.
CREATE OR REPLACE FUNCTION campaignsvc_participant_counts_collect() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    c uuid[];
    s varchar[];
    t bigint[];
    se bigint[];
    r bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(campaign_id), array_agg(status), array_agg(n), array_agg(ns), array_agg(nr)
        INTO c, s, t, se, r
        FROM (SELECT campaign_id, status, count(*) AS n, count(first_sent_at) AS ns, count(read_at) AS nr
              FROM new_rows GROUP BY campaign_id, status) d;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(campaign_id), array_agg(status), array_agg(n), array_agg(ns), array_agg(nr)
        INTO c, s, t, se, r
        FROM (SELECT campaign_id, status, -count(*) AS n, -count(first_sent_at) AS ns, -count(read_at) AS nr
              FROM old_rows GROUP BY campaign_id, status) d;
    ELSE
        SELECT array_agg(campaign_id), array_agg(status), array_agg(n), array_agg(ns), array_agg(nr)
        INTO c, s, t, se, r
        FROM (
            SELECT campaign_id, status, sum(n) AS n, sum(ns) AS ns, sum(nr) AS nr
            FROM (
                SELECT campaign_id, status, 1 AS n, (first_sent_at IS NOT NULL)::int AS ns,
                       (read_at IS NOT NULL)::int AS nr
                FROM new_rows
                UNION ALL
                SELECT campaign_id, status, -1, -(first_sent_at IS NOT NULL)::int, -(read_at IS NOT NULL)::int
                FROM old_rows
            ) changed
            GROUP BY campaign_id, status
            HAVING sum(n) <> 0 OR sum(ns) <> 0 OR sum(nr) <> 0
        ) d;
    END IF;
    IF c IS NOT NULL THEN
        PERFORM campaignsvc_counts_collect(array_fill('participants'::text, ARRAY[cardinality(c)]), c, s, t, se, r);
    END IF;
    RETURN NULL;
END
$$;

-- A statement on campaign_sends: the change of each campaign's 'sent' rows. Claims (rows inserted as
-- 'sending') and most outcomes other than sent collect nothing.
CREATE OR REPLACE FUNCTION campaignsvc_send_counts_collect() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    c uuid[];
    t bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(campaign_id), array_agg(n) INTO c, t
        FROM (SELECT campaign_id, count(*) AS n FROM new_rows
              WHERE status = 'sent' AND campaign_id IS NOT NULL GROUP BY campaign_id) d;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(campaign_id), array_agg(n) INTO c, t
        FROM (SELECT campaign_id, -count(*) AS n FROM old_rows
              WHERE status = 'sent' AND campaign_id IS NOT NULL GROUP BY campaign_id) d;
    ELSE
        SELECT array_agg(campaign_id), array_agg(n) INTO c, t
        FROM (
            SELECT campaign_id, sum(n) AS n
            FROM (
                SELECT campaign_id, 1 AS n FROM new_rows WHERE status = 'sent' AND campaign_id IS NOT NULL
                UNION ALL
                SELECT campaign_id, -1 FROM old_rows WHERE status = 'sent' AND campaign_id IS NOT NULL
            ) changed
            GROUP BY campaign_id HAVING sum(n) <> 0
        ) d;
    END IF;
    IF c IS NOT NULL THEN
        PERFORM campaignsvc_counts_collect(
            array_fill('sends'::text, ARRAY[cardinality(c)]), c, array_fill('sent'::varchar, ARRAY[cardinality(c)]),
            t, array_fill(0::bigint, ARRAY[cardinality(c)]), array_fill(0::bigint, ARRAY[cardinality(c)]));
    END IF;
    RETURN NULL;
END
$$;

-- At commit: the transaction's deltas, applied in one order (participant counters by campaign and status,
-- then send counters by campaign), so two transactions never wait for each other's counter rows in a
-- cycle; a row that reaches zero goes.
CREATE OR REPLACE FUNCTION campaignsvc_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    k text[];
    c uuid[];
    s varchar[];
    t bigint[];
    se bigint[];
    r bigint[];
    emptied_c uuid[];
    emptied_s varchar[];
BEGIN
    IF current_setting('campaignsvc.counts_pending', true) IS DISTINCT FROM pg_current_xact_id()::text THEN
        RETURN NULL;  -- applied already (SET CONSTRAINTS ... IMMEDIATE), or rebuilt since
    END IF;
    PERFORM set_config('campaignsvc.counts_pending', '', true);
    SELECT counter, campaign_id, status, total, sent, read INTO k, c, s, t, se, r
    FROM campaign_count_pending WHERE pid = pg_backend_pid();
    IF 'participants' = ANY (k) THEN
        WITH applied AS (
            INSERT INTO campaign_participant_counts AS pc (campaign_id, status, total, sent, read)
            SELECT d.c, d.s, d.t, d.se, d.r
            FROM unnest(k, c, s, t, se, r) AS d (k, c, s, t, se, r)
            WHERE d.k = 'participants' AND (d.t <> 0 OR d.se <> 0 OR d.r <> 0)
            ORDER BY d.c, d.s
            ON CONFLICT (campaign_id, status) DO UPDATE
            SET total = pc.total + EXCLUDED.total, sent = pc.sent + EXCLUDED.sent, read = pc.read + EXCLUDED.read
            RETURNING pc.campaign_id, pc.status, pc.total, pc.sent, pc.read
        )
        SELECT array_agg(campaign_id), array_agg(status) INTO emptied_c, emptied_s
        FROM applied WHERE total = 0 AND sent = 0 AND read = 0;
        IF emptied_c IS NOT NULL THEN
            -- Rows this transaction has just locked: no new wait.
            DELETE FROM campaign_participant_counts pc
            USING unnest(emptied_c, emptied_s) AS e (campaign_id, status)
            WHERE pc.campaign_id = e.campaign_id AND pc.status = e.status
              AND pc.total = 0 AND pc.sent = 0 AND pc.read = 0;
        END IF;
    END IF;
    IF 'sends' = ANY (k) THEN
        WITH applied AS (
            INSERT INTO campaign_send_counts AS sc (campaign_id, sent)
            SELECT d.c, d.t FROM unnest(k, c, t) AS d (k, c, t)
            WHERE d.k = 'sends' AND d.t <> 0
            ORDER BY d.c
            ON CONFLICT (campaign_id) DO UPDATE SET sent = sc.sent + EXCLUDED.sent
            RETURNING sc.campaign_id, sc.sent
        )
        SELECT array_agg(campaign_id) INTO emptied_c FROM applied WHERE sent = 0;
        IF emptied_c IS NOT NULL THEN
            DELETE FROM campaign_send_counts WHERE campaign_id = ANY (emptied_c) AND sent = 0;
        END IF;
    END IF;
    RETURN NULL;
END
$$;

-- Both counters from the rows themselves: the backfill below, after a TRUNCATE, and a repair should a
-- writer ever bypass the triggers (session_replication_role = replica, triggers disabled). Writers wait
-- while it runs; the locks first wait for the transactions in flight, whose deltas are then applied, so
-- nothing is pending but what this transaction collected, which the recount includes.
CREATE OR REPLACE FUNCTION campaignsvc_counts_rebuild() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    LOCK TABLE campaign_participants, campaign_sends IN SHARE ROW EXCLUSIVE MODE;
    DELETE FROM campaign_count_pending;
    PERFORM set_config('campaignsvc.counts_pending', '', true);
    DELETE FROM campaign_participant_counts;
    INSERT INTO campaign_participant_counts (campaign_id, status, total, sent, read)
    SELECT campaign_id, status, count(*), count(first_sent_at), count(read_at)
    FROM campaign_participants GROUP BY campaign_id, status;
    DELETE FROM campaign_send_counts;
    INSERT INTO campaign_send_counts (campaign_id, sent)
    SELECT campaign_id, count(*) FROM campaign_sends
    WHERE status = 'sent' AND campaign_id IS NOT NULL GROUP BY campaign_id;
END
$$;

CREATE OR REPLACE FUNCTION campaignsvc_counts_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM campaignsvc_counts_rebuild();
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS campaign_participants_counts_insert ON campaign_participants;
CREATE TRIGGER campaign_participants_counts_insert AFTER INSERT ON campaign_participants
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION campaignsvc_participant_counts_collect();
DROP TRIGGER IF EXISTS campaign_participants_counts_update ON campaign_participants;
CREATE TRIGGER campaign_participants_counts_update AFTER UPDATE ON campaign_participants
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION campaignsvc_participant_counts_collect();
DROP TRIGGER IF EXISTS campaign_participants_counts_delete ON campaign_participants;
CREATE TRIGGER campaign_participants_counts_delete AFTER DELETE ON campaign_participants
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION campaignsvc_participant_counts_collect();
DROP TRIGGER IF EXISTS campaign_participants_counts_truncate ON campaign_participants;
CREATE TRIGGER campaign_participants_counts_truncate AFTER TRUNCATE ON campaign_participants
    FOR EACH STATEMENT EXECUTE FUNCTION campaignsvc_counts_truncated();

DROP TRIGGER IF EXISTS campaign_sends_counts_insert ON campaign_sends;
CREATE TRIGGER campaign_sends_counts_insert AFTER INSERT ON campaign_sends
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION campaignsvc_send_counts_collect();
DROP TRIGGER IF EXISTS campaign_sends_counts_update ON campaign_sends;
CREATE TRIGGER campaign_sends_counts_update AFTER UPDATE ON campaign_sends
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION campaignsvc_send_counts_collect();
DROP TRIGGER IF EXISTS campaign_sends_counts_delete ON campaign_sends;
CREATE TRIGGER campaign_sends_counts_delete AFTER DELETE ON campaign_sends
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION campaignsvc_send_counts_collect();
DROP TRIGGER IF EXISTS campaign_sends_counts_truncate ON campaign_sends;
CREATE TRIGGER campaign_sends_counts_truncate AFTER TRUNCATE ON campaign_sends
    FOR EACH STATEMENT EXECUTE FUNCTION campaignsvc_counts_truncated();

-- Deferred: fires when the transaction commits. Queued once per transaction, by the statement that
-- starts the session's row over for it.
DROP TRIGGER IF EXISTS campaign_count_pending_apply_insert ON campaign_count_pending;
CREATE CONSTRAINT TRIGGER campaign_count_pending_apply_insert
    AFTER INSERT ON campaign_count_pending DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION campaignsvc_counts_apply();
DROP TRIGGER IF EXISTS campaign_count_pending_apply_update ON campaign_count_pending;
CREATE CONSTRAINT TRIGGER campaign_count_pending_apply_update
    AFTER UPDATE ON campaign_count_pending DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (OLD.seq IS DISTINCT FROM NEW.seq)
    EXECUTE FUNCTION campaignsvc_counts_apply();

-- The rows written before this migration. The triggers exist from here on in this transaction, and the
-- locks keep writers out until it commits: no change is counted twice or missed.
SELECT campaignsvc_counts_rebuild();
