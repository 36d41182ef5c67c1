"""A sans-I/O streaming ``multipart/form-data`` parser: bytes in, events out.

Uploads are far larger than memory may hold, so the parser never keeps a part's body:
:meth:`MultipartParser.feed` returns the data it can already prove is content (everything
but a tail short enough to be the start of a delimiter) and forgets it. Memory is bounded
by one fed chunk plus the delimiter length plus the header limit, whatever the body size,
and a delimiter split across any number of chunks (down to one byte each) is still found.

Parsing follows RFC 2046 section 5.1.1 / RFC 7578: an optional preamble, then
``--boundary`` lines that open each part (headers, a blank line, the content), and
``--boundary--`` that closes the body; the epilogue after it is ignored. A delimiter is
only recognised after CRLF (or at the very start), so content may hold ``--boundary``
anywhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote


class MultipartError(ValueError):
    """The body is not valid multipart; ``str()`` is a sentence fit for the client (400)."""


@dataclass(slots=True)
class PartStart:
    """A part begins; its body follows as :class:`PartData` events, then :class:`PartEnd`."""

    headers: list[tuple[str, str]]
    """Header names lower-cased, in order."""
    name: str | None = None
    """The form field name from ``Content-Disposition``."""
    filename: str | None = None
    """The client's file name, as sent: never to be used as a path."""
    content_type: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    """Every ``Content-Disposition`` parameter."""


@dataclass(slots=True)
class PartData:
    data: bytes


@dataclass(slots=True)
class PartEnd:
    pass


Event = PartStart | PartData | PartEnd

_PREAMBLE, _DELIMITER_TAIL, _HEADERS, _BODY, _DONE = range(5)
_CRLF = b"\r\n"
# RFC 2046: 1 to 70 characters from this set, not ending in a space.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
_PADDING = b" \t"
MAX_PADDING = 64


def parse_boundary(content_type: str | None) -> bytes:
    """The boundary of a ``multipart/form-data`` Content-Type; MultipartError otherwise."""
    if content_type is None:
        raise MultipartError("Content-Type must be multipart/form-data")
    kind, params = parse_header_value(content_type)
    if kind != "multipart/form-data":
        raise MultipartError(f"Content-Type must be multipart/form-data, not {kind or 'empty'}")
    boundary = params.get("boundary")
    if not boundary or not _BOUNDARY.fullmatch(boundary):
        raise MultipartError("The multipart/form-data Content-Type has no valid boundary parameter")
    return boundary.encode("latin-1")


def parse_header_value(value: str) -> tuple[str, dict[str, str]]:
    """Split ``type; a=1; b="x;y"`` into the lower-cased first token and its parameters.

    Parameter names are lower-cased; quoted values lose their quotes and backslash
    escapes; an RFC 5987 ``name*=utf-8''...`` value is decoded and wins over ``name``.
    """
    first, rest = _token(value, 0)
    params: dict[str, str] = {}
    extended: dict[str, str] = {}
    position = rest
    while position < len(value):
        if value[position] != ";":
            position += 1
            continue
        position += 1
        while position < len(value) and value[position] in " \t":
            position += 1
        equals = value.find("=", position)
        if equals < 0:
            break
        name = value[position:equals].strip().lower()
        position = equals + 1
        if position < len(value) and value[position] == '"':
            parsed, position = _quoted(value, position + 1)
        else:
            end = value.find(";", position)
            end = len(value) if end < 0 else end
            parsed, position = value[position:end].strip(), end
        if name.endswith("*"):
            charset, _, encoded = parsed.partition("'")
            _, _, encoded = encoded.partition("'")
            extended[name[:-1]] = unquote(encoded, encoding=charset or "utf-8", errors="replace")
        elif name:
            params[name] = parsed
    params.update(extended)
    return first.lower(), params


def _token(value: str, start: int) -> tuple[str, int]:
    end = value.find(";", start)
    end = len(value) if end < 0 else end
    return value[start:end].strip(), end


def _quoted(value: str, position: int) -> tuple[str, int]:
    """A quoted-string's content from just after its opening quote, and where it ended."""
    out: list[str] = []
    while position < len(value):
        char = value[position]
        if char == "\\" and position + 1 < len(value):
            out.append(value[position + 1])
            position += 2
            continue
        if char == '"':
            return "".join(out), position + 1
        out.append(char)
        position += 1
    return "".join(out), position


