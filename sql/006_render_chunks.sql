-- One render spread over many workers (issue #16): a `process` job may run as a PARENT whose
-- chunks are jobs of their own (operation 'render-chunk', parent_id naming the parent), so any
-- worker of any node claims them with the ordinary claim (core/jobs/queue.py), leases and
-- reaping included: a worker killed mid-chunk loses only that chunk.
--
-- Chunks are the parent's private business: clients hear of the parent only (its one progress
-- over all chunks, its end), so chunk rows NOTIFY no job event and emit no webhook; they still
-- wake idle workers (nve_jobs_queued) and their own worker on a cancel (nve_job_cancel).

ALTER TABLE jobs ADD COLUMN IF NOT EXISTS parent_id TEXT REFERENCES jobs (operation_id) ON DELETE CASCADE;
-- The parent reads its chunks' states and claims its own queued chunks by parent_id.
CREATE INDEX IF NOT EXISTS idx_jobs_parent ON jobs (parent_id, operation_id) WHERE parent_id IS NOT NULL;

-- Chunk rows leave 004's nve_jobs_notify() (the job events) and 005's webhook trigger: both
-- triggers now fire for rows without a parent only. What a chunk row still announces, with
-- triggers of its own: becoming claimable (nve_jobs_queued: chunks are inserted queued, and
-- requeued by a reaper or a hand-back) and a cancel while it runs (nve_job_cancel).
DROP TRIGGER IF EXISTS jobs_notify ON jobs;
CREATE TRIGGER jobs_notify AFTER INSERT OR UPDATE ON jobs
  FOR EACH ROW WHEN (NEW.parent_id IS NULL) EXECUTE FUNCTION nve_jobs_notify();

DROP TRIGGER IF EXISTS jobs_webhook ON jobs;
CREATE TRIGGER jobs_webhook AFTER UPDATE OF status ON jobs
  FOR EACH ROW
  WHEN (NEW.parent_id IS NULL
        AND NEW.status IN ('done', 'failed', 'cancelled') AND OLD.status IS DISTINCT FROM NEW.status)
  EXECUTE FUNCTION nve_jobs_webhook();

-- NOTIFY the channel named by the trigger's argument with the row's operation id.
CREATE OR REPLACE FUNCTION nve_notify_operation_id() RETURNS TRIGGER AS $$
BEGIN
  PERFORM pg_notify(TG_ARGV[0], NEW.operation_id);
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS chunks_queued ON jobs;
CREATE TRIGGER chunks_queued AFTER INSERT ON jobs
  FOR EACH ROW WHEN (NEW.parent_id IS NOT NULL AND NEW.status = 'queued')
  EXECUTE FUNCTION nve_notify_operation_id('nve_jobs_queued');
DROP TRIGGER IF EXISTS chunks_requeued ON jobs;
CREATE TRIGGER chunks_requeued AFTER UPDATE OF status ON jobs
  FOR EACH ROW WHEN (NEW.parent_id IS NOT NULL AND NEW.status = 'queued' AND OLD.status <> 'queued')
  EXECUTE FUNCTION nve_notify_operation_id('nve_jobs_queued');
DROP TRIGGER IF EXISTS chunks_cancel ON jobs;
CREATE TRIGGER chunks_cancel AFTER UPDATE OF cancel_requested ON jobs
  FOR EACH ROW WHEN (NEW.parent_id IS NOT NULL AND NEW.cancel_requested AND NOT OLD.cancel_requested
                     AND NEW.status = 'running')
  EXECUTE FUNCTION nve_notify_operation_id('nve_job_cancel');

-- Stop every unfinished chunk of p_parent: a queued one is cancelled at once, a running one
-- gets cancel_requested (whose NOTIFY wakes its worker, which stops cooperatively). The same
-- words as a cancel of a job (core/jobs/queue.py _CANCEL). Returns how many chunks it touched.
CREATE OR REPLACE FUNCTION nve_cancel_chunks(p_parent TEXT) RETURNS INTEGER AS $$
DECLARE
  touched INTEGER;
BEGIN
  UPDATE jobs SET cancel_requested = true,
    status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END,
    error = CASE WHEN status = 'queued' THEN 'The operation was cancelled' ELSE error END,
    finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END,
    updated_at = now()
  WHERE parent_id = p_parent AND status IN ('queued', 'running') AND NOT cancel_requested;
  GET DIAGNOSTICS touched = ROW_COUNT;
  RETURN touched;
END;
$$ LANGUAGE plpgsql;

-- A parent asked to stop, or ended without its result (failed, cancelled: by its worker, by the
-- reaper once its attempts are spent, or while queued between two attempts), takes its chunks
-- with it, whoever made the change, in the same transaction.
CREATE OR REPLACE FUNCTION nve_jobs_cancel_chunks() RETURNS TRIGGER AS $$
BEGIN
  PERFORM nve_cancel_chunks(NEW.operation_id);
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS jobs_cancel_chunks ON jobs;
CREATE TRIGGER jobs_cancel_chunks AFTER UPDATE OF status, cancel_requested ON jobs
  FOR EACH ROW
  WHEN (NEW.parent_id IS NULL AND NEW.operation = 'process'
        AND ((NEW.cancel_requested AND NOT OLD.cancel_requested)
             OR (NEW.status IN ('failed', 'cancelled') AND OLD.status IS DISTINCT FROM NEW.status)))
  EXECUTE FUNCTION nve_jobs_cancel_chunks();
