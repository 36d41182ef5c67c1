"""The job messages of the WebSocket (docs/CONTRACT.md section 3): their one definition.

A job's state reaches clients as one of three messages, ``{"type": <kind>, "data": {...}}``:

======== ====================================================================================
progress ``operationId``, ``operation``, ``progress`` (0..100), ``message``?, ``sentAt``?
complete ``operationId``, ``result`` (an object: ``filename``, ``url``, ... per operation)
error    ``operationId``, ``error`` (a sentence)
======== ====================================================================================

``message`` is absent rather than null when there is none; ``sentAt`` (server epoch ms) is
carried only by the benchmark hook's messages (``NVE_BENCH=1``).

Three places make or read these messages, and this module is what each is held to:

- PostgreSQL: ``nve_job_event()`` (sql/003_jobs.sql) builds the message the jobs table's
  trigger NOTIFYs. SQL cannot import this module, so tests/jobs/test_job_messages.py drives
  every job transition through :class:`core.jobs.queue.JobQueue` and checks that each NOTIFY
  decodes to exactly these structs and equals what Python builds for the same row.
- Python: :meth:`core.jobs.queue.Job.to_message` (the latest-state fallback) and
  ``server/ws/messages.py`` (``job_envelope`` for in-process publishers, ``unpack`` for what
  PostgreSQL, Redis and other nodes send) build and check messages with :func:`build` and
  :func:`decode` only.
- The web UI reads the fields; tests/jobs/test_job_messages_ui.py checks that it reads no
  field :data:`FIELDS` lacks.

The structs are strict: unknown fields, missing fields and wrong types are refused, so a
drift on either side fails loudly instead of reaching a browser.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final

import msgspec

OperationId = Annotated[str, msgspec.Meta(min_length=1)]
Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]


class _Data(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True,
            forbid_unknown_fields=True):
    """What every kind's ``data`` carries; names are sent in camelCase (``operationId``)."""

    operation_id: OperationId


class Progress(_Data, frozen=True, kw_only=True):
    operation: str
    progress: Percent
    # UNSET, not None: an optional field is left out of the message, never sent as null.
    message: str | msgspec.UnsetType = msgspec.UNSET
    sent_at: float | msgspec.UnsetType = msgspec.UNSET


class Complete(_Data, frozen=True, kw_only=True):
    result: dict[str, Any]


class Failure(_Data, frozen=True, kw_only=True):
    """The data of an ``error`` message: the job failed or was cancelled."""

    error: str


class _Message(msgspec.Struct, frozen=True, tag_field="type", forbid_unknown_fields=True):
    """``{"type": <kind>, "data": ...}``: the kind is the tag that picks the ``data`` struct."""

    @property
    def kind(self) -> str:
        """The message's ``type``: progress, complete or error."""
        return str(self.__struct_config__.tag)


class ProgressMessage(_Message, frozen=True, tag="progress"):
    data: Progress


class CompleteMessage(_Message, frozen=True, tag="complete"):
    data: Complete


class ErrorMessage(_Message, frozen=True, tag="error"):
    data: Failure


JobMessage = ProgressMessage | CompleteMessage | ErrorMessage


def _data_fields(message: type[_Message]) -> frozenset[str]:
    [data] = msgspec.structs.fields(message)
    return frozenset(field.encode_name for field in msgspec.structs.fields(data.type))


FIELDS: Final[Mapping[str, frozenset[str]]] = {
    str(message.__struct_config__.tag): _data_fields(message)
    for message in (ProgressMessage, CompleteMessage, ErrorMessage)
}
"""Each kind's ``data`` field names as sent (camelCase), read off the structs above."""

KINDS: Final = frozenset(FIELDS)
FINAL_KINDS: Final = frozenset({"complete", "error"})
"""Kinds after which nothing more is said about the operation."""

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(JobMessage)


class InvalidJobMessage(ValueError):
    """Not a job message of this definition; the text says where and why."""


def build(kind: Any, data: Any) -> JobMessage:
    """The message of ``kind`` with ``data`` (a mapping of the wire field names), checked."""
    try:
        message: JobMessage = msgspec.convert({"type": kind, "data": data}, JobMessage)
    except msgspec.ValidationError as error:
        raise InvalidJobMessage(str(error)) from None
    return message


def encode(message: JobMessage) -> bytes:
    """The message's JSON text (UTF-8), as clients receive it."""
    return _encoder.encode(message)


def decode(payload: bytes | str) -> JobMessage:
    """Parse and check a message's JSON text."""
    try:
        return _decoder.decode(payload)
    except msgspec.DecodeError as error:  # ValidationError included
        raise InvalidJobMessage(str(error)) from None


def to_data(message: JobMessage) -> dict[str, Any]:
    """The message's ``data`` as plain JSON values (what ``json.loads`` of its text gives)."""
    data: dict[str, Any] = msgspec.to_builtins(message.data)
    return data
