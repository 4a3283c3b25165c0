-- Suffix searches fold each character (`store::fold`). SQLite has no reverse(): the keys
-- of emails with non-ASCII characters are redone in Rust when the case-folding indexes
-- move to fold() (`store::fold::refold_email_keys`, at the first start after upgrading).
SELECT 1;
