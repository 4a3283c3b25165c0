-- Case folds as PostgreSQL's lower() does, through Magpie's `fold()`. The work is in Rust
-- (`store::fold::upgrade`, run in this migration's transaction): custom fields' index
-- definitions vary, and SQLite has no reverse() for the suffix-search keys.
SELECT 1;
