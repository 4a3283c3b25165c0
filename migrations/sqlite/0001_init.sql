-- Magpie schema, SQLite. Timestamps are UTC milliseconds since the epoch (INTEGER).
-- Booleans are INTEGER 0/1. Contact fields are real columns of `contacts`; the rows of
-- `contact_fields` describe them. The PostgreSQL twin of this file has the same shape.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE,
    email         TEXT    NOT NULL DEFAULT '',
    first_name    TEXT    NOT NULL DEFAULT '',
    last_name     TEXT    NOT NULL DEFAULT '',
    role          TEXT    NOT NULL CHECK (role IN ('admin', 'user')),
    password_hash TEXT    NOT NULL,
    is_active     INTEGER NOT NULL DEFAULT 1,
    date_added    INTEGER NOT NULL,
    date_modified INTEGER NOT NULL,
    last_login    INTEGER
);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE stages (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL UNIQUE,
    description   TEXT    NOT NULL DEFAULT '',
    weight        INTEGER NOT NULL DEFAULT 0,
    is_published  INTEGER NOT NULL DEFAULT 1,
    date_added    INTEGER NOT NULL
);

CREATE TABLE contact_fields (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    alias                 TEXT    NOT NULL UNIQUE,
    label                 TEXT    NOT NULL,
    type                  TEXT    NOT NULL,
    field_group           TEXT    NOT NULL DEFAULT 'core',
    field_order           INTEGER NOT NULL DEFAULT 0,
    default_value         TEXT,
    is_required           INTEGER NOT NULL DEFAULT 0,
    is_unique_identifier  INTEGER NOT NULL DEFAULT 0,
    is_publicly_updatable INTEGER NOT NULL DEFAULT 0,
    is_short_visible      INTEGER NOT NULL DEFAULT 0,
    is_listable           INTEGER NOT NULL DEFAULT 1,
    is_visible            INTEGER NOT NULL DEFAULT 1,
    is_index              INTEGER NOT NULL DEFAULT 0,
    is_fixed              INTEGER NOT NULL DEFAULT 0,
    is_published          INTEGER NOT NULL DEFAULT 1,
    properties            TEXT    NOT NULL DEFAULT '{}',
    date_added            INTEGER NOT NULL,
    date_modified         INTEGER NOT NULL
);

CREATE TABLE contacts (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    date_added              INTEGER NOT NULL,
    date_modified           INTEGER NOT NULL,
    date_identified         INTEGER,
    created_by              INTEGER,
    modified_by             INTEGER,
    owner_id                INTEGER REFERENCES users (id) ON DELETE SET NULL,
    stage_id                INTEGER REFERENCES stages (id) ON DELETE SET NULL,
    preferred_profile_image TEXT,
    -- default fields (see contact_fields); points and last_active are typed columns
    points           INTEGER NOT NULL DEFAULT 0,
    last_active      INTEGER,
    title            TEXT,
    firstname        TEXT,
    lastname         TEXT,
    company          TEXT,
    position         TEXT,
    email            TEXT,
    -- the email lower-cased and reversed, kept by the write path: suffix searches
    -- (`email:%@example.org`) become index ranges
    email_rev        TEXT,
    mobile           TEXT,
    phone            TEXT,
    fax              TEXT,
    address1         TEXT,
    address2         TEXT,
    city             TEXT,
    state            TEXT,
    zipcode          TEXT,
    country          TEXT,
    preferred_locale TEXT,
    timezone         TEXT,
    attribution      REAL,
    attribution_date TEXT,
    website          TEXT,
    facebook         TEXT,
    foursquare       TEXT,
    instagram        TEXT,
    linkedin         TEXT,
    skype            TEXT,
    twitter          TEXT
);

