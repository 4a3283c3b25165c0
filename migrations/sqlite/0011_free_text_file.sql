-- The free-text index moves to a database file of its own (`<database>-search`) with a
-- writer of its own, so indexing runs beside the main writer instead of holding it (a
-- fifth of an import's time went to waiting for the indexer). The triggers cannot reach
-- another file, so they only queue: `seq` orders the queue and grows with every write
-- (a contact written again gets a new one), `stale` says the index may hold an older
-- text of the contact, to be taken out when it is indexed. See `store::free_text`.
--
-- The old index is dropped; on start `free_text::prepare` finds no index file of this
-- database, creates it and queues every known contact. Searches stay correct meanwhile:
-- they scan the queue for what the index does not hold yet.
DROP TRIGGER contacts_fts_insert;
DROP TRIGGER contacts_fts_update;
DROP TRIGGER contacts_fts_delete;
DROP TABLE contacts_fts;
DROP TABLE contacts_fts_pending;

CREATE TABLE contacts_fts_pending (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id  INTEGER NOT NULL UNIQUE,
    stale       INTEGER NOT NULL DEFAULT 0
);

-- Which database an index file belongs to (`free_text_state.generation` there).
CREATE TABLE free_text_generation (generation TEXT NOT NULL);
INSERT INTO free_text_generation (generation) VALUES (lower(hex(randomblob(16))));

-- Contact ids are never reused (AUTOINCREMENT), but an id inserted explicitly could be
-- one whose delete is still queued: then its old text must still go.
CREATE TRIGGER contacts_fts_insert AFTER INSERT ON contacts WHEN new.date_identified IS NOT NULL BEGIN
    INSERT OR REPLACE INTO contacts_fts_pending (contact_id, stale)
        VALUES (new.id, EXISTS (SELECT 1 FROM contacts_fts_pending WHERE contact_id = new.id));
END;

CREATE TRIGGER contacts_fts_update AFTER UPDATE OF firstname, lastname, email, company, city, state, zipcode, country, date_identified ON contacts
    WHEN new.date_identified IS NOT NULL OR old.date_identified IS NOT NULL BEGIN
    INSERT OR REPLACE INTO contacts_fts_pending (contact_id, stale) VALUES (new.id, 1);
END;

CREATE TRIGGER contacts_fts_delete AFTER DELETE ON contacts WHEN old.date_identified IS NOT NULL BEGIN
    INSERT OR REPLACE INTO contacts_fts_pending (contact_id, stale) VALUES (old.id, 1);
END;
