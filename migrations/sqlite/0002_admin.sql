-- The web admin: login sessions. The PostgreSQL twin of this file has the same shape.
-- A session is found by the SHA-256 of its cookie token (the token itself is never
-- stored); its CSRF token goes into every form. Expiry slides with use.

CREATE TABLE sessions (
    token_hash   TEXT    PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    -- a one-shot message shown on the next page ("Contact saved.")
    flash        TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- Exact totals of known and anonymous contacts, so the unfiltered contact list shows
-- its total without counting a million rows on every page view. Kept by triggers, so no
-- code path can forget them. PostgreSQL spreads each total over 16 shards (by id) so
-- concurrent writers rarely wait on the same row; SQLite has one writer and uses shard 0.
CREATE TABLE contact_counts (
    known INTEGER NOT NULL,
    shard INTEGER NOT NULL,
    n     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (known, shard)
);
INSERT INTO contact_counts (known, shard, n) VALUES
    (0, 0, (SELECT COUNT(*) FROM contacts WHERE date_identified IS NULL)),
    (1, 0, (SELECT COUNT(*) FROM contacts WHERE date_identified IS NOT NULL));

CREATE TRIGGER contact_counts_insert AFTER INSERT ON contacts BEGIN
    UPDATE contact_counts SET n = n + 1 WHERE shard = 0 AND known = (new.date_identified IS NOT NULL);
END;

CREATE TRIGGER contact_counts_delete AFTER DELETE ON contacts BEGIN
    UPDATE contact_counts SET n = n - 1 WHERE shard = 0 AND known = (old.date_identified IS NOT NULL);
END;

CREATE TRIGGER contact_counts_update AFTER UPDATE OF date_identified ON contacts
WHEN (old.date_identified IS NULL) <> (new.date_identified IS NULL) BEGIN
    UPDATE contact_counts SET n = n - 1 WHERE shard = 0 AND known = (old.date_identified IS NOT NULL);
    UPDATE contact_counts SET n = n + 1 WHERE shard = 0 AND known = (new.date_identified IS NOT NULL);
END;

-- (PostgreSQL rebuilds its last-active and points indexes here with NULLS LAST to match
-- the list's order; SQLite's DESC indexes already keep NULLs last.)
