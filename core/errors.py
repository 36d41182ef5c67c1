"""The one tree of errors a client is told about.

Every error that becomes an answer derives from :class:`DomainError`: dispatch
(server/dispatch.py) answers it with ``status``, the sentence (``str()``), the ``extra``
fields of the JSON body and any ``headers``, and nothing converts one kind into another on
the way. Media errors (core/media/errors.py), the tus store's (core/uploads/resumable.py) and
the HTTP layer's own (server/http/response.py ``HTTPError``) are branches of it. An
exception outside the tree is a bug, answered 500 with the request id.
"""

from __future__ import annotations


class DomainError(Exception):
    status = 500

    def __init__(self, message: str, **extra: object) -> None:
        super().__init__(message)
        self.extra = extra
        self.headers: list[tuple[str, str]] = []
        """Response headers the answer must carry (``Retry-After``, ``Tus-Resumable``, ...)."""
        self.close = False
        """Whether the connection is closed after the answer (its body was not read to the end)."""


class ValidationError(DomainError):
    """Input that breaks a rule; ``field`` names the offending field (dotted path)."""

    status = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message, **({"field": field} if field else {}))
        self.field = field


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class PreconditionFailed(DomainError):
    """An ``If-Match`` that no longer holds; ``current`` is the row as it is now (JSON)."""

    status = 412

    def __init__(self, message: str, current: bytes, version: int) -> None:
        super().__init__(message)
        self.current = current
        self.version = version


class Unavailable(DomainError):
    """A backing service (PostgreSQL) cannot be reached right now."""

    status = 503
