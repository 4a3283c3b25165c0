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

-- Exact totals of known and anonymous contacts, so the unfiltered contact list shows
-- its total without counting a million rows on every page view. Kept by triggers, so no
-- code path can forget them. Each total is spread over 16 shards (by id) so concurrent
-- writers rarely wait on the same row; shards are always updated in (known, shard)
-- order so two writers cannot deadlock on them. SQLite uses shard 0 only.
CREATE TABLE contact_counts (
    known BIGINT NOT NULL,
    shard BIGINT NOT NULL,
    n     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (known, shard)
);
INSERT INTO contact_counts (known, shard, n)
    SELECT k, s, 0 FROM generate_series(0, 1) AS k, generate_series(0, 15) AS s;
UPDATE contact_counts cc SET n = x.n
    FROM (SELECT (date_identified IS NOT NULL)::int AS known, id % 16 AS shard, COUNT(*) AS n
          FROM contacts GROUP BY 1, 2) x
    WHERE cc.known = x.known AND cc.shard = x.shard;

CREATE FUNCTION contact_counts_apply(deltas JSONB) RETURNS void LANGUAGE plpgsql AS $$
DECLARE d RECORD;
BEGIN
    FOR d IN SELECT (e ->> 0)::bigint AS known, (e ->> 1)::bigint AS shard, (e ->> 2)::bigint AS n
             FROM jsonb_array_elements(deltas) e ORDER BY 1, 2 LOOP
        UPDATE contact_counts SET n = n + d.n WHERE known = d.known AND shard = d.shard;
    END LOOP;
END $$;

CREATE FUNCTION contact_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM contact_counts_apply(COALESCE((
        SELECT jsonb_agg(jsonb_build_array(known, shard, n)) FROM (
            SELECT (date_identified IS NOT NULL)::int AS known, id % 16 AS shard, COUNT(*) AS n
            FROM new_rows GROUP BY 1, 2) x), '[]'::jsonb));
    RETURN NULL;
END $$;

CREATE FUNCTION contact_counts_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM contact_counts_apply(COALESCE((
        SELECT jsonb_agg(jsonb_build_array(known, shard, -n)) FROM (
            SELECT (date_identified IS NOT NULL)::int AS known, id % 16 AS shard, COUNT(*) AS n
            FROM old_rows GROUP BY 1, 2) x), '[]'::jsonb));
    RETURN NULL;
END $$;

CREATE FUNCTION contact_counts_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM contact_counts_apply(jsonb_build_array(
        jsonb_build_array((OLD.date_identified IS NOT NULL)::int, OLD.id % 16, -1),
        jsonb_build_array((NEW.date_identified IS NOT NULL)::int, NEW.id % 16, 1)));
    RETURN NULL;
END $$;

CREATE TRIGGER contact_counts_insert AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION contact_counts_insert();
CREATE TRIGGER contact_counts_delete AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION contact_counts_delete();
CREATE TRIGGER contact_counts_update AFTER UPDATE OF date_identified ON contacts
    FOR EACH ROW WHEN ((OLD.date_identified IS NULL) <> (NEW.date_identified IS NULL))
    EXECUTE FUNCTION contact_counts_update();

-- The contact list orders by `last_active DESC NULLS LAST, id DESC` (and the reverse).
-- PostgreSQL's DESC indexes keep NULLs first, so the first page of a million contacts
-- sorted them all (~0.6 s); these match the order, so a page is an index range.
-- (SQLite's DESC indexes already keep NULLs last: nothing to do there.)
DROP INDEX IF EXISTS contacts_known_active;
CREATE INDEX contacts_known_active ON contacts (last_active DESC NULLS LAST, id DESC) WHERE date_identified IS NOT NULL;
DROP INDEX IF EXISTS contacts_active;
CREATE INDEX contacts_active ON contacts (last_active DESC NULLS LAST, id DESC);
DROP INDEX IF EXISTS contacts_points;
CREATE INDEX contacts_points ON contacts (points DESC NULLS LAST, id DESC);