-- The default list: known contacts, most recently active first. Most search indexes are
-- partial on known contacts: anonymous visitors have no name, email or company by
-- definition, and the list hides them unless asked for.
CREATE INDEX contacts_known_active ON contacts (last_active DESC, id DESC) WHERE date_identified IS NOT NULL;
CREATE INDEX contacts_active ON contacts (last_active DESC, id DESC);
CREATE INDEX contacts_date_added ON contacts (date_added);
CREATE INDEX contacts_owner ON contacts (owner_id, last_active DESC, id DESC) WHERE date_identified IS NOT NULL;
CREATE INDEX contacts_stage ON contacts (stage_id);
CREATE INDEX contacts_points ON contacts (points);
-- Case-insensitive prefix search and unique-identifier matching.
CREATE INDEX contacts_f_email ON contacts (lower(email)) WHERE date_identified IS NOT NULL;
CREATE INDEX contacts_f_firstname ON contacts (lower(firstname)) WHERE date_identified IS NOT NULL;
CREATE INDEX contacts_f_lastname ON contacts (lower(lastname)) WHERE date_identified IS NOT NULL;
CREATE INDEX contacts_f_company ON contacts (lower(company)) WHERE date_identified IS NOT NULL;
CREATE INDEX contacts_email_rev ON contacts (email_rev) WHERE date_identified IS NOT NULL;

-- How many contacts are known and anonymous, kept by triggers: the unfiltered list's
-- total without counting a million rows.
CREATE TABLE contact_counts (
    kind TEXT PRIMARY KEY,
    n    INTEGER NOT NULL
);
INSERT INTO contact_counts (kind, n) VALUES ('known', 0), ('anonymous', 0);

CREATE TRIGGER contacts_count_insert AFTER INSERT ON contacts BEGIN
    UPDATE contact_counts SET n = n + 1 WHERE kind = CASE WHEN new.date_identified IS NULL THEN 'anonymous' ELSE 'known' END;
END;

CREATE TRIGGER contacts_count_delete AFTER DELETE ON contacts BEGIN
    UPDATE contact_counts SET n = n - 1 WHERE kind = CASE WHEN old.date_identified IS NULL THEN 'anonymous' ELSE 'known' END;
END;

CREATE TRIGGER contacts_count_identify AFTER UPDATE OF date_identified ON contacts
WHEN (old.date_identified IS NULL) <> (new.date_identified IS NULL) BEGIN
    UPDATE contact_counts SET n = n + (CASE WHEN new.date_identified IS NULL THEN -1 ELSE 1 END) WHERE kind = 'known';
    UPDATE contact_counts SET n = n + (CASE WHEN new.date_identified IS NULL THEN 1 ELSE -1 END) WHERE kind = 'anonymous';
END;

-- Free-text search: a trigram index over the name, email, company and location of known
-- contacts (anonymous ones are searched without it), kept in step by triggers so no code
-- path can forget it.
CREATE VIRTUAL TABLE contacts_fts USING fts5 (text, tokenize = 'trigram');

CREATE TRIGGER contacts_fts_insert AFTER INSERT ON contacts WHEN new.date_identified IS NOT NULL BEGIN
    INSERT INTO contacts_fts (rowid, text) VALUES (new.id,
        coalesce(new.firstname, '') || ' ' || coalesce(new.lastname, '') || char(10) ||
        coalesce(new.email, '') || char(10) || coalesce(new.company, '') || char(10) ||
        coalesce(new.city, '') || char(10) || coalesce(new.state, '') || char(10) ||
        coalesce(new.zipcode, '') || char(10) || coalesce(new.country, ''));
END;

CREATE TRIGGER contacts_fts_update AFTER UPDATE OF firstname, lastname, email, company, city, state, zipcode, country, date_identified ON contacts BEGIN
    DELETE FROM contacts_fts WHERE rowid = old.id;
    INSERT INTO contacts_fts (rowid, text) SELECT new.id,
        coalesce(new.firstname, '') || ' ' || coalesce(new.lastname, '') || char(10) ||
        coalesce(new.email, '') || char(10) || coalesce(new.company, '') || char(10) ||
        coalesce(new.city, '') || char(10) || coalesce(new.state, '') || char(10) ||
        coalesce(new.zipcode, '') || char(10) || coalesce(new.country, '')
    WHERE new.date_identified IS NOT NULL;
