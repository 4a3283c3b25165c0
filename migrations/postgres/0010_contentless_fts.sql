-- Nothing to do: the SQLite migration of this number rebuilds its FTS5 index without a
-- copy of the text. PostgreSQL's free text is a pg_trgm GIN index.
SELECT 1;
