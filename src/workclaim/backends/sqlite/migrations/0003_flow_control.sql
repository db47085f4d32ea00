-- workclaim SQLite schema, version 3: flow control (groups, queue policies, fair order, rates).

-- The item's group: '' is the queue's default group (None in the API). Items that existed
-- before this migration are in their queue's default group. Fixed for the item's life.
ALTER TABLE workclaim_items ADD COLUMN grp TEXT NOT NULL DEFAULT '';

-- 1 while the item's queue is managed (has a policy, is paused or uses groups): set at enqueue
-- from workclaim_policies.managed, and on every live item of a queue at the moment it becomes
-- managed, so that every queued or claimed item of a managed queue has it. Only such items are
-- in the two indexes below: a claim or completion on a queue with no policy and no groups
-- maintains neither (SQLite evaluates the partial-index condition and skips them).
ALTER TABLE workclaim_items ADD COLUMN flow INTEGER NOT NULL DEFAULT 0;

-- A managed queue's claim walks each group's claimable items in claim order from here.
CREATE INDEX workclaim_items_grouped
    ON workclaim_items (queue, grp, priority, run_at, id) WHERE status = 'queued' AND flow = 1;

-- A managed queue's live leases, counted per queue and per group for the concurrency limits.
CREATE INDEX workclaim_items_live
    ON workclaim_items (queue, grp, expires_at) WHERE status = 'claimed' AND flow = 1;

-- One row per queue ever given a policy or a group. Rates are (count, window in seconds);
-- NULL is no limit. `managed`: whether claims of the queue take the flow-control path (the
-- claim's first probe reads it); a queue with no row, or managed = 0, claims as before.
CREATE TABLE workclaim_policies (
    queue              TEXT PRIMARY KEY,
    concurrency        INTEGER,
    group_concurrency  INTEGER,
    rate_count         INTEGER,
    rate_seconds       REAL,
    group_rate_count   INTEGER,
    group_rate_seconds REAL,
    paused             INTEGER NOT NULL DEFAULT 0,
    grouped            INTEGER NOT NULL DEFAULT 0,
    managed            INTEGER GENERATED ALWAYS AS (
        paused OR grouped OR concurrency IS NOT NULL OR group_concurrency IS NOT NULL
        OR rate_count IS NOT NULL OR group_rate_count IS NOT NULL
    ) VIRTUAL
) WITHOUT ROWID;

-- Per group of a managed queue: `served`, the greatest lease token issued to an item of the
-- group (0: never served; the fair order ranks groups by it), and `active`, 0 once a claim found
-- the group with neither queued nor claimed items (the walk then skips it) until an item of it
-- is enqueued or requeued (backend.py sets it back; a lease's item returning to queued needs
-- nothing, as a group holding a lease stays active). The claim walks the active groups of a
-- queue in served order. No trigger: a claim or completion of any queue fires nothing new.
CREATE TABLE workclaim_groups (
    queue   TEXT    NOT NULL,
    grp     TEXT    NOT NULL,
    served  INTEGER NOT NULL DEFAULT 0,
    active  INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (queue, grp)
) WITHOUT ROWID;

CREATE INDEX workclaim_groups_walk ON workclaim_groups (queue, served, grp) WHERE active = 1;

-- One row per item a claim took from a queue with a rate or group rate: the windows count
-- these. Pruned by the claims of the queue as they age out of the longest window, so the
-- table holds about one window's worth (at most the rate's count per window per queue or group).
CREATE TABLE workclaim_claims (
    queue  TEXT    NOT NULL,
    grp    TEXT    NOT NULL,
    at     INTEGER NOT NULL,
    token  INTEGER NOT NULL,
    PRIMARY KEY (queue, grp, at, token)
) WITHOUT ROWID;

CREATE INDEX workclaim_claims_queue ON workclaim_claims (queue, at);
