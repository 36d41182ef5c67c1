-- Owners (issue #8): every project, media file and job belongs to one owner, and API keys.
--
-- An owner is a short text id (core/access/owners.py): 'local' (the single user of open
-- mode, and of everything made before owners existed), 'tenant:<name>' (an API key's
-- tenant) or 'session:<hash>' (a browser session, by a hash of its id: the id itself is
-- a credential and stays out of these tables).

ALTER TABLE projects ADD COLUMN IF NOT EXISTS owner TEXT NOT NULL DEFAULT 'local';
-- GET /api/projects pages one owner's rows by (updated_at, id).
CREATE INDEX IF NOT EXISTS idx_projects_owner_updated_at_id ON projects (owner, updated_at DESC, id DESC);

-- POST /api/projects with an Idempotency-Key: a retry after a lost answer (a 503 while
-- PostgreSQL went away after the commit) returns the project instead of a second one.
ALTER TABLE projects ADD COLUMN IF NOT EXISTS idempotency_key TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS idx_projects_owner_idempotency_key ON projects (owner, idempotency_key)
  WHERE idempotency_key IS NOT NULL;

ALTER TABLE jobs ADD COLUMN IF NOT EXISTS owner TEXT NOT NULL DEFAULT 'local';

-- Who stored each file of the media directory: an upload's row is written as it is
-- stored (under a name nobody knew before), a job's outputs' rows before the worker
-- writes them. A file with no row (copied in by hand, or stored before this migration)
-- belongs to 'local'. Names are never reused.
CREATE TABLE IF NOT EXISTS media_files (
  filename   TEXT PRIMARY KEY,
  owner      TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Keys for embedding backends: only a SHA-256 of the key is kept (keys are 256 random
-- bits, so a plain hash is as good as a slow one and costs no CPU per request).
CREATE TABLE IF NOT EXISTS api_keys (
  id           SERIAL PRIMARY KEY,
  tenant       TEXT NOT NULL,
  label        TEXT,
  key_hash     BYTEA NOT NULL UNIQUE,
  prefix       TEXT NOT NULL,
  created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
  revoked_at   TIMESTAMPTZ
);

-- Short-lived, single-use tokens a WebSocket client sends in its first message (browsers
-- cannot put an Authorization header on a WebSocket handshake).
CREATE TABLE IF NOT EXISTS ws_tokens (
  token_hash BYTEA PRIMARY KEY,
  owner      TEXT NOT NULL,
  expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_ws_tokens_expires_at ON ws_tokens (expires_at);

-- Job messages now name their owner, so each node's hub routes them to that owner's
-- clients only: the NOTIFY payload is '<owner>' LF '<message>' (owners hold no LF).
CREATE OR REPLACE FUNCTION nve_jobs_notify() RETURNS TRIGGER AS $$
DECLARE
  finishing jobs;
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.status = 'done' AND OLD.status IS DISTINCT FROM 'done' THEN
    finishing := NEW;
    finishing.status := 'running';
    finishing.message := 'Done';
    PERFORM pg_notify('nve_job_events', NEW.owner || chr(10) || nve_job_event(finishing));
  END IF;
  IF TG_OP = 'INSERT'
     OR NEW.status IS DISTINCT FROM OLD.status
     OR NEW.progress IS DISTINCT FROM OLD.progress
     OR NEW.message IS DISTINCT FROM OLD.message THEN
    PERFORM pg_notify('nve_job_events', NEW.owner || chr(10) || nve_job_event(NEW));
  END IF;
  IF NEW.status = 'queued' AND (TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM 'queued') THEN
    PERFORM pg_notify('nve_jobs_queued', NEW.operation_id);
  END IF;
  IF TG_OP = 'UPDATE' AND NEW.cancel_requested AND NOT OLD.cancel_requested AND NEW.status = 'running' THEN
    PERFORM pg_notify('nve_job_cancel', NEW.operation_id);
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;