END;

CREATE TRIGGER contacts_fts_delete AFTER DELETE ON contacts BEGIN
    DELETE FROM contacts_fts WHERE rowid = old.id;
END;

CREATE TABLE tags (
    id  INTEGER PRIMARY KEY AUTOINCREMENT,
    tag TEXT NOT NULL UNIQUE
);
CREATE INDEX tags_lower ON tags (lower(tag));

CREATE TABLE contact_tags (
    contact_id INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    tag_id     INTEGER NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    -- whether the contact is known, kept by triggers: a tag's known contacts are counted
    -- from the index alone
    known      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (contact_id, tag_id)
) WITHOUT ROWID;
CREATE INDEX contact_tags_tag ON contact_tags (tag_id, known, contact_id);

CREATE TRIGGER contact_tags_known_insert AFTER INSERT ON contact_tags BEGIN
    UPDATE contact_tags SET known = coalesce((SELECT date_identified IS NOT NULL FROM contacts WHERE id = new.contact_id), 0)
    WHERE contact_id = new.contact_id AND tag_id = new.tag_id;
END;

CREATE TRIGGER contact_tags_known_move AFTER UPDATE OF contact_id ON contact_tags BEGIN
    UPDATE contact_tags SET known = coalesce((SELECT date_identified IS NOT NULL FROM contacts WHERE id = new.contact_id), 0)
    WHERE contact_id = new.contact_id AND tag_id = new.tag_id;
END;

CREATE TRIGGER contacts_known_tags AFTER UPDATE OF date_identified ON contacts
WHEN (old.date_identified IS NULL) <> (new.date_identified IS NULL) BEGIN
    UPDATE contact_tags SET known = (new.date_identified IS NOT NULL) WHERE contact_id = new.id;
END;

-- The timeline: every event of every kind, properties as JSON text.
CREATE TABLE contact_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id  INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    event_type  TEXT    NOT NULL,
    source      TEXT,
    occurred_at INTEGER NOT NULL,
    -- the row this event describes, when it has one (a note, a UTM record …)
    ref_id      INTEGER,
    properties  TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX contact_events_contact ON contact_events (contact_id, occurred_at DESC, id DESC);
CREATE INDEX contact_events_contact_type ON contact_events (contact_id, event_type, occurred_at DESC);

CREATE TABLE contact_notes (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id    INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    text          TEXT    NOT NULL,
    type          TEXT    NOT NULL CHECK (type IN ('general', 'email', 'call', 'meeting')),
    date_time     INTEGER,
    created_by    INTEGER REFERENCES users (id) ON DELETE SET NULL,
    date_added    INTEGER NOT NULL,
    date_modified INTEGER NOT NULL
);
CREATE INDEX contact_notes_contact ON contact_notes (contact_id, date_added DESC);

CREATE TABLE contact_dnc (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    channel    TEXT    NOT NULL,
    channel_id INTEGER,
    reason     INTEGER NOT NULL,
    comments   TEXT    NOT NULL DEFAULT '',
    date_added INTEGER NOT NULL,
    UNIQUE (contact_id, channel)
);

CREATE TABLE contact_utm_tags (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id   INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    date_added   INTEGER NOT NULL,
    utm_campaign TEXT,
    utm_content  TEXT,
    utm_medium   TEXT,
    utm_source   TEXT,
    utm_term     TEXT,
    url          TEXT,
    referer      TEXT,
    remote_host  TEXT,
    user_agent   TEXT,
    query        TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX contact_utm_tags_contact ON contact_utm_tags (contact_id, date_added DESC);

CREATE TABLE contact_ips (
    contact_id INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    ip         TEXT    NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    PRIMARY KEY (contact_id, ip)
) WITHOUT ROWID;
CREATE INDEX contact_ips_ip ON contact_ips (ip, contact_id);
