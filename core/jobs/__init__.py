"""Durable media jobs on PostgreSQL, run by worker processes.

Public API
----------
- :class:`core.jobs.queue.JobQueue` (``enqueue``, ``get``, ``cancel``, ``event``; the worker
  side ``claim``, ``heartbeat``, ``progress``, ``complete``, ``fail``, ``finish_cancelled``,
  ``hand_back``, ``reap``) over ``sql/003_jobs.sql``; :class:`core.jobs.queue.Job` is a row.
- :mod:`core.jobs.operations`: request validation per operation (``trim_params``,
  ``split_params``, ``process_params``), output naming, and ``run`` (the media call).
- :class:`core.jobs.worker.Worker` / ``python -m core.jobs.worker``: one worker process.
- :class:`core.jobs.supervisor.Supervisor`: N local worker processes, restarted on crash.
- :class:`core.jobs.settings.JobSettings`: lease, poll, attempts, progress rate, nice, threads.

Events: every visible change of a job row is NOTIFYed on ``nve_job_events`` as its
WebSocket message (``server/ws/job_events.py`` routes them to each node's hub); the shape
of those messages is defined once, in :mod:`core.jobs.messages`, and tested against the SQL
that emits them.
"""
