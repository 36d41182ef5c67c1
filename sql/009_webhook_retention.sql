-- nve: no transaction
-- Senders delete the events kept past NVE_WEBHOOK_RETAIN whose deliveries have all ended
-- (core/webhooks/sender.py, oldest first): this index finds them without a scan of the table.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_webhook_events_created_at ON webhook_events (created_at);
