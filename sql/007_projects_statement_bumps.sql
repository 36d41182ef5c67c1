-- A project's write path does its own bookkeeping (#18): core/projects.py's UPDATE sets
-- version = version + 1 and updated_at = now() itself, so the two BEFORE UPDATE row triggers
-- of 001 and 002 only repeated that work through a PL/pgSQL call per row.
-- From here on an UPDATE of projects written by hand must bump both columns itself.
DROP TRIGGER IF EXISTS update_projects_updated_at ON projects;
DROP TRIGGER IF EXISTS bump_projects_version ON projects;
DROP FUNCTION IF EXISTS update_updated_at_column();
DROP FUNCTION IF EXISTS bump_project_version();
