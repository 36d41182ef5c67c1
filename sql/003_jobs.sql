-- Durable media jobs (docs/CONTRACT.md "Operations (jobs)"), claimed by worker processes.
--
-- Every change a client may see (status, progress, message) is announced by the trigger
-- below on channel nve_job_events, as the very WebSocket message it means, so the API,
-- the workers and the lease reaper all notify the same way and in commit order. A job
-- becoming claimable is announced on nve_jobs_queued (wakes idle workers); a cancel
-- requested for a running job on nve_job_cancel (wakes the worker running it).

CREATE TABLE IF NOT EXISTS jobs (
  operation_id     TEXT PRIMARY KEY,
  operation        TEXT NOT NULL,
  params           JSONB NOT NULL,
  status           TEXT NOT NULL DEFAULT 'queued'
                   CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
  progress         DOUBLE PRECISION NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 100),
  message          TEXT,
  result           JSONB,
  error            TEXT,
  attempts         INTEGER NOT NULL DEFAULT 0,
  max_attempts     INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
  lease_owner      TEXT,
  lease_expires_at TIMESTAMPTZ,
  idempotency_key  TEXT UNIQUE,
  cancel_requested BOOLEAN NOT NULL DEFAULT false,
  created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
  started_at       TIMESTAMPTZ,
  finished_at      TIMESTAMPTZ
);

-- Claiming takes the oldest queued job; reaping scans running jobs by lease expiry.
CREATE INDEX IF NOT EXISTS idx_jobs_queued ON jobs (created_at) WHERE status = 'queued';
CREATE INDEX IF NOT EXISTS idx_jobs_lease ON jobs (lease_expires_at) WHERE status = 'running';

-- The WebSocket message a job's current state means: progress while queued or running,
-- complete when done, error when failed or cancelled. Also the hub's latest-state answer.
CREATE OR REPLACE FUNCTION nve_job_event(j jobs) RETURNS TEXT AS $$
  SELECT CASE
    WHEN j.status = 'done' THEN
      json_build_object('type', 'complete',
                        'data', json_build_object('operationId', j.operation_id, 'result', j.result))
    WHEN j.status IN ('failed', 'cancelled') THEN
      json_build_object('type', 'error',
                        'data', json_build_object('operationId', j.operation_id, 'error', j.error))
    ELSE
      json_build_object('type', 'progress',
                        'data', json_strip_nulls(json_build_object(
                          'operationId', j.operation_id, 'operation', j.operation,
                          'progress', j.progress, 'message', j.message)))
  END::text
$$ LANGUAGE sql STABLE;

-- Progress 100 is announced once, by the same UPDATE that marks the job done (workers
-- record at most 99.9 while running), so no crash can come between the two messages and no
-- later attempt can announce 100 again.
CREATE OR REPLACE FUNCTION nve_jobs_notify() RETURNS TRIGGER AS $$
DECLARE
  finishing jobs;
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.status = 'done' AND OLD.status IS DISTINCT FROM 'done' THEN
    finishing := NEW;
    finishing.status := 'running';
    finishing.message := 'Done';
    PERFORM pg_notify('nve_job_events', nve_job_event(finishing));
  END IF;
  IF TG_OP = 'INSERT'
     OR NEW.status IS DISTINCT FROM OLD.status
     OR NEW.progress IS DISTINCT FROM OLD.progress
     OR NEW.message IS DISTINCT FROM OLD.message THEN
    PERFORM pg_notify('nve_job_events', nve_job_event(NEW));
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

DROP TRIGGER IF EXISTS jobs_notify ON jobs;
CREATE TRIGGER jobs_notify AFTER INSERT OR UPDATE ON jobs
  FOR EACH ROW EXECUTE FUNCTION nve_jobs_notify();
