"""The one HTTP request a webhook attempt makes: a vetted, bounded, redirect-free POST.

An endpoint's URL is the owner's choice, and the request is made from inside the operator's
network, so it is a server-side request forgery vector. :func:`vet_url` resolves the host and
refuses it when any address it resolves to is loopback, private, link-local, unique-local,
multicast, reserved or unspecified (unless the operator allows private addresses); and
:func:`post` connects to the very addresses it vetted, never resolving the name a second
time (a DNS answer that changes between check and use, "DNS rebinding", changes nothing).
The URL's host still goes in ``Host`` and, for https, in SNI and the certificate check.

The request is HTTP/1.1 with h11 over asyncio streams: one request per connection
(``Connection: close``), no redirects (a 3xx is an answer like any other, a failed
attempt), a connect timeout and a total one. Only the status line matters: the body of the
answer is not read.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import h11

from core.errors import ValidationError

USER_AGENT = "nve-webhooks/1"
DEFAULT_PORTS = {"http": 80, "https": 443}
# The status line and headers of an answer; a receiver sending more is not one.
_MAX_HEAD = 64 * 1024

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(ValidationError):
    """A URL that may not be posted to: the 400 of ``field`` url at creation, a failed attempt later."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"Field 'url' is refused: {reason}", "url")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Vetted:
    """A URL's parts and the addresses it was checked against (connect to these, in order)."""

    host: str
    port: int
    scheme: str
    addresses: tuple[str, ...]
    target: str = "/"
    """The request target: path and query."""


@dataclass(frozen=True, slots=True)
class Answer:
    """An attempt's outcome: the receiver's status, or why there is none."""

    status: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def summary(self) -> str:
        """What the attempt came to, for a delivery's lastError and an endpoint's disabled reason."""
        return f"HTTP {self.status}" if self.status is not None else self.error or "no answer"


def is_private(address: IPAddress) -> bool:
    """Whether ``address`` is anything but a public unicast one (the SSRF rule)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (not address.is_global or address.is_private or address.is_loopback or address.is_link_local
            or address.is_multicast or address.is_reserved or address.is_unspecified)


def _parts(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises ValueError for a port that is not a number in range
    except ValueError as error:
        raise Refused(f"{url!r} is not a valid URL ({error})") from None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise Refused("it must be an absolute http or https URL")
    if parts.username is not None or parts.password is not None:
        raise Refused("it must not carry credentials (the signature authenticates the sender)")
    return parts


async def vet_url(url: str, allow_private: bool) -> Vetted:
    """Resolve ``url``'s host and check every address; raises :class:`Refused` saying why not."""
    parts = _parts(url)
    host = parts.hostname
    assert host is not None, "_parts refuses a URL without a host"
    port = parts.port or DEFAULT_PORTS[parts.scheme]
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise Refused(f"{host} does not resolve ({error})") from None
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in found))
    if not allow_private:
        # Every address, not only the first: a name answering one public and one private
        # address would otherwise reach the private one on a retry.
        for address in addresses:
            if is_private(ipaddress.ip_address(address.partition("%")[0])):
                raise Refused(f"{host} resolves to {address}, a private address")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Vetted(host, port, parts.scheme, addresses, target)


def _host_header(vetted: Vetted) -> str:
    host = f"[{vetted.host}]" if ":" in vetted.host else vetted.host
    return host if vetted.port == DEFAULT_PORTS[vetted.scheme] else f"{host}:{vetted.port}"


async def _connect(vetted: Vetted, connect_timeout: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the first vetted address that takes one within ``connect_timeout`` each."""
    context = ssl.create_default_context() if vetted.scheme == "https" else None
    failure: BaseException | None = None
    for address in vetted.addresses:
        try:
            async with asyncio.timeout(connect_timeout):  # not wait_for: see core/webhooks/sender.py _run
                return await asyncio.open_connection(
                    address, vetted.port, ssl=context, server_hostname=vetted.host if context else None,
                    limit=_MAX_HEAD)
        except TimeoutError:
            failure = TimeoutError(f"connect timeout after {connect_timeout:g} s")
        except OSError as error:
            failure = error
    raise failure if failure is not None else OSError("no address to connect to")


async def _exchange(vetted: Vetted, headers: list[tuple[str, str]], body: bytes,
                    connect_timeout: float) -> int:
    reader, writer = await _connect(vetted, connect_timeout)
    try:
        connection = h11.Connection(h11.CLIENT)
        request = h11.Request(method="POST", target=vetted.target, headers=[
            ("Host", _host_header(vetted)), ("User-Agent", USER_AGENT), ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))), ("Connection", "close"), *headers])
        writer.write(connection.send(request) + connection.send(h11.Data(data=body))
                     + connection.send(h11.EndOfMessage()))
        await writer.drain()
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(await reader.read(16384))
            elif isinstance(event, h11.Response):
                return event.status_code
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("the receiver closed the connection without an answer")
            # An InformationalResponse (100 Continue...) precedes the real answer: read on.
    finally:
        writer.close()


async def post(url: str, headers: list[tuple[str, str]], body: bytes, *, allow_private: bool,
               connect_timeout: float = 2.0, total_timeout: float = 10.0) -> Answer:
    """POST ``body`` to ``url``; never raises for what the receiver or the network does.

    The total timeout covers everything: resolving, connecting, sending and the answer's head.
    """
    try:
        async with asyncio.timeout(total_timeout):
            vetted = await vet_url(url, allow_private)
            return Answer(await _exchange(vetted, headers, body, connect_timeout))
    except Refused as refused:
        return Answer(None, f"refused: {refused.reason}")
    except TimeoutError as error:
        return Answer(None, str(error) or f"timeout after {total_timeout:g} s")
    except h11.ProtocolError as error:
        return Answer(None, f"invalid HTTP answer: {error}")
    except OSError as error:  # refused, reset, unreachable, TLS (ssl.SSLError is an OSError)
        return Answer(None, f"connection failed: {error}")
