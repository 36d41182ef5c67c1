"""Webhooks (issue #15): signed, durable, retried notifications to endpoints owners register.

Public API
----------
- :class:`core.webhooks.store.WebhookStore`: endpoints (create, list, get, delete, rotate) and
  their deliveries (list, redeliver); :func:`core.webhooks.store.emit` writes a Python-side event
  (``upload.ready``) in the caller's transaction. Shapes ``NEW_WEBHOOK`` and ``ROTATION``.
- :class:`core.webhooks.sender.WebhookSender`: the service that claims due deliveries (any
  node, SKIP LOCKED and a lease), posts them and records the outcome.
- :mod:`core.webhooks.signing`: secrets and the Standard Webhooks signature.
- :mod:`core.webhooks.client`: the SSRF-vetted, no-redirect HTTP/1.1 POST.
- :class:`core.webhooks.settings.WebhookSettings`: retries, disabling, timeouts, allow-private.

The outbox itself is SQL (sql/005_webhooks.sql): events and their deliveries are written by
``nve_webhook_emit()`` in the transaction of the change that causes them.
"""
