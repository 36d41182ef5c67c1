"""The JSON messages of docs/CONTRACT.md section 3 and the envelope job messages travel in.

Every frame is a text frame holding ``{"type": ..., "data": ...}``. Job messages
(``progress``/``complete``/``error``) are serialized once by the publishing node; the
:class:`Envelope` keeps that text next to the few fields the hub routes and filters on,
so no node re-serializes and every client of a node gets the very same frame bytes.

Every job message is for one owner (core/access/owners.py): only that owner's clients
may receive it. Between nodes and in Redis an envelope travels as :func:`pack` makes it,
``<owner> LF <payload>``, the format the jobs table's NOTIFY uses too (sql/004_owners.sql).

What a job message may hold is defined once, in core/jobs/messages.py: :func:`job_envelope`
builds and :func:`unpack` checks every job message with it, whoever made it (an in-process
publisher, another node, PostgreSQL's trigger). The other messages here (welcome, pong,
heartbeat, protocol errors) concern the connection, not a job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import msgspec

from core.jobs import messages as job_messages

WELCOME_TEXT = "Connected to native-video-editor WebSocket"

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


BadMessage = job_messages.InvalidJobMessage
"""A message that is not a well-formed job message (a ValueError); the text says what is wrong."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """One job message: ``payload`` is its JSON text (UTF-8), the rest is read from it."""

    type: str
    operation_id: str
    progress: float | None
    payload: bytes
    owner: str

    @property
    def final(self) -> bool:
        return self.type in job_messages.FINAL_KINDS


def encode(message_type: str, data: Any) -> bytes:
    return _encoder.encode({"type": message_type, "data": data})


def decode(payload: bytes | str) -> Any:
    """Parse JSON text; raises ``msgspec.DecodeError`` when it is not JSON."""
    return _decoder.decode(payload)


def job_envelope(message_type: str, data: Any, owner: str) -> Envelope:
    """Check and serialize a job message for ``owner`` the way :meth:`Hub.publish` accepts it."""
    message = job_messages.build(message_type, data)
    return _envelope(message, job_messages.encode(message), owner)


def pack(envelope: Envelope) -> bytes:
    """The envelope as it travels between nodes and rests in Redis: ``<owner> LF <payload>``."""
    return envelope.owner.encode() + b"\n" + envelope.payload


def unpack(packed: bytes) -> Envelope:
    """Rebuild an envelope from :func:`pack`'s bytes (another node's, Redis's, PostgreSQL's).

    The payload is checked, not re-serialized: clients get the very bytes that were sent.
    """
    owner, newline, payload = packed.partition(b"\n")
    if not newline or not owner:
        raise BadMessage("A packed job message starts with its owner and a line feed")
    return _envelope(job_messages.decode(payload), payload, owner.decode())


def _envelope(message: job_messages.JobMessage, payload: bytes, owner: str) -> Envelope:
    progress = message.data.progress if isinstance(message, job_messages.ProgressMessage) else None
    return Envelope(message.kind, message.data.operation_id, progress, payload, owner)


def welcome(client_id: str) -> bytes:
    return encode("ping", {"clientId": client_id, "message": WELCOME_TEXT})


def authenticated() -> bytes:
    """The answer to a successful ``auth`` message."""
    return encode("authenticated", {"message": "This connection now receives your operations"})


def heartbeat() -> bytes:
    return encode("ping", {"timestamp": int(time.time() * 1000)})


def pong(data: Any) -> bytes:
    return encode("pong", data)


def protocol_error(text: str) -> bytes:
    """An ``error`` message about the client's own message (no operationId: no job failed)."""
    return encode("error", {"error": text})
