"""The JSON messages of CONTRACT.md section 3 and the envelope job messages travel in.

Every frame is a text frame holding ``{"type": ..., "data": ...}``. Job messages
(``progress``/``complete``/``error``) are serialized once by the publishing node; the
:class:`Envelope` keeps that text next to the few fields the hub routes and filters on,
so no node re-serializes and every client of a node gets the very same frame bytes.

Every job message is for one owner (core/access/owners.py): only that owner's clients
may receive it. Between nodes and in Redis an envelope travels as :func:`pack` makes it,
``<owner> LF <payload>``, the format the jobs table's NOTIFY uses too (sql/004_owners.sql).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import msgspec

WELCOME_TEXT = "Connected to native-video-editor WebSocket"
JOB_TYPES = frozenset({"progress", "complete", "error"})
FINAL_TYPES = frozenset({"complete", "error"})

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


class BadMessage(ValueError):
    """A message that is not a well-formed job message; the text says what is wrong."""


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
        return self.type in FINAL_TYPES


def encode(message_type: str, data: Any) -> bytes:
    return _encoder.encode({"type": message_type, "data": data})


def decode(payload: bytes | str) -> Any:
    """Parse JSON text; raises ``msgspec.DecodeError`` when it is not JSON."""
    return _decoder.decode(payload)


def job_envelope(message_type: str, data: Any, owner: str) -> Envelope:
    """Validate and serialize a job message for ``owner`` the way :meth:`Hub.publish` accepts it."""
    if message_type not in JOB_TYPES:
        raise BadMessage(f"Message type must be one of progress, complete, error, not {message_type!r}")
    if not isinstance(data, dict):
        raise BadMessage("Message data must be an object")
    operation_id = data.get("operationId")
    if not isinstance(operation_id, str) or not operation_id:
        raise BadMessage("Message data must carry a non-empty string operationId")
    progress = None
    if message_type == "progress":
        value = data.get("progress")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
            raise BadMessage("Progress must be a number from 0 to 100")
        progress = float(value)
    return Envelope(message_type, operation_id, progress, encode(message_type, data), owner)


def pack(envelope: Envelope) -> bytes:
    """The envelope as it travels between nodes and rests in Redis: ``<owner> LF <payload>``."""
    return envelope.owner.encode() + b"\n" + envelope.payload


def unpack(packed: bytes) -> Envelope:
    """Rebuild an envelope from :func:`pack`'s bytes (another node's, Redis's, PostgreSQL's)."""
    owner, newline, payload = packed.partition(b"\n")
    if not newline or not owner:
        raise BadMessage("A packed job message starts with its owner and a line feed")
    try:
        message = decode(payload)
    except msgspec.DecodeError as error:
        raise BadMessage(f"Not JSON: {error}") from None
    if not isinstance(message, dict):
        raise BadMessage("A message must be an object")
    envelope = job_envelope(message.get("type"), message.get("data"), owner.decode())  # type: ignore[arg-type]
    return Envelope(envelope.type, envelope.operation_id, envelope.progress, payload, envelope.owner)


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
