-- Free-text indexing is deferred. Writing a contact into the FTS5 trigram index inside
-- every small transaction cost more than everything else a create does (each commit
-- flushes a new segment holding every trigram of the batch). Now the triggers only queue
-- the contact in `contacts_fts_pending`; `store::free_text` indexes the queue in large
-- transactions in the background, and searches match the queued contacts with a scan
-- of that short tail, so a contact is found the moment it is written.
-- Invariant: a known contact is either in `contacts_fts` or in `contacts_fts_pending`.
CREATE TABLE contacts_fts_pending (
    contact_id INTEGER PRIMARY KEY
);

DROP TRIGGER contacts_fts_insert;
DROP TRIGGER contacts_fts_update;
DROP TRIGGER contacts_fts_delete;

CREATE TRIGGER contacts_fts_insert AFTER INSERT ON contacts WHEN new.date_identified IS NOT NULL BEGIN
    INSERT OR IGNORE INTO contacts_fts_pending (contact_id) VALUES (new.id);
END;

CREATE TRIGGER contacts_fts_update AFTER UPDATE OF firstname, lastname, email, company, city, state, zipcode, country, date_identified ON contacts BEGIN
    DELETE FROM contacts_fts WHERE rowid = old.id;
    INSERT OR IGNORE INTO contacts_fts_pending (contact_id) SELECT new.id WHERE new.date_identified IS NOT NULL;
END;

CREATE TRIGGER contacts_fts_delete AFTER DELETE ON contacts BEGIN
    DELETE FROM contacts_fts WHERE rowid = old.id;
    DELETE FROM contacts_fts_pending WHERE contact_id = old.id;
END;
