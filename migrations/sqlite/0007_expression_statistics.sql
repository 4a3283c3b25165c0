-- Nothing to do: SQLite's ANALYZE covers expression indexes, partial ones included.
-- The PostgreSQL migration of this number adds statistics for the searched expressions.
SELECT 1;
