-- A project's update writes its webhook event in the statement that makes it (#18): the UPDATE
-- of core/projects.py calls nve_webhook_emit() itself, and only when an enabled endpoint of the
-- owner subscribes to project.updated, a condition planned into the statement (one probe of
-- idx_webhook_endpoints_owner per update). The AFTER UPDATE row trigger of 005 paid, for every
-- update of every project, a queued trigger event, two PL/pgSQL calls and that probe through
-- SPI: about 30 us of PostgreSQL CPU per PUT of an owner without any webhook.
-- The event is written in the same transaction as before, so a committed update still always
-- has its event. From here on an UPDATE of projects written by hand emits none.
DROP TRIGGER IF EXISTS projects_webhook ON projects;
DROP FUNCTION IF EXISTS nve_projects_webhook();
