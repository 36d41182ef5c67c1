"""Validate a WebSocket opening handshake (RFC 6455 section 4.2) from parsed HTTP headers.

Sans-I/O: given the method and headers of a request, either return the headers of the
101 answer or raise :class:`HandshakeRejected` carrying the status to answer with.
No extension is ever accepted (``Sec-WebSocket-Extensions`` is ignored), so no frame is
compressed: broadcast frames can be built once for every client, and no inflation can
blow up memory. The Origin check stops cross-site WebSocket hijacking: a browser always
sends ``Origin``, and only the server's own origin and the configured ones may connect.
Clients that send no Origin (not browsers) are let in. :func:`origin_allowed` is also the
HTTP same-origin check's (server/policy/access.py); it takes the configured origins as
core/config.py normalised them and brings the request's ``Origin`` to the same form.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection
from typing import Protocol
from urllib.parse import urlsplit

from wsproto.utilities import generate_accept_token

from core.config import DEFAULT_PORTS, literal_origin, normalize_origin

HeaderList = list[tuple[str, str]]


class HeaderLookup(Protocol):
    def get(self, name: str, default: str | None = None) -> str | None: ...
    def getall(self, name: str) -> list[str]: ...


class HandshakeRejected(Exception):
    """The handshake is refused: answer ``status`` with ``message`` and ``headers``."""

    def __init__(self, status: int, message: str, headers: HeaderList | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


def accept_handshake(method: str, headers: HeaderLookup, allowed_origins: Collection[str]) -> HeaderList:
    """The headers of the 101 answer to a valid upgrade request; raises :class:`HandshakeRejected`."""
    if method != "GET":
        raise HandshakeRejected(405, "A WebSocket handshake must use GET", [("allow", "GET")])
    if "websocket" not in _tokens(headers, "upgrade"):
        raise HandshakeRejected(426, "This endpoint only speaks WebSocket: send Upgrade: websocket",
                                [("upgrade", "websocket"), ("connection", "Upgrade")])
    if "upgrade" not in _tokens(headers, "connection"):
        raise HandshakeRejected(400, "A WebSocket handshake needs Connection: Upgrade")
    if (headers.get("sec-websocket-version") or "").strip() != "13":
        raise HandshakeRejected(426, "Unsupported WebSocket version: only 13 is spoken",
                                [("sec-websocket-version", "13")])
    key = (headers.get("sec-websocket-key") or "").strip()
    if not _valid_key(key):
        raise HandshakeRejected(400, "Missing or malformed Sec-WebSocket-Key")
    origin = headers.get("origin")
    if origin is not None and not origin_allowed(origin, headers.get("host"), allowed_origins):
        raise HandshakeRejected(403, f"Origin {origin} is not allowed to open a WebSocket here")
    return [("upgrade", "websocket"), ("connection", "Upgrade"),
            ("sec-websocket-accept", generate_accept_token(key.encode("ascii")).decode("ascii"))]


def origin_allowed(origin: str, host: str | None, allowed_origins: Collection[str]) -> bool:
    """Whether a browser page of ``origin`` may connect to the server reached as ``host``.

    ``allowed_origins`` must be normalised (as ``Settings.allowed_origins`` is). Same
    origin means the Origin's host and port are the request's Host (default ports folded);
    the scheme is not compared, as TLS is often ended by a proxy in front.
    """
    if "*" in allowed_origins:
        return True
    normalized = normalize_origin(origin)
    if normalized is None:  # "null" (a sandboxed or privacy-sensitive page) or garbage
        return literal_origin(origin) in allowed_origins
    if normalized in allowed_origins:
        return True
    parts = urlsplit(normalized)  # parses: normalize_origin built it from parsed parts
    default = DEFAULT_PORTS.get(parts.scheme)
    if default is None or host is None:
        return False
    try:
        host_parts = urlsplit(f"//{host.strip().lower()}")
        host_port = host_parts.port
    except ValueError:
        return False
    return (parts.hostname == host_parts.hostname
            and (parts.port or default) == (host_port or default))


def _tokens(headers: HeaderLookup, name: str) -> set[str]:
    return {token.strip().lower() for value in headers.getall(name) for token in value.split(",")}


def _valid_key(key: str) -> bool:
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        return False
