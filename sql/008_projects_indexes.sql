-- nve: no transaction
-- Indexes on projects that serve a query, and none that does not (#18). Built and dropped
-- CONCURRENTLY: projects may be large and live, and a plain CREATE/DROP INDEX would block its
-- writes meanwhile (core/db/migrations.py runs this file outside a transaction).
--
-- Every list query is one owner's page by (updated_at, id) and uses
-- idx_projects_owner_updated_at_id (004), so the owner-less (updated_at) and (updated_at, id)
-- indexes and the (created_at) one no query orders by only cost every write.
--
-- The design journal's JSONB query (section 4.1) is
--   WHERE timeline_state->>'currentTime' > '30' AND timeline_state->'edits' @> '[{"type": "trim"}]'
-- A GIN index over the whole column (jsonb_ops, 001) cannot serve the containment on the
-- expression timeline_state->'edits', and indexes every key and value of every timeline. One over
-- that expression with jsonb_path_ops (containment only, one hashed entry per path) serves it and
-- is a fraction of the size and the write cost (tests/test_migrations.py checks the plan).
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_projects_timeline_edits
  ON projects USING GIN ((timeline_state -> 'edits') jsonb_path_ops);
DROP INDEX CONCURRENTLY IF EXISTS idx_timeline_state;
DROP INDEX CONCURRENTLY IF EXISTS idx_projects_updated_at;
DROP INDEX CONCURRENTLY IF EXISTS idx_projects_updated_at_id;
DROP INDEX CONCURRENTLY IF EXISTS idx_projects_created_at;
