-- Vacuum projects after a small share of it changed, not PostgreSQL's default fifth (#18).
-- No update of a project is HOT (updated_at is a key of idx_projects_owner_updated_at_id), so
-- every PUT leaves a dead entry at the head of the owner index, exactly where the list pages
-- start: `perf scale` saw the first page of a million-row table whose 100 newest rows had been
-- updated 2 000 times each read 131 358 buffers, where a vacuumed table's reads about 60. With
-- the default scale factor a million-row table waits for 200 000 dead rows; here for 1 000 +
-- 1 %. ALTER TABLE SET takes SHARE UPDATE EXCLUSIVE: reads and writes go on meanwhile.
ALTER TABLE projects SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
                          autovacuum_analyze_scale_factor = 0.02);
