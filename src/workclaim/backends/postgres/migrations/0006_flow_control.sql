-- workclaim PostgreSQL schema, version 6: flow control (docs/contract.md, "Flow control"): an
-- item's group, a queue's stored policy (limits and the paused flag), the greatest token issued
-- per group (the fair order's `served`) and the claims a rate window counts.
--
-- The fast path stays as it was: a claim first probes `groups` for its queues; a queue with no
-- row there (no grouped item ever enqueued, no policy ever set) is claimed by the plain
-- `(priority, run_at, id)` walk of version 5, unchanged. Every other claim goes through
-- `claim_flow` below.

-- The item's group, fixed at enqueue; NULL is the queue's default group (so every item of an
-- earlier version is in its queue's default group, and adding the column rewrites nothing).
ALTER TABLE {schema}.items ADD COLUMN grp text;
-- Set by claim_flow on a lease of a queue with a concurrency limit: its end (complete, release,
-- fail) frees a slot, so it notifies waiting claims. Leases of other queues never notify on
-- complete, as before.
ALTER TABLE {schema}.items ADD COLUMN holds_slot boolean;

-- A group's claimable items in claim order ('' for the default group): the fair order's
-- per-group probe, so a claim reads the head of each group it serves and never walks a deep
-- group. Every queued item is in it: a claim's UPDATE (to 'claimed') and a completion add no
-- entry to it; an enqueue, a release or a retry add one (a partial index of named groups only
-- would leave a claim of the default group walking the named groups' items ahead of its head).
CREATE INDEX items_group_claimable
    ON {schema}.items (queue, (coalesce(grp, '')), priority, run_at, id)
    WHERE status = 'queued';

-- A queue's policy. A row exists only while the queue has a limit or is paused (set_policy and
-- set_paused delete it otherwise), so that claims lock it exactly when they must: every claim
-- of a queue with a row locks the row FOR UPDATE, so two claims of a limited queue never both
-- see the same free slot, and a claim of a queue without one takes no lock. Rate windows in
-- seconds (double precision: the policy reads back exactly as it was set).
CREATE TABLE {schema}.policies (
    queue              text    PRIMARY KEY,
    concurrency        integer,
    group_concurrency  integer,
    rate_count         integer,
    rate_seconds       double precision,
    group_rate_count   integer,
    group_rate_seconds double precision,
    paused             boolean NOT NULL DEFAULT false
);

-- The groups of a queue that uses groups or flow control, with the greatest lease token the
-- store issued to an item of theirs (0: never served). '' is the default group. A row is added
-- by the first grouped enqueue of a group (with the default group's row) and by set_policy /
-- set_paused (the default group's row); rows are never removed, so `served` is remembered.
-- The claim walks groups_served from the least recently served group.
CREATE TABLE {schema}.groups (
    queue   text   NOT NULL,
    grp     text   NOT NULL,
    served  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (queue, grp)
);
CREATE INDEX groups_served ON {schema}.groups (queue, served);

-- One row per item claimed from a queue with a rate or group rate, at the claim's store time
-- (grp '' for the default group). Claims prune what has left the longest window of the queue,
-- so the table holds at most a window's worth of claims per queue.
CREATE TABLE {schema}.claim_log (
    queue  text        NOT NULL,
    grp    text        NOT NULL,
    at     timestamptz NOT NULL
);
CREATE INDEX claim_log_at ON {schema}.claim_log (queue, at);

-- The claim and the fused turn now also return the group, so they are dropped and created anew
-- (a function's result type cannot be replaced).
DROP FUNCTION {schema}.complete_and_claim(
    bigint[], bigint[], text[], text[], text[], text, interval, integer, timestamptz, integer);
DROP FUNCTION {schema}.claim(text[], text, interval, integer, timestamptz, integer);

-- The claim of version 5 (0002 and 0003 say why it is a function and how it walks the index),
-- with one probe of `groups` that sends queues using groups or flow control to claim_flow.
CREATE FUNCTION {schema}.claim(
    p_queues     text[],
    p_worker     text,
    p_lease      interval,
    p_limit      integer,
    p_now        timestamptz,
    p_reap_limit integer
)
RETURNS TABLE (
    id bigint, queue text, payload json, token bigint, attempts integer,
    max_attempts integer, expires_at timestamptz, grp text
)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_now timestamptz := coalesce(p_now, clock_timestamp());
BEGIN
    -- Step 1, the bounded reap, as in version 5 (see there).
    IF EXISTS (SELECT FROM {schema}.items AS e
               WHERE e.status = 'claimed' AND e.expires_at <= v_now) THEN
        WITH expired AS MATERIALIZED (
            SELECT array_agg(x.id) AS ids FROM (
                SELECT here.id FROM (
                    SELECT e.id FROM {schema}.items AS e
                    WHERE e.status = 'claimed' AND e.expires_at <= v_now
                      AND e.queue = ANY(p_queues)
                    ORDER BY e.expires_at
                    LIMIT p_reap_limit
                    FOR UPDATE SKIP LOCKED
                ) AS here
                UNION  -- a lease in both lists is reaped once
                SELECT anywhere.id FROM (
                    SELECT e.id FROM {schema}.items AS e
                    WHERE e.status = 'claimed' AND e.expires_at <= v_now
                    ORDER BY e.expires_at
                    LIMIT p_reap_limit
                    FOR UPDATE SKIP LOCKED
                ) AS anywhere
            ) AS x
        ),
        reaped AS (
            UPDATE {schema}.items AS i
            SET status      = CASE WHEN i.attempts < i.max_attempts THEN 'queued' ELSE 'dead' END,
                last_error  = 'lease expired (worker ' || coalesce(i.worker, '?') || ', token '
                              || i.token || ')',
                expires_at  = NULL,
                finished_at = CASE WHEN i.attempts < i.max_attempts THEN NULL ELSE v_now END,
                updated_at  = v_now
            WHERE i.id = ANY((SELECT expired.ids FROM expired)::bigint[])
            RETURNING i.id, i.queue, i.status, i.attempts, i.token, i.worker, i.last_error, i.history
        ),
        logged AS (
            INSERT INTO {schema}.history (item_id, kind, at, attempt, status, token, worker, error)
            SELECT r.id, 'expired', v_now, r.attempts, r.status, r.token, r.worker, r.last_error
            FROM reaped AS r WHERE r.history
        )
        INSERT INTO {schema}.finished_counts AS f (queue, status, shard, n)
        SELECT r.queue, 'dead', pg_backend_pid() % 64, count(*)
        FROM reaped AS r WHERE r.status = 'dead'
        GROUP BY r.queue ORDER BY r.queue
        ON CONFLICT (queue, status, shard) DO UPDATE SET n = f.n + excluded.n;
    END IF;

    -- Queues that use groups or flow control: the fair order within their policies.
    IF EXISTS (SELECT FROM {schema}.groups AS g WHERE g.queue = ANY(p_queues)) THEN
        RETURN QUERY
        SELECT * FROM {schema}.claim_flow(p_queues, p_worker, p_lease, p_limit, p_now);
        RETURN;
    END IF;

    -- Step 2, the claim (a fresh snapshot: it sees the items step 1 queued), with a `claimed`
    -- event per leased item that keeps history.
    IF cardinality(p_queues) = 1 THEN
        RETURN QUERY
        WITH picked AS MATERIALIZED (
            SELECT c.id FROM {schema}.items AS c
            WHERE c.queue = p_queues[1] AND c.status = 'queued' AND c.run_at <= v_now
            ORDER BY c.priority, c.run_at, c.id
            LIMIT p_limit
            FOR UPDATE SKIP LOCKED
        ),
        tokens AS MATERIALIZED (
            SELECT array_agg(picked.id) AS ids,
                   array_agg(nextval('{schema}.token_seq')) AS tokens
            FROM picked
        ),
        claimed AS (
            UPDATE {schema}.items AS i
            SET status = 'claimed', token = t.tokens[array_position(t.ids, i.id)],
                attempts = i.attempts + 1, worker = p_worker, expires_at = v_now + p_lease,
                lease_length = p_lease, updated_at = v_now
            FROM tokens AS t
            WHERE i.id = ANY((SELECT tokens.ids FROM tokens)::bigint[])
            RETURNING i.id, i.queue, i.payload, i.token, i.attempts, i.max_attempts,
                      i.expires_at, i.history, i.grp
        ),
        logged AS (
            INSERT INTO {schema}.history (item_id, kind, at, attempt, status, token, worker)
            SELECT c.id, 'claimed', v_now, c.attempts, 'claimed', c.token, p_worker
            FROM claimed AS c WHERE c.history
        )
        SELECT c.id, c.queue, c.payload, c.token, c.attempts, c.max_attempts, c.expires_at,
               c.grp
        FROM claimed AS c;
    ELSE
        RETURN QUERY
        WITH picked AS MATERIALIZED (
            SELECT c.id FROM {schema}.items AS c
            WHERE c.queue = ANY(p_queues) AND c.status = 'queued' AND c.run_at <= v_now
            ORDER BY c.priority, c.run_at, c.id
            LIMIT p_limit
            FOR UPDATE SKIP LOCKED
        ),
        tokens AS MATERIALIZED (
            SELECT array_agg(picked.id) AS ids,
                   array_agg(nextval('{schema}.token_seq')) AS tokens
            FROM picked
        ),
        claimed AS (
            UPDATE {schema}.items AS i
            SET status = 'claimed', token = t.tokens[array_position(t.ids, i.id)],
                attempts = i.attempts + 1, worker = p_worker, expires_at = v_now + p_lease,
                lease_length = p_lease, updated_at = v_now
            FROM tokens AS t
            WHERE i.id = ANY((SELECT tokens.ids FROM tokens)::bigint[])
            RETURNING i.id, i.queue, i.payload, i.token, i.attempts, i.max_attempts,
                      i.expires_at, i.history, i.grp
        ),
        logged AS (
            INSERT INTO {schema}.history (item_id, kind, at, attempt, status, token, worker)
            SELECT c.id, 'claimed', v_now, c.attempts, 'claimed', c.token, p_worker
            FROM claimed AS c WHERE c.history
        )
        SELECT c.id, c.queue, c.payload, c.token, c.attempts, c.max_attempts, c.expires_at,
               c.grp
        FROM claimed AS c;
    END IF;
END
$$;

-- The claim of queues that use groups or flow control (called by `claim` after its reap; `p_now`
-- is the injected time or NULL). Its store time is read after the policy rows are locked, so
-- a claim's time (`expires_at - lease_length`, the claim log) follows every end of a lease
-- and every pause its counts saw.
--
-- 1. Lock the claimed queues' policy rows FOR UPDATE in queue order: claims of a limited queue
--    run one at a time from here to their commit, each seeing the leases the one before gave
--    (every later statement takes a fresh snapshot), so the limits are exact. A paused queue
--    (as the locked read sees it) takes no part: once set_paused has committed, no claim that
--    starts afterwards takes its items.
-- 2. For each priority with claimable items, lowest first, until the limit is reached:
--    a. what each queue and group may still take: the limits less the live leases (claimed,
--       expires_at after p_now: one walk of items_leases from p_now, i.e. of the store's live
--       leases) and less the claims in the rate windows (claim_log);
--    b. the candidate groups and their heads (first claimable item at this priority, read
--       from items_group_claimable): of the never-served groups with room left, the ones
--       whose heads come first by (run_at, id), as many as the queue may take (every such
--       group's head is read, unlocked, then these are locked, SKIP LOCKED); of the served
--       ones, walked by groups_served from the least recently served, the first with an
--       unlocked head and room left, as many as the queue may take (each head locked as it
--       is read, SKIP LOCKED);
--    c. when there are fewer candidate groups than items wanted, each group's next items too;
--    d. the items in the fair order (k, served, run_at, id), at most what each queue and group
--       may take, are leased; their groups' `served` rises to the tokens given (group rows
--       locked in key order, so concurrent claims never deadlock), and queues with a rate
--       record the claims.
CREATE FUNCTION {schema}.claim_flow(
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
        picked AS MATERIALIZED (
            SELECT r.id FROM ranked AS r WHERE r.qk <= r.qbudget
            ORDER BY r.k, r.served, r.run_at, r.id
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

-- The fused turn of version 4, unchanged but for the group in its rows, a notification
-- (p_channel) when a completion freed a slot of a queue with a concurrency limit, and the claim
-- reading the clock itself (so a flow claim's time follows its policy lock).
CREATE FUNCTION {schema}.complete_and_claim(
    p_ids        bigint[],
    p_tokens     bigint[],
    p_workers    text[],
    p_results    text[],
    p_queues     text[],
    p_worker     text,
    p_lease      interval,
    p_limit      integer,
    p_now        timestamptz,
    p_reap_limit integer,
    p_channel    text
)
RETURNS TABLE (
    id bigint, queue text, payload json, token bigint, attempts integer,
    max_attempts integer, expires_at timestamptz, grp text
)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_now timestamptz := coalesce(p_now, clock_timestamp());
    v_changed bigint;
    v_slots boolean;
BEGIN
    IF cardinality(p_ids) > 0 THEN
        WITH d AS MATERIALIZED (
            SELECT * FROM unnest(p_ids, p_tokens, p_workers, p_results)
                          AS u (id, token, worker, result)
        ),
        changed AS (
            UPDATE {schema}.items AS i
            SET status = 'done', result = d.result::json, expires_at = NULL,
                ended_token = i.token, ended_op = 'complete', ended_status = 'done',
                finished_at = v_now, updated_at = v_now
            FROM d
            -- The fence as one CASE (see version 4).
            WHERE i.id = d.id AND i.token = d.token AND i.worker = d.worker
              AND CASE WHEN i.status = 'claimed' THEN i.expires_at > v_now ELSE false END
            RETURNING i.id, i.queue, i.token, i.attempts, i.worker, i.history, i.holds_slot
        ),
        logged AS (
            INSERT INTO {schema}.history (item_id, kind, at, attempt, status, token, worker)
            SELECT c.id, 'completed', v_now, c.attempts, 'done', c.token, c.worker
            FROM changed AS c WHERE c.history
        ),
        -- Lock order: the 'done' rows, by queue (see version 4).
        counted AS (
            INSERT INTO {schema}.finished_counts AS f (queue, status, shard, n)
            SELECT c.queue, 'done', pg_backend_pid() % 64, count(*)
            FROM changed AS c GROUP BY c.queue ORDER BY c.queue
            ON CONFLICT (queue, status, shard) DO UPDATE SET n = f.n + excluded.n
        )
        SELECT count(*), bool_or(c.holds_slot) INTO v_changed, v_slots FROM changed AS c;

        IF v_slots THEN
            PERFORM pg_notify(p_channel, '');
        END IF;
        IF v_changed = cardinality(p_ids) THEN
            RETURN QUERY
            SELECT u.id, NULL::text, NULL::json, u.token, NULL::integer, NULL::integer,
                   NULL::timestamptz, NULL::text
            FROM unnest(p_ids, p_tokens) AS u (id, token);
        ELSE
            RETURN QUERY
            SELECT i.id, NULL::text, NULL::json, i.ended_token, NULL::integer, NULL::integer,
                   NULL::timestamptz, NULL::text
            FROM {schema}.items AS i
            JOIN unnest(p_ids, p_tokens) AS u (id, token) ON i.id = u.id
            WHERE i.ended_token = u.token AND i.ended_op = 'complete';
        END IF;
    END IF;
    IF p_limit > 0 THEN
        RETURN QUERY
        -- p_now, not v_now: with the clock, the claim reads its own time (claim_flow after its
        -- lock), later than these completions.
        SELECT * FROM {schema}.claim(p_queues, p_worker, p_lease, p_limit, p_now, p_reap_limit);
    END IF;
END
$$;
