-- Optimistic concurrency: every update bumps `version`, which the API returns as the ETag.

ALTER TABLE projects ADD COLUMN IF NOT EXISTS version INTEGER NOT NULL DEFAULT 1;

CREATE OR REPLACE FUNCTION bump_project_version()
RETURNS TRIGGER AS $$
BEGIN
  NEW.version = OLD.version + 1;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS bump_projects_version ON projects;
CREATE TRIGGER bump_projects_version BEFORE UPDATE ON projects
  FOR EACH ROW EXECUTE FUNCTION bump_project_version();

-- Pages of GET /api/projects are keyed on (updated_at, id): stable when two rows share a timestamp.
CREATE INDEX IF NOT EXISTS idx_projects_updated_at_id ON projects (updated_at DESC, id DESC);
