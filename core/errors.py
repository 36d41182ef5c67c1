"""Domain errors. The server maps each to a status and a JSON body; ``str()`` is the sentence."""

from __future__ import annotations


class DomainError(Exception):
    status = 500

    def __init__(self, message: str, **extra: object) -> None:
        super().__init__(message)
        self.extra = extra


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
