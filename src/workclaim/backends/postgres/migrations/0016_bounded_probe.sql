-- Version 16: the probe of floors_wanted (version 15) is bounded in time (issue 18).
--
-- The probe walks what a claim without floors would walk, and under a held snapshot that is
-- every item claimed since the snapshot began: about 2 ms per 20,000 items per walk, four walks
-- a probe, so after an hour's hold at 1,000 items/s a second or more, and after a night's
-- forgotten `idle in transaction` session most of a core, once per window renewal. The answer
-- needs none of that walk past the threshold. So the caller bounds the probe's statement
-- (`statement_timeout`, set locally by the backend), and a walk cut short by it says what any
-- walk that long would say: the floors are wanted, for a full window. Reading the floors is
-- always safe, so a probe that could not finish in its budget for another reason (a lock wait
-- behind a raise's TRUNCATE, a starved server) errs on the safe side too.
--
-- The walks run in a block of their own, so the cancel is caught there (by name: OTHERS does
-- not catch QUERY_CANCELED) and the rest of the function, which the timeout no longer
-- interrupts, records the window.
CREATE OR REPLACE FUNCTION {schema}.floors_wanted(p_probe boolean DEFAULT false) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
    c_probe_entries constant bigint := 1000;
    c_probe_blocks  constant bigint := 512;
    c_want_periods  constant bigint := 30;
    c_renew_periods constant bigint := 5;
    v_period  bigint := {schema}.floor_period();
    v_until   bigint := (SELECT s.last_value FROM {schema}.floor_wanted AS s);
    v_queues  bigint;
    v_entries bigint;
    v_blocks  bigint;
    v_round   integer;
BEGIN
    IF NOT p_probe THEN
        IF v_until >= v_period + c_renew_periods THEN
            RETURN true;
        END IF;
        IF (SELECT s.last_value FROM {schema}.floor_probed AS s) >= v_period
           OR NOT pg_try_advisory_xact_lock(hashtext('{schema}'), -2) THEN
            RETURN v_until >= v_period;
        END IF;
        PERFORM setval('{schema}.floor_probed', v_period);
    END IF;
    IF NOT current_setting('track_counts')::boolean THEN
        RETURN true;
    END IF;
    BEGIN
        -- The walks of version 15: each queue's from the start of its order to its first
        -- queued item, and the leases' to the first live one; twice, the second counted.
        FOR v_round IN 1..2 LOOP
            v_entries := -pg_stat_get_xact_tuples_returned('{schema}.items_claimable'::regclass)
                         - pg_stat_get_xact_tuples_returned('{schema}.items_leases'::regclass);
            v_blocks := -pg_stat_get_xact_blocks_fetched('{schema}.items_claimable'::regclass)
                        - pg_stat_get_xact_blocks_fetched('{schema}.items_leases'::regclass);
            SELECT count(*) INTO v_queues
            FROM (SELECT DISTINCT m.queue FROM {schema}.floor_marks AS m
                  WHERE m.queue IS NOT NULL) AS q
            LEFT JOIN LATERAL (
                SELECT i.id FROM {schema}.items AS i
                WHERE i.queue = q.queue AND i.status = 'queued'
                ORDER BY i.priority, i.run_at, i.id LIMIT 1
            ) AS w ON true;
            PERFORM (SELECT e.id FROM {schema}.items AS e
                     WHERE e.status = 'claimed' ORDER BY e.expires_at LIMIT 1);
            v_entries := v_entries
                         + pg_stat_get_xact_tuples_returned('{schema}.items_claimable'::regclass)
                         + pg_stat_get_xact_tuples_returned('{schema}.items_leases'::regclass);
            v_blocks := v_blocks
                        + pg_stat_get_xact_blocks_fetched('{schema}.items_claimable'::regclass)
                        + pg_stat_get_xact_blocks_fetched('{schema}.items_leases'::regclass);
        END LOOP;
    EXCEPTION WHEN query_canceled THEN
        -- Cut short by the caller's budget: a walk that long is past any threshold.
        PERFORM setval('{schema}.floor_wanted', v_period + c_want_periods);
        RETURN true;
    END;
    IF v_entries > c_probe_entries + v_queues + 1
       OR v_blocks > c_probe_blocks + 8 * (v_queues + 1) THEN
        PERFORM setval('{schema}.floor_wanted', v_period + c_want_periods);
        RETURN true;
    END IF;
    -- Not wanted now: a window still open runs out as it was set.
    RETURN v_until >= v_period;
END
$$;
