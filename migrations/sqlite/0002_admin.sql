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


-- (PostgreSQL rebuilds its points index here to match the list's `DESC NULLS LAST`
-- order; SQLite reads its `(points)` index backwards for it.)
