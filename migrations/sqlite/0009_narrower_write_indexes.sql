-- Fewer random index writes per written contact. At a million contacts every insert into
-- an index keyed by something random (last activity, the email) dirties a page of its own,
-- and SQLite's WAL writes each dirty page whole at every commit.
-- * The list of every contact, anonymous and known, in last-active order is rare; the
--   known list has contacts_known_active, so this one now holds anonymous contacts only.
-- * Contacts without an owner (most) are listed through contacts_known_active; the owner
--   index holds the owned ones.
DROP INDEX contacts_active;
CREATE INDEX contacts_anonymous_active ON contacts (last_active DESC, id DESC) WHERE date_identified IS NULL;
DROP INDEX contacts_owner;
CREATE INDEX contacts_owner ON contacts (owner_id, last_active DESC, id DESC) WHERE date_identified IS NOT NULL AND owner_id IS NOT NULL;
-- * Suffix searches (`email:%@example.org`): contacts_email_rev now holds each email's
--   domain with its `@`, lower-cased and reversed ("gro.elpmaxe@"), so a new contact lands
--   at the end of its domain's run instead of at a random place. The same key is computed
--   in Rust (`store::contacts::email_rev`); SQLite has no reverse(), so a recursive query
--   spells each domain backwards. Emails without `@` keep their whole reversed text,
--   which is already that key.
CREATE TEMP TABLE email_domain_keys (id INTEGER PRIMARY KEY, key TEXT NOT NULL);
WITH RECURSIVE r(id, rest, acc) AS (
    SELECT id, lower(substr(email, instr(email, '@'))), '' FROM contacts WHERE instr(email, '@') > 0
    UNION ALL
    SELECT id, substr(rest, 2), substr(rest, 1, 1) || acc FROM r WHERE rest <> ''
)
INSERT INTO email_domain_keys (id, key) SELECT id, acc FROM r WHERE rest = '';
UPDATE contacts SET email_rev = (SELECT key FROM email_domain_keys k WHERE k.id = contacts.id)
WHERE id IN (SELECT id FROM email_domain_keys);
DROP TABLE email_domain_keys;
