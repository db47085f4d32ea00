-- workclaim SQLite schema, version 1.
-- Times are integer microseconds since the Unix epoch on this host's clock.

CREATE TABLE workclaim_counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

-- The fencing-token counter: bumped in the claim's own transaction, never reset, so a token is
-- unique in the database for ever (also after purge).
INSERT INTO workclaim_counters (name, value) VALUES ('token', 0);

CREATE TABLE workclaim_items (
    -- AUTOINCREMENT: ids of purged items are never handed out again.
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    queue         TEXT    NOT NULL,
    payload       TEXT    NOT NULL,
    status        TEXT    NOT NULL
                  CHECK (status IN ('queued', 'claimed', 'done', 'dead', 'cancelled')),
    priority      INTEGER NOT NULL,
    run_at        INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL,
    dedupe_key    TEXT,
    -- The current (or last) lease: token, holder, expiry and length.
    token         INTEGER,
    worker        TEXT,
    expires_at    INTEGER,
    lease_us      INTEGER,
    -- How the last lease ended, so that repeating that very call returns its outcome.
    ended_token   INTEGER,
    ended_op      TEXT,
    ended_status  TEXT,
    last_error    TEXT,
    result        TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    finished_at   INTEGER
);

-- The claim walks this index in claim order; finished and claimed rows are not in it.
CREATE INDEX workclaim_items_claimable
    ON workclaim_items (queue, priority, run_at, id) WHERE status = 'queued';

-- Expired leases are found from the front of this index.
CREATE INDEX workclaim_items_leases
    ON workclaim_items (expires_at) WHERE status = 'claimed';

-- Retention and purge walk finished items by age.
CREATE INDEX workclaim_items_finished
    ON workclaim_items (finished_at) WHERE status IN ('done', 'dead', 'cancelled');

-- A dedupe key is held while its item is queued or claimed.
CREATE UNIQUE INDEX workclaim_items_dedupe
    ON workclaim_items (queue, dedupe_key)
    WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'claimed');
