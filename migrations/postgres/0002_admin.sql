-- The web admin: login sessions. The SQLite twin of this file has the same shape.
-- A session is found by the SHA-256 of its cookie token (the token itself is never
-- stored); its CSRF token goes into every form. Expiry slides with use.

CREATE TABLE sessions (
    token_hash   TEXT   PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token   TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    -- a one-shot message shown on the next page ("Contact saved.")
    flash        TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);


-- The list sorted by points orders by `points DESC NULLS LAST, id DESC` (and the
-- reverse); PostgreSQL's plain `(points)` index cannot give that order, so a page of a
-- million contacts sorted them all. This one serves the order and `points:>10` alike.
-- (SQLite reads its `(points)` index backwards for the same order: nothing to do there.)
DROP INDEX IF EXISTS contacts_points;
CREATE INDEX contacts_points ON contacts (points DESC NULLS LAST, id DESC);
