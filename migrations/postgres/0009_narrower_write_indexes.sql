-- Fewer index entries per written contact (see the SQLite migration of this number):
-- the anonymous list keeps an index of its own, and the owner index holds owned contacts.
DROP INDEX contacts_active;
CREATE INDEX contacts_anonymous_active ON contacts (last_active DESC NULLS LAST, id DESC) WHERE date_identified IS NULL;
DROP INDEX contacts_owner;
CREATE INDEX contacts_owner ON contacts (owner_id, last_active DESC NULLS LAST, id DESC) WHERE date_identified IS NOT NULL AND owner_id IS NOT NULL;
-- Suffix searches: contacts_email_rev holds each email's domain with its `@`, lower-cased
-- (ASCII only, as in Rust's `store::contacts::email_rev`) and reversed ("gro.elpmaxe@").
UPDATE contacts
SET email_rev = reverse(translate(substr(email, strpos(email, '@')), 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'))
WHERE strpos(email, '@') > 0;
