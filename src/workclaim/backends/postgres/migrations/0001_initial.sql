-- workclaim PostgreSQL schema, version 1.
-- Every object lives in the schema named by the URL option `schema` (default `workclaim`);
-- `{schema}` is replaced by that name, quoted, before this file runs. Times are timestamptz.

-- Fencing tokens: CACHE 1, so no session holds a private block of values and every token is
-- greater than any issued before it in the database. Never reset, also not by purge.
CREATE SEQUENCE {schema}.token_seq AS bigint START WITH 1 CACHE 1 NO CYCLE;

CREATE TABLE {schema}.items (
    -- Identity values are never handed out twice, also after a purge; far below 2**53.
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue         text        NOT NULL,
    -- json (not jsonb): the exact JSON text the producer sent comes back unchanged.
    payload       json        NOT NULL,
    status        text        NOT NULL
                  CHECK (status IN ('queued', 'claimed', 'done', 'dead', 'cancelled')),
    priority      integer     NOT NULL,
    run_at        timestamptz NOT NULL,
    attempts      integer     NOT NULL DEFAULT 0,
    max_attempts  integer     NOT NULL,
    dedupe_key    text,
    -- The current (or last) lease: token, holder, expiry and length.
    token         bigint,
    worker        text,
    expires_at    timestamptz,
    lease_length  interval,
    -- How the last lease ended, so that repeating that very call returns its outcome.
    ended_token   bigint,
    ended_op      text,
    ended_status  text,
    last_error    text,
    result        json,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    finished_at   timestamptz
);

-- The claim walks this index in claim order; finished and claimed rows are not in it, so a
-- million done rows do not lengthen the walk.
CREATE INDEX items_claimable
    ON {schema}.items (queue, priority, run_at, id) WHERE status = 'queued';

-- Expired leases are found from the front of this index (the claim's bounded reap, next_due).
CREATE INDEX items_leases
    ON {schema}.items (expires_at) WHERE status = 'claimed';

-- Retention and purge walk finished items by age.
CREATE INDEX items_finished
    ON {schema}.items (finished_at) WHERE status IN ('done', 'dead', 'cancelled');

-- A dedupe key is held while its item is queued or claimed (the enqueue's ON CONFLICT target).
CREATE UNIQUE INDEX items_dedupe
    ON {schema}.items (queue, dedupe_key)
    WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'claimed');
