-- workclaim PostgreSQL schema, version 11: a claim over several queues none of which uses
-- groups keeps the plain (priority, run_at, id) order across them (issue 15, docs/contract.md,
-- "Fair order").
--
-- claim_flow (version 6, with version 8's enable_seqscan = off) ranks the items it may lease by
-- (k, served, run_at, id), k an item's position in its (queue, group). A claim of queues a and b
-- where a has a policy (so a row in `groups`, which sends the claim here) but neither uses
-- groups made each queue's default group a turn of its own: claim([a, b], limit=4) with a1..a3
-- older than b1..b2 leased a1, b1, a2, b2 instead of a1, a2, a3, b1. Now, when no claimed queue
-- has a group row other than the default's, the batch is picked by (run_at, id) within the
-- priority, every queue still giving at most what its limits leave room for. With groups in
-- any claimed queue nothing changes (groups of several queues take turns as groups of their
-- own queue), nor with one queue (one default group: k already follows run_at, id).
--
-- The function is replaced whole (same signature and result); the body is version 6's but for
-- v_plain, its probe of `groups` (primary-key index, only for several queues) and the picked
-- order.

CREATE OR REPLACE FUNCTION {schema}.claim_flow(
    p_queues     text[],
    p_worker     text,
    p_lease      interval,
    p_limit      integer,
    p_now        timestamptz
)
RETURNS TABLE (
    id bigint, queue text, payload json, token bigint, attempts integer,
    max_attempts integer, expires_at timestamptz, grp text
)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
#variable_conflict use_column
DECLARE
    v_now      timestamptz;
    v_left     integer := p_limit;
    v_pq       text[];
    v_conc     integer[];
    v_gconc    integer[];
    v_rn       integer[];
    v_rs       double precision[];
    v_grn      integer[];
    v_grs      double precision[];
    v_paused   boolean[];
    v_active   text[];
    v_limited  boolean;
    v_rated    boolean;
    v_qbudget  integer[];
    v_gdef     integer[];
    v_gb       jsonb;
    v_prev     bigint;
    v_prev_was bigint;
    v_stopped  text[];
    v_prio     integer;
    v_ids      bigint[];
    v_queues   text[];
    v_payloads json[];
    v_tokens   bigint[];
    v_attempts integer[];
    v_most     integer[];
    v_expires  timestamptz[];
    v_grps     text[];
    v_plain    boolean := false;
BEGIN
    -- 1. The policies, locked.
    SELECT coalesce(array_agg(p.queue), ARRAY[]::text[]), array_agg(p.concurrency),
           array_agg(p.group_concurrency), array_agg(p.rate_count), array_agg(p.rate_seconds),
           array_agg(p.group_rate_count), array_agg(p.group_rate_seconds), array_agg(p.paused)
    INTO v_pq, v_conc, v_gconc, v_rn, v_rs, v_grn, v_grs, v_paused
    FROM (SELECT * FROM {schema}.policies AS p WHERE p.queue = ANY(p_queues)
          ORDER BY p.queue FOR UPDATE) AS p;
    v_now := coalesce(p_now, clock_timestamp());
    -- A queue paused since that read (it had no row to lock) is paused for this claim too: the
    -- pause committed before this statement's snapshot, so perhaps before v_now.
    SELECT v_pq || coalesce(array_agg(p.queue), ARRAY[]::text[]),
           v_paused || coalesce(array_agg(p.paused), ARRAY[]::boolean[])
    INTO v_pq, v_paused
    FROM {schema}.policies AS p
    WHERE p.queue = ANY(p_queues) AND p.paused AND NOT p.queue = ANY(v_pq);

    v_active := ARRAY(
        SELECT a.q FROM unnest(p_queues) AS a (q)
        WHERE NOT EXISTS (SELECT FROM unnest(v_pq, v_paused) AS x (q, paused)
                          WHERE x.q = a.q AND x.paused));
    IF cardinality(v_active) = 0 OR v_left <= 0 THEN
        RETURN;
    END IF;
    -- Several queues, none of which uses groups (a group row other than the default's: the
    -- queue got a grouped enqueue once): all their items are ranked as one default group, in
    -- the plain (priority, run_at, id) order; a queue's limits still cap what it gives (its
    -- room in `ranked`). Without this each queue's default group took a turn of its own.
    IF cardinality(p_queues) > 1 THEN
        v_plain := NOT EXISTS (SELECT FROM {schema}.groups AS g
                               WHERE g.queue = ANY(p_queues) AND g.grp <> '');
    END IF;
    v_limited := EXISTS (SELECT FROM unnest(v_pq, v_conc, v_gconc, v_rn, v_grn, v_paused)
                             AS x (q, c, gc, rn, grn, paused)
                         WHERE NOT x.paused
                           AND num_nonnulls(x.c, x.gc, x.rn, x.grn) > 0);
    v_rated := EXISTS (SELECT FROM unnest(v_rn, v_grn, v_paused) AS x (rn, grn, paused)
                       WHERE NOT x.paused AND num_nonnulls(x.rn, x.grn) > 0);

    IF v_rated THEN
        -- Claims that have left the queues' longest windows are forgotten.
        DELETE FROM {schema}.claim_log AS l
        USING unnest(v_pq, v_rs, v_grs) AS x (q, rs, grs)
        WHERE l.queue = x.q AND num_nonnulls(x.rs, x.grs) > 0
          AND l.at <= v_now - greatest(x.rs, x.grs) * interval '1 second';
    END IF;

    LOOP
        -- The next priority with a claimable item.
        SELECT min(h.priority) INTO v_prio
        FROM unnest(v_active) AS a (q)
        CROSS JOIN LATERAL (
            SELECT c.priority FROM {schema}.items AS c
            WHERE c.queue = a.q AND c.status = 'queued' AND c.run_at <= v_now
              AND c.priority > coalesce(v_prev, -2147483649)
            ORDER BY c.priority LIMIT 1
        ) AS h;
        EXIT WHEN v_prio IS NULL;
        v_prev_was := v_prev;
        v_prev := v_prio;

        -- 2a. What each queue (v_qbudget, in v_active's order) and group may take: groups with
        -- live leases or recent claims in v_gb ('queue/group': budget), every other group the
        -- queue's v_gdef (NULL: no group limit). The claim's store time v_now is read inside
        -- this statement, so after its snapshot: every lease end or pause this claim does not
        -- see committed after v_now, so it was stamped after v_now too (or the pause returned
        -- after it), and the counts are right at v_now.
        IF v_limited THEN
            WITH clock AS MATERIALIZED (
                SELECT coalesce(p_now, clock_timestamp()) AS now
            ),
            pol AS (
                SELECT a.q, a.ord, x.c, x.gc, x.rn, x.rs, x.grn, x.grs
                FROM unnest(v_active) WITH ORDINALITY AS a (q, ord)
                LEFT JOIN unnest(v_pq, v_conc, v_gconc, v_rn, v_rs, v_grn, v_grs)
                    AS x (q, c, gc, rn, rs, grn, grs) ON x.q = a.q
            ),
            live AS MATERIALIZED (
                SELECT l.queue AS q, coalesce(l.grp, '') AS g, count(*) AS n
                FROM {schema}.items AS l
                WHERE l.status = 'claimed' AND l.expires_at > (SELECT clock.now FROM clock)
                  AND l.queue = ANY(ARRAY(SELECT pol.q FROM pol
                                          WHERE num_nonnulls(pol.c, pol.gc) > 0))
                GROUP BY 1, 2
            ),
            recent AS MATERIALIZED (
                SELECT r.queue AS q, r.grp AS g,
                       count(*) FILTER (WHERE r.at > clock.now - pol.rs * interval '1 second')
                           AS qn,
                       count(*) FILTER (WHERE r.at > clock.now - pol.grs * interval '1 second')
                           AS gn
                FROM clock, pol JOIN {schema}.claim_log AS r ON r.queue = pol.q
                WHERE num_nonnulls(pol.rn, pol.grn) > 0
                  AND r.at > clock.now - greatest(pol.rs, pol.grs) * interval '1 second'
                GROUP BY 1, 2
            ),
            per_group AS (
                SELECT k.q, k.g,
                       least(pol.gc - coalesce(live.n, 0), pol.grn - coalesce(recent.gn, 0))
                           AS budget
                FROM (SELECT live.q, live.g FROM live
                      UNION SELECT recent.q, recent.g FROM recent) AS k
                JOIN pol ON pol.q = k.q
                LEFT JOIN live ON live.q = k.q AND live.g = k.g
                LEFT JOIN recent ON recent.q = k.q AND recent.g = k.g
            )
            SELECT
                (SELECT array_agg(greatest(least(
                            pol.c - coalesce((SELECT sum(live.n) FROM live
                                              WHERE live.q = pol.q), 0),
                            pol.rn - coalesce((SELECT sum(recent.qn) FROM recent
                                               WHERE recent.q = pol.q), 0),
                            v_left), 0)::integer ORDER BY pol.ord) FROM pol),
                (SELECT array_agg(least(pol.gc, pol.grn) ORDER BY pol.ord) FROM pol),
                (SELECT coalesce(jsonb_object_agg(pg.q || '/' || pg.g, greatest(pg.budget, 0))
                                     FILTER (WHERE pg.budget IS NOT NULL), jsonb_build_object())
                 FROM per_group AS pg),
                (SELECT clock.now FROM clock),
                (SELECT array_agg(p.queue) FROM {schema}.policies AS p
                 WHERE p.queue = ANY(v_active) AND p.paused)
            INTO v_qbudget, v_gdef, v_gb, v_now, v_stopped;
        ELSE
            v_qbudget := array_fill(v_left, ARRAY[cardinality(v_active)]);
            v_gdef := array_fill(NULL::integer, ARRAY[cardinality(v_active)]);
            v_gb := jsonb_build_object();
            SELECT coalesce(p_now, clock_timestamp()),
                   (SELECT array_agg(p.queue) FROM {schema}.policies AS p
                    WHERE p.queue = ANY(v_active) AND p.paused)
            INTO v_now, v_stopped;
        END IF;
        IF v_stopped IS NOT NULL THEN
            -- Paused since the locked read (a queue that had no row to lock): left out, and
            -- this priority looked at again without it.
            v_active := ARRAY(SELECT a.q FROM unnest(v_active) AS a (q)
                              WHERE NOT a.q = ANY(v_stopped));
            EXIT WHEN cardinality(v_active) = 0;
            v_prev := v_prev_was;
            CONTINUE;
        END IF;
        CONTINUE WHEN NOT EXISTS (SELECT FROM unnest(v_qbudget) AS b WHERE b > 0);

        -- 2b-d. Pick and lease.
        WITH q AS (
            SELECT a.q, a.budget, a.gdef
            FROM unnest(v_active, v_qbudget, v_gdef) AS a (q, budget, gdef)
            WHERE a.budget > 0
        ),
        -- Never-served groups rank by their heads' (run_at, id): each one's head is read
        -- (without a lock), the best the queue may take are kept and then locked.
        heads0 AS MATERIALIZED (
            SELECT s.* FROM q CROSS JOIN LATERAL (
                SELECT g.queue AS q, g.grp AS g, g.served, b.budget AS gbudget,
                       q.budget AS qbudget, h.id, h.run_at
                FROM (
                    SELECT n.queue, n.grp, n.served FROM {schema}.groups AS n
                    WHERE n.queue = q.q AND n.served = 0
                    UNION ALL  -- a queue claimed with these but with no group row: its default
                    SELECT q.q, '', 0 WHERE NOT EXISTS (
                        SELECT FROM {schema}.groups AS n WHERE n.queue = q.q)
                ) AS g
                CROSS JOIN LATERAL (
                    SELECT least(q.budget, coalesce((v_gb ->> (g.queue || '/' || g.grp))::integer,
                                                    q.gdef)) AS budget
                ) AS b
                CROSS JOIN LATERAL (
                    SELECT i.id, i.run_at FROM {schema}.items AS i
                    WHERE i.queue = g.queue AND coalesce(i.grp, '') = g.grp
                      AND i.status = 'queued' AND i.priority = v_prio AND i.run_at <= v_now
                    ORDER BY i.run_at, i.id LIMIT 1
                ) AS h
                WHERE b.budget > 0
                ORDER BY h.run_at, h.id
                LIMIT q.budget
            ) AS s
        ),
        locked0 AS MATERIALIZED (
            -- Primary-key probes: the status test as a CASE matches no partial index, so the
            -- plan cannot turn into a walk of every queued item.
            SELECT i.id FROM {schema}.items AS i
            WHERE i.id = ANY(ARRAY(SELECT heads0.id FROM heads0))
              AND CASE WHEN i.status = 'queued' THEN true ELSE false END
            FOR UPDATE SKIP LOCKED
        ),
        heads AS MATERIALIZED (
            SELECT heads0.* FROM heads0 JOIN locked0 ON locked0.id = heads0.id
            UNION ALL
            SELECT s.* FROM q CROSS JOIN LATERAL (
                SELECT g.queue AS q, g.grp AS g, g.served, b.budget AS gbudget,
                       q.budget AS qbudget, h.id, h.run_at
                FROM {schema}.groups AS g
                CROSS JOIN LATERAL (
                    SELECT least(q.budget, coalesce((v_gb ->> (g.queue || '/' || g.grp))::integer,
                                                    q.gdef)) AS budget
                ) AS b
                CROSS JOIN LATERAL (
                    SELECT i.id, i.run_at FROM {schema}.items AS i
                    WHERE i.queue = g.queue AND coalesce(i.grp, '') = g.grp
                      AND i.status = 'queued' AND i.priority = v_prio AND i.run_at <= v_now
                    ORDER BY i.run_at, i.id LIMIT 1 FOR UPDATE SKIP LOCKED
                ) AS h
                WHERE g.queue = q.q AND g.served > 0 AND b.budget > 0
                ORDER BY g.served
                LIMIT q.budget
            ) AS s
        ),
        -- 2c. Each group's next items, only when a queue has fewer heads than it may take: a
        -- group gives at most what it may take and what the queue's other heads leave room for.
        more AS (
            SELECT h.q, h.g, h.served, h.qbudget, x.id, x.run_at, 1 + x.n AS k
            FROM (SELECT heads.*, count(*) OVER (PARTITION BY heads.q) AS nheads
                  FROM heads) AS h
            CROSS JOIN LATERAL (
                SELECT y.id, y.run_at, row_number() OVER (ORDER BY y.run_at, y.id) AS n
                FROM (
                    SELECT i.id, i.run_at FROM {schema}.items AS i
                    WHERE i.queue = h.q AND coalesce(i.grp, '') = h.g
                      AND i.status = 'queued' AND i.priority = v_prio AND i.run_at <= v_now
                      AND (i.run_at, i.id) > (h.run_at, h.id)
                    ORDER BY i.run_at, i.id
                    LIMIT least(h.gbudget, h.qbudget - h.nheads + 1) - 1
                    FOR UPDATE SKIP LOCKED
                ) AS y
            ) AS x
            WHERE h.nheads < h.qbudget AND h.gbudget > 1
        ),
        -- 2d. The fair order, within each queue's room.
        ranked AS (
            SELECT c.*, row_number() OVER (PARTITION BY c.q
                                           ORDER BY c.k, c.served, c.run_at, c.id) AS qk
            FROM (SELECT heads.q, heads.g, heads.served, heads.qbudget, heads.id,
                         heads.run_at, 1::bigint AS k
                  FROM heads
                  UNION ALL
                  SELECT more.q, more.g, more.served, more.qbudget, more.id, more.run_at,
                         more.k
                  FROM more) AS c
        ),
        -- v_plain (no queue uses groups): one default group across the queues, so (run_at, id);
        -- within a queue `ranked` already has that order (one group, k follows run_at, id).
        picked AS MATERIALIZED (
            SELECT r.id FROM ranked AS r WHERE r.qk <= r.qbudget
            ORDER BY CASE WHEN v_plain THEN 0 ELSE r.k END,
                     CASE WHEN v_plain THEN 0 ELSE r.served END, r.run_at, r.id
            LIMIT v_left
        ),
        tokens AS MATERIALIZED (
            SELECT array_agg(t.id) AS ids, array_agg(t.token) AS tokens
            FROM (SELECT picked.id, nextval('{schema}.token_seq') AS token FROM picked) AS t
        ),
        claimed AS (
            UPDATE {schema}.items AS i
            SET status = 'claimed', token = t.tokens[array_position(t.ids, i.id)],
                attempts = i.attempts + 1, worker = p_worker, expires_at = v_now + p_lease,
                lease_length = p_lease, updated_at = v_now,
                holds_slot = EXISTS (SELECT FROM unnest(v_pq, v_conc, v_gconc) AS x (q, c, gc)
                                     WHERE x.q = i.queue AND num_nonnulls(x.c, x.gc) > 0)
            FROM tokens AS t
            WHERE i.id = ANY((SELECT tokens.ids FROM tokens)::bigint[])
            RETURNING i.id, i.queue, i.payload, i.token, i.attempts, i.max_attempts,
                      i.expires_at, i.history, i.grp
        ),
        logged AS (
            INSERT INTO {schema}.history (item_id, kind, at, attempt, status, token, worker)
            SELECT c.id, 'claimed', v_now, c.attempts, 'claimed', c.token, p_worker
            FROM claimed AS c WHERE c.history
        ),
        rated AS (
            INSERT INTO {schema}.claim_log (queue, grp, at)
            SELECT c.queue, coalesce(c.grp, ''), v_now FROM claimed AS c
            WHERE v_rated AND EXISTS (
                SELECT FROM unnest(v_pq, v_rn, v_grn) AS x (q, rn, grn)
                WHERE x.q = c.queue AND num_nonnulls(x.rn, x.grn) > 0)
        )
        SELECT array_agg(c.id), array_agg(c.queue), array_agg(c.payload), array_agg(c.token),
               array_agg(c.attempts), array_agg(c.max_attempts), array_agg(c.expires_at),
               array_agg(c.grp)
        INTO v_ids, v_queues, v_payloads, v_tokens, v_attempts, v_most, v_expires, v_grps
        FROM claimed AS c;

        CONTINUE WHEN v_ids IS NULL;
        -- The groups served now, locked in key order, then their `served` raised.
        PERFORM FROM {schema}.groups AS g
        WHERE (g.queue, g.grp) IN (SELECT x.q, coalesce(x.g, '')
                                   FROM unnest(v_queues, v_grps) AS x (q, g))
        ORDER BY g.queue, g.grp
        FOR UPDATE;
        UPDATE {schema}.groups AS g SET served = greatest(g.served, s.token)
        FROM (SELECT x.q, coalesce(x.g, '') AS g, max(x.token) AS token
              FROM unnest(v_queues, v_grps, v_tokens) AS x (q, g, token)
              GROUP BY 1, 2) AS s
        WHERE g.queue = s.q AND g.grp = s.g;

        RETURN QUERY
        SELECT * FROM unnest(v_ids, v_queues, v_payloads, v_tokens, v_attempts, v_most,
                             v_expires, v_grps);
        v_left := v_left - cardinality(v_ids);
        EXIT WHEN v_left <= 0;
    END LOOP;
END
$$;
