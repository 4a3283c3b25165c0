-- Durable background jobs (imports, exports), their details, and notifications.
-- The PostgreSQL twin of this file has the same shape.

-- The queue. A job is claimed by one process at a time through a lease (owner + expiry)
-- that the worker renews at every checkpoint; a job whose lease expired (its process
-- died) is claimed again. Checkpoints live in the detail tables and are committed in
-- the same transaction as the work they describe.
CREATE TABLE jobs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT    NOT NULL,
    state          TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'paused', 'done', 'failed')),
    created_by     INTEGER REFERENCES users (id) ON DELETE SET NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    -- not before this time (retries back off)
    run_after      INTEGER NOT NULL DEFAULT 0,
    lease_owner    TEXT,
    lease_until    INTEGER,
    -- claims since the last checkpoint: a job that keeps dying without progress fails
    attempts       INTEGER NOT NULL DEFAULT 0,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    error          TEXT
);
CREATE INDEX jobs_claim ON jobs (state, run_after, id);

CREATE TABLE imports (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id         INTEGER REFERENCES jobs (id) ON DELETE SET NULL,
    created_by     INTEGER REFERENCES users (id) ON DELETE SET NULL,
    -- the name the file was uploaded with, and the file under <data-dir>/imports/
    file_name      TEXT    NOT NULL,
    stored_name    TEXT    NOT NULL,
    size_bytes     INTEGER NOT NULL,
    -- line breaks counted while uploading: the estimate of rows until the end is reached
    line_count     INTEGER NOT NULL,
    -- JSON: delimiter, quote, encoding, mapping and options chosen at start
    settings       TEXT    NOT NULL DEFAULT '{}',
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    started_at     INTEGER,
    finished_at    INTEGER,
    -- the checkpoint: where the next batch starts
    offset_bytes   INTEGER NOT NULL DEFAULT 0,
    next_row       INTEGER NOT NULL DEFAULT 0,
    next_line      INTEGER NOT NULL DEFAULT 0,
    rows_done      INTEGER NOT NULL DEFAULT 0,
    created_count  INTEGER NOT NULL DEFAULT 0,
    updated_count  INTEGER NOT NULL DEFAULT 0,
    skipped_count  INTEGER NOT NULL DEFAULT 0,
    failed_count   INTEGER NOT NULL DEFAULT 0,
    -- for the rate and ETA: when the current run started and the bytes done then
    run_started_at INTEGER,
    run_bytes_start INTEGER NOT NULL DEFAULT 0,
    -- exact number of data rows, once the end of the file was reached
    total_rows     INTEGER
);
CREATE INDEX imports_job ON imports (job_id);
CREATE INDEX imports_created_by ON imports (created_by, id);

-- Rows that could not be imported: number, reason and the row's values (JSON array).
CREATE TABLE import_failures (
    import_id   INTEGER NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    row_number  INTEGER NOT NULL,
    line_number INTEGER NOT NULL,
    reason      TEXT    NOT NULL,
    raw         TEXT    NOT NULL,
    PRIMARY KEY (import_id, row_number)
);

CREATE TABLE exports (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id       INTEGER REFERENCES jobs (id) ON DELETE SET NULL,
    created_by   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    format       TEXT    NOT NULL CHECK (format IN ('csv', 'xlsx')),
    -- JSON: search, where, ids
    query        TEXT    NOT NULL,
    -- the file under <data-dir>/exports/, once written
    stored_name  TEXT,
    rows         INTEGER NOT NULL DEFAULT 0,
    size_bytes   INTEGER NOT NULL DEFAULT 0,
    -- SHA-256 of the download token (the token itself is only in the link)
    token_hash   TEXT,
    expires_at   INTEGER,
    email_to     TEXT,
    email_status TEXT,
    created_at   INTEGER NOT NULL,
    finished_at  INTEGER
);
CREATE INDEX exports_job ON exports (job_id);
CREATE INDEX exports_created_by ON exports (created_by, id);

-- Messages for a user, shown by the admin ("Your export is ready").
CREATE TABLE notifications (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       TEXT    NOT NULL,
    title      TEXT    NOT NULL,
    message    TEXT    NOT NULL DEFAULT '',
    link       TEXT,
    created_at INTEGER NOT NULL,
    read_at    INTEGER
);
CREATE INDEX notifications_user ON notifications (user_id, id);
