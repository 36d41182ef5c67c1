"""Everything the server keeps in Redis, and how it copes when Redis is not there.

- :mod:`core.kv.client`: how every Redis client of the process is built (one connection
  policy for the request path and the WebSocket bus) and the key namespace
  (``NVE_REDIS_PREFIX``).
- :mod:`core.kv.breaker`: the circuit breaker (a pure state machine).
- :mod:`core.kv.connection`: the request path's client behind it (lazy, fail-fast,
  self-healing); its :meth:`~core.kv.connection.RedisConnection.key` names every key.
- :mod:`core.kv.metadata_cache`: ``metadata:{filename}``, single-flight read-through.
- :mod:`core.kv.ratelimit`: sliding-window limits, atomic in Redis, local when it is down.
- :mod:`core.kv.services`: the bundle the app holds (``app.kv``).

Sessions (``session:{id}`` plus the ``sessions`` table) are :mod:`core.sessions`.
"""
