-- Nothing to do: the SQLite migration of this number moves its FTS5 index to a file of
-- its own. PostgreSQL's free text is a pg_trgm GIN index.
SELECT 1;
