"""Request policy: what dispatch settles about a request before (and after) its handler runs.

Who the client is (:mod:`.client`: address behind trusted proxies, TLS, the session
cookie), whom it acts for and whether a browser could have been tricked into sending it
(:mod:`.access`), whether it is over its rate limit (:mod:`.ratelimit`), what its
``Idempotency-Key`` names (:mod:`.idempotency`), and what it cost (:mod:`.request_metrics`).
Modules here use the HTTP transport and core/, never a handler: handlers import policy,
not the other way round.
"""
