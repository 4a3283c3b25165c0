-- Tracking: devices, companies, forms and submissions, merge records.

CREATE TABLE devices (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    -- the id in the visitor's cookie / localStorage: 32 hex characters (128 random bits)
    tracking_id  TEXT    NOT NULL UNIQUE,
    contact_id   INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    device_type  TEXT    NOT NULL DEFAULT '',
    os           TEXT    NOT NULL DEFAULT '',
    browser      TEXT    NOT NULL DEFAULT '',
    user_agent   TEXT    NOT NULL DEFAULT '',
    -- the last page.hit event of this device, whose "date left" the next hit fills in
    last_hit_id  INTEGER,
    date_added   INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL
);
CREATE INDEX devices_contact ON devices (contact_id);

CREATE TABLE companies (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL,
    email         TEXT,
    website       TEXT,
    address1      TEXT,
    address2      TEXT,
    city          TEXT,
    state         TEXT,
    zipcode       TEXT,
    country       TEXT,
    phone         TEXT,
    employees     INTEGER,
    revenue       REAL,
    industry      TEXT,
    description   TEXT,
    date_added    INTEGER NOT NULL,
    date_modified INTEGER NOT NULL
);
CREATE INDEX companies_name ON companies (lower(name));

CREATE TABLE contact_companies (
    contact_id INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    company_id INTEGER NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    is_primary INTEGER NOT NULL DEFAULT 0,
    date_added INTEGER NOT NULL,
    PRIMARY KEY (contact_id, company_id)
) WITHOUT ROWID;
CREATE INDEX contact_companies_company ON contact_companies (company_id, contact_id);

CREATE TABLE forms (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL,
    -- [{"alias": "email", "label": "Email", "contact_field": "email"}, …]
    fields        TEXT    NOT NULL DEFAULT '[]',
    record_utm    INTEGER NOT NULL DEFAULT 1,
    is_published  INTEGER NOT NULL DEFAULT 1,
    date_added    INTEGER NOT NULL,
    date_modified INTEGER NOT NULL
);

CREATE TABLE form_submissions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    form_id        INTEGER NOT NULL REFERENCES forms (id) ON DELETE CASCADE,
    contact_id     INTEGER REFERENCES contacts (id) ON DELETE SET NULL,
    data           TEXT    NOT NULL DEFAULT '{}',
    referer        TEXT,
    ip             TEXT,
    date_submitted INTEGER NOT NULL
);
CREATE INDEX form_submissions_contact ON form_submissions (contact_id);
CREATE INDEX form_submissions_form ON form_submissions (form_id, date_submitted);

-- A merged-away contact id and where it went: old cookies and API ids still resolve.
CREATE TABLE contact_merges (
    loser_id  INTEGER PRIMARY KEY,
    winner_id INTEGER NOT NULL,
    merged_at INTEGER NOT NULL
);
CREATE INDEX contact_merges_winner ON contact_merges (winner_id);
