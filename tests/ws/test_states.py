"""A WebSocket client's named states through the closing handshake, either side starting it.

``WsProtocol`` goes OPEN -> CLOSING -> CLOSED (every change through ``_enter``, which checks
the transition table while assertions are on); its ``WsConnection`` shows wsproto's state.
"""

from __future__ import annotations

import struct

import pytest

from server.ws.hub import Hub
from server.ws.protocol import State, WsProtocol
from tests.ws.fakes import connect
from tests.ws.frames import CLOSE, client_frame


@pytest.fixture
def states(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The states entered by any client, in order."""
    seen: list[str] = []
    enter = WsProtocol._enter

    def recording(self: WsProtocol, state: State) -> None:
        seen.append(state.name)
        enter(self, state)

    monkeypatch.setattr(WsProtocol, "_enter", recording)
    return seen


def close_frame(code: int, reason: bytes = b"") -> bytes:
    return client_frame(CLOSE, struct.pack("!H", code) + reason)


async def test_the_clients_close_is_answered_then_the_socket_goes(states: list[str]) -> None:
    hub = Hub()
    client, transport = connect(hub)
    assert client.state.name == "OPEN" and repr(client).startswith("<WsProtocol OPEN (<WsConnection OPEN>)")

    client.data_received(close_frame(1000, b"bye"))
    assert client.state.name == "CLOSING" and not client.closed
    assert transport.close_code() == 1000 and transport.eof  # answered, then half-closed
    assert repr(client).startswith("<WsProtocol CLOSING (<WsConnection CLOSED>)")

    transport.lose()
    assert client.state.name == "CLOSED" and client.closed and client.client_id not in hub.clients
    assert states == ["CLOSING", "CLOSED"]


async def test_the_servers_close_waits_for_the_socket_to_go(states: list[str]) -> None:
    hub = Hub()
    client, transport = connect(hub)
    client.close(1001, "server shutting down")
    assert client.state.name == "CLOSING" and transport.close_code() == 1001
    assert repr(client).startswith("<WsProtocol CLOSING (<WsConnection LOCAL_CLOSING>)")

    written = len(transport.writes)
    client.data_received(close_frame(1001))  # the peer's answer: read and dropped
    client.close(1000)  # closing already: no second close frame
    assert len(transport.writes) == written and client.state.name == "CLOSING"

    transport.lose()
    assert client.state.name == "CLOSED" and repr(client).startswith("<WsProtocol CLOSED")
    assert states == ["CLOSING", "CLOSED"]


async def test_an_aborted_client_writes_nothing_more(states: list[str]) -> None:
    hub = Hub()
    client, transport = connect(hub)
    client.abort()
    assert client.state.name == "CLOSING" and transport.aborted
    client.send_frame(b"\x81\x00")  # dropped, not written to the aborted transport
    transport.lose()
    assert states == ["CLOSING", "CLOSED"] and client.closed
