-- Webhooks (issue #15): endpoints per owner, and an outbox of events and their deliveries.
--
-- The outbox: an event row and one delivery row per subscribed, enabled endpoint are written
-- by nve_webhook_emit() inside the transaction that makes the change (the triggers below for
-- jobs and projects; core/webhooks/store.py emit() for uploads), so a committed change always
-- has its event and a rolled-back one never had any. No subscribed endpoint: nothing is
-- written, so owners without webhooks pay one indexed lookup per change.
--
-- Deliveries are claimed by any node like jobs are (core/webhooks/sender.py): FOR UPDATE SKIP
-- LOCKED and a lease (leased_until), so a node killed mid-delivery loses nothing: the lease
-- expires and the delivery is sent again, with the same event id and body.

CREATE TABLE IF NOT EXISTS webhook_endpoints (
  id                         UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  owner                      TEXT NOT NULL,
  url                        TEXT NOT NULL,
  events                     TEXT[] NOT NULL CHECK (cardinality(events) > 0),
  description                TEXT,
  -- 'whsec_' + base64 of 32 random bytes (core/webhooks/signing.py); the receiver holds it too.
  secret                     TEXT NOT NULL,
  -- After a rotation the old secret still signs (a second signature) until it expires, so a
  -- receiver can switch without refusing a message.
  previous_secret            TEXT,
  previous_secret_expires_at TIMESTAMPTZ,
  created_at                 TIMESTAMPTZ NOT NULL DEFAULT now(),
  disabled_at                TIMESTAMPTZ,
  disabled_reason            TEXT,
  consecutive_failures       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS idx_webhook_endpoints_owner ON webhook_endpoints (owner, created_at);

CREATE TABLE IF NOT EXISTS webhook_events (
  -- Standard Webhooks' webhook-id: 'msg_' and 26 hex digits (104 random bits).
  id         TEXT PRIMARY KEY DEFAULT 'msg_' || substr(md5(gen_random_uuid()::text), 1, 26),
  owner      TEXT NOT NULL,
  type       TEXT NOT NULL,
  -- What the event is about: a job's operation id, a project's id, an upload's file name.
  subject    TEXT NOT NULL,
  -- NULL for job events until the first sender writes Job.to_api() here (a finished job's row
  -- does not change, and the API's shape is made in one place, Python); every later attempt
  -- sends these very bytes.
  data       JSONB,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS webhook_deliveries (
  id              BIGSERIAL PRIMARY KEY,
  event_id        TEXT NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
  endpoint_id     UUID NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
  status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  -- Set while a node is sending it; a pending delivery whose lease is in the future is in
  -- flight (counted against the endpoint's cap), one whose lease has passed is claimable.
  leased_until    TIMESTAMPTZ,
  last_status     INTEGER,
  last_error      TEXT,
  last_attempt_at TIMESTAMPTZ,
  delivered_at    TIMESTAMPTZ,
  created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- The senders' scan for due deliveries, and per endpoint (its due ones, its count in flight),
-- pending rows only: delivered ones pile up and are never scanned by a claim; the deliveries
-- page of one endpoint, newest first.
CREATE INDEX IF NOT EXISTS idx_webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
  WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS idx_webhook_deliveries_endpoint_pending ON webhook_deliveries (endpoint_id, next_attempt_at)
  WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS idx_webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id DESC);
CREATE INDEX IF NOT EXISTS idx_webhook_deliveries_event ON webhook_deliveries (event_id);

-- Write an event of p_owner and its deliveries, in the caller's transaction; returns the
-- event's id, or NULL when no enabled endpoint of p_owner subscribes to p_type.
CREATE OR REPLACE FUNCTION nve_webhook_emit(p_owner TEXT, p_type TEXT, p_subject TEXT, p_data JSONB)
RETURNS TEXT AS $$
DECLARE
  event_id TEXT;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM webhook_endpoints
                 WHERE owner = p_owner AND disabled_at IS NULL AND p_type = ANY (events)) THEN
    RETURN NULL;
  END IF;
  INSERT INTO webhook_events (owner, type, subject, data) VALUES (p_owner, p_type, p_subject, p_data)
    RETURNING id INTO event_id;
  INSERT INTO webhook_deliveries (event_id, endpoint_id)
    SELECT event_id, e.id FROM webhook_endpoints e
    WHERE e.owner = p_owner AND e.disabled_at IS NULL AND p_type = ANY (e.events);
  -- Delivered at commit (and not at all on rollback): wakes an idle sender at once.
  PERFORM pg_notify('nve_webhooks', '');
  RETURN event_id;
END;
$$ LANGUAGE plpgsql;

-- A job's end is its event: done, failed or cancelled, once (a finished row does not change).
CREATE OR REPLACE FUNCTION nve_jobs_webhook() RETURNS TRIGGER AS $$
BEGIN
  PERFORM nve_webhook_emit(NEW.owner,
                           CASE NEW.status WHEN 'done' THEN 'job.completed'
                                           WHEN 'failed' THEN 'job.failed' ELSE 'job.cancelled' END,
                           NEW.operation_id, NULL);
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS jobs_webhook ON jobs;
CREATE TRIGGER jobs_webhook AFTER UPDATE OF status ON jobs
  FOR EACH ROW
  WHEN (NEW.status IN ('done', 'failed', 'cancelled') AND OLD.status IS DISTINCT FROM NEW.status)
  EXECUTE FUNCTION nve_jobs_webhook();

CREATE OR REPLACE FUNCTION nve_projects_webhook() RETURNS TRIGGER AS $$
BEGIN
  PERFORM nve_webhook_emit(NEW.owner, 'project.updated', NEW.id::text,
                           jsonb_build_object('id', NEW.id, 'version', NEW.version));
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS projects_webhook ON projects;
CREATE TRIGGER projects_webhook AFTER UPDATE ON projects
  FOR EACH ROW EXECUTE FUNCTION nve_projects_webhook();
