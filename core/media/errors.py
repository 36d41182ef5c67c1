"""Errors raised by media operations, each mapped to what a client is told.

A :class:`MediaError` is a :class:`core.errors.DomainError`: dispatch answers it with its
status and sentence like any other (one tree, no conversion in handlers). :class:`Cancelled`
is not: a cancelled job is not a client error.
"""

from core.errors import DomainError


class MediaError(DomainError):
    """A media operation failed; ``str(error)`` is a sentence fit for a client."""

    status = 422


class UnsupportedMedia(MediaError):
    """The file is not a video we can work with (no video stream, unknown format)."""

    status = 415


class CorruptMedia(MediaError):
    """The file claims to be a video but cannot be read to the end."""

    status = 422


class OutOfSpace(MediaError):
    """The filesystem of the output is full (or the quota spent); the partial output is removed."""

    status = 507


class InvalidRequest(MediaError):
    """The parameters do not fit the file (a cut past its end, an empty range)."""

    status = 400


class Cancelled(Exception):
    """The job was cancelled while the operation ran; its partial output is removed."""
