"""Everything the server keeps in Redis, and how it copes when Redis is not there.

- :mod:`core.kv.breaker`: the circuit breaker (a pure state machine).
- :mod:`core.kv.connection`: the Redis client behind it (lazy, fail-fast, self-healing).
- :mod:`core.kv.metadata_cache`: ``metadata:{filename}``, single-flight read-through.
- :mod:`core.kv.ratelimit`: sliding-window limits, atomic in Redis, local when it is down.
- :mod:`core.kv.services`: the bundle the app holds (``app.kv``).

Sessions (``session:{id}`` plus the ``sessions`` table) are :mod:`core.sessions`.
"""