class MultipartParser:
    """Feed the body as it arrives; read events back; call :meth:`finish` at its end.

    ``max_header_bytes`` bounds one part's header block and ``max_parts`` the number of
    parts, so a hostile body cannot make the parser hold or produce without limit.
    """

    def __init__(self, boundary: bytes, *, max_header_bytes: int = 16 * 1024, max_parts: int = 64) -> None:
        self._delimiter = _CRLF + b"--" + boundary
        self._max_header_bytes = max_header_bytes
        self._max_parts = max_parts
        self._parts = 0
        # The virtual CRLF lets the first delimiter (at the very start) match like any other.
        self._buffer = bytearray(_CRLF)
        self._state = _PREAMBLE

    @property
    def done(self) -> bool:
        """True once the closing delimiter was read."""
        return self._state == _DONE

    def feed(self, data: bytes) -> list[Event]:
        """Parse ``data`` (any length, any split) and return the events it completes."""
        if self._state == _DONE:
            return []  # the epilogue: ignored, as RFC 2046 says
        if self._state == _BODY and len(data) >= len(self._delimiter):
            fast = self._body_without_delimiter(data)
            if fast is not None:
                return fast
        self._buffer += data
        events: list[Event] = []
        while self._step(events):
            pass
        return events

    def finish(self) -> None:
        """The body ended: raise MultipartError unless the closing delimiter was seen."""
        if self._state != _DONE:
            raise MultipartError("The multipart body ended before its closing boundary")

    def _step(self, events: list[Event]) -> bool:
        """Make one transition if the buffer allows it; return whether to go on."""
        buffer = self._buffer
        delimiter = self._delimiter
        if self._state == _PREAMBLE:
            index = buffer.find(delimiter)
            if index < 0:
                # Keep only what could be the start of the delimiter.
                del buffer[:max(0, len(buffer) - len(delimiter) + 1)]
                return False
            del buffer[:index + len(delimiter)]
            self._state = _DELIMITER_TAIL
            return True
        if self._state == _DELIMITER_TAIL:
            return self._delimiter_tail()
        if self._state == _HEADERS:
            return self._headers(events)
        if self._state == _BODY:
            index = buffer.find(delimiter)
            if index < 0:
                keep = len(delimiter) - 1
                if len(buffer) > keep:
                    events.append(PartData(bytes(buffer[:len(buffer) - keep])))
                    del buffer[:len(buffer) - keep]
                return False
            if index:
                events.append(PartData(bytes(buffer[:index])))
            events.append(PartEnd())
            del buffer[:index + len(delimiter)]
            self._state = _DELIMITER_TAIL
            return True
        return False

    def _body_without_delimiter(self, data: bytes) -> list[Event] | None:
        """The common case of a large upload: ``data`` holds no delimiter, not even one that
        starts in the kept tail. Then it is passed on with one copy instead of going through
        the buffer (three); None means take the general path."""
        delimiter = self._delimiter
        keep = len(delimiter) - 1
        tail = self._buffer  # at most `keep` bytes while in a body
        if data.find(delimiter) >= 0 or (tail and (tail + data[:keep]).find(delimiter) >= 0):
            return None
        events: list[Event] = []
        if tail:
            events.append(PartData(bytes(tail)))
        events.append(PartData(data[:len(data) - keep]))
        self._buffer = bytearray(data[len(data) - keep:])
        return events

    def _delimiter_tail(self) -> bool:
        """After ``--boundary``: ``--`` closes the body; padding then CRLF opens a part."""
        buffer = self._buffer
        if len(buffer) < 2:
            return False
        if buffer[:2] == b"--":
            self._state = _DONE
            buffer.clear()
            return False
        padding = 0
        while padding < len(buffer) and buffer[padding] in _PADDING:
            padding += 1
        if padding > MAX_PADDING:
            raise MultipartError("A multipart boundary line is followed by too much whitespace")
        if len(buffer) < padding + 2:
            return False
        if buffer[padding:padding + 2] != _CRLF:
            raise MultipartError("A multipart boundary is not followed by CRLF or '--'")
        del buffer[:padding + 2]
        self._parts += 1
        if self._parts > self._max_parts:
            raise MultipartError(f"The multipart body has more than {self._max_parts} parts")
        self._state = _HEADERS
        return True

    def _headers(self, events: list[Event]) -> bool:
        buffer = self._buffer
        if buffer[:2] == _CRLF:
            block, consumed = b"", 2
        else:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > self._max_header_bytes:
                    raise MultipartError(f"A multipart part's headers are over {self._max_header_bytes} bytes")
                return False
            if end > self._max_header_bytes:
                raise MultipartError(f"A multipart part's headers are over {self._max_header_bytes} bytes")
            block, consumed = bytes(buffer[:end]), end + 4
        del buffer[:consumed]
        events.append(_part_start(block))
        self._state = _BODY
        return True


def _part_start(block: bytes) -> PartStart:
    headers: list[tuple[str, str]] = []
    # Browsers send UTF-8 file names raw; latin-1 would mangle them, and neither fails.
    text = block.decode("utf-8", errors="replace")
    for line in text.split("\r\n") if text else []:
        if line[:1] in (" ", "\t") and headers:
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise MultipartError(f"A multipart part has a malformed header line: {line[:80]!r}")
        headers.append((name.strip().lower(), value.strip()))
    part = PartStart(headers)
    for name, value in headers:
        if name == "content-disposition":
            _, part.params = parse_header_value(value)
            part.name = part.params.get("name")
            part.filename = part.params.get("filename")
        elif name == "content-type":
            part.content_type = value
    return part
