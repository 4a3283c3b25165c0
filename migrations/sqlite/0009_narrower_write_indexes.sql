-- Fewer index entries per written contact. At a million contacts every insert into an
-- index keyed by something random (last activity) dirties a page of its own, and SQLite's
-- WAL writes each dirty page whole at every commit: these two indexes cost a page write
-- per contact for rows no list needs them for.
-- * The list of every contact, anonymous and known, in last-active order is rare; the
--   known list has contacts_known_active, so this one now holds anonymous contacts only.
-- * Contacts without an owner (most) are listed through contacts_known_active; the owner
--   index holds the owned ones.
DROP INDEX contacts_active;
CREATE INDEX contacts_anonymous_active ON contacts (last_active DESC, id DESC) WHERE date_identified IS NULL;
DROP INDEX contacts_owner;
CREATE INDEX contacts_owner ON contacts (owner_id, last_active DESC, id DESC) WHERE date_identified IS NOT NULL AND owner_id IS NOT NULL;
