-- Suffix searches fold each character (`store::fold`), as PostgreSQL's lower() does;
-- the keys migration 9 and older servers wrote folded ASCII letters only. Redo the keys
-- of emails with other characters (rare: the rest are unchanged).
UPDATE contacts
SET email_rev = reverse(lower(substr(email, strpos(email, '@'))))
WHERE strpos(email, '@') > 0 AND octet_length(email) <> char_length(email);
