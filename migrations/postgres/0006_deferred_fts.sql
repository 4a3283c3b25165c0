-- Nothing to do: PostgreSQL's trigram GIN index already defers its work (fastupdate's
-- pending list). The SQLite migration of this number queues free-text indexing.
SELECT 1;
