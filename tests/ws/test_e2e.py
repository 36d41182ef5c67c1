"""/ws end to end over real sockets, with the `websockets` package and our own client."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import socket

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from server.ws.client import HandshakeFailed, WsClient
from tests.tcpproxy import TCPProxy
from tests.ws.frames import PING, TEXT, client_frame, close_code, server_frames
from tests.ws.test_bus import eventually


def url(server, path: str = "/ws") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


async def recv_json(ws, timeout: float = 10.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_type(ws, kind: str, timeout: float = 10.0) -> dict:
    while True:
        message = await recv_json(ws, timeout)
        if message["type"] == kind:
            return message


def raw_handshake(port: int, extra: str = "") -> socket.socket:
    """A blocking socket past a 101, speaking frames by hand (for what no client library sends)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  f"{extra}\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def read_frames(sock: socket.socket, until_opcode: int) -> list[tuple[int, bytes]]:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return server_frames(data)
        data += chunk
        try:
            frames = server_frames(data)
        except Exception:
            continue
        if frames and frames[-1][0] == until_opcode and len(b"".join(p for _, p in frames)) <= len(data):
            return frames


async def test_welcome_ping_pong_and_broadcast(start_server) -> None:
    server = await start_server()
    async with websockets.connect(url(server)) as ws:
        welcome = await recv_json(ws)
        assert welcome["type"] == "ping"
        assert welcome["data"]["message"] == "Connected to native-video-editor WebSocket"
        assert welcome["data"]["clientId"] in server.app.hub.clients
        await ws.send(json.dumps({"type": "ping", "data": {"t": 1}}))
        assert await recv_json(ws) == {"type": "pong", "data": {"t": 1}}
        await ws.send("garbage")
        assert (await recv_json(ws))["type"] == "error"
        await server.app.hub.publish("progress", {"operationId": "trim-1", "operation": "trim", "progress": 5})
        assert (await recv_json(ws))["data"] == {"operationId": "trim-1", "operation": "trim", "progress": 5}


async def test_handshake_refusals_are_json_http_errors(start_server) -> None:
    server = await start_server(allowed_origins=("https://ui.example",))
    with pytest.raises(InvalidStatus) as info:
        await websockets.connect(url(server), origin="https://evil.example")
    assert info.value.response.status_code == 403
    async with websockets.connect(url(server), origin="https://ui.example") as ws:
        await recv_json(ws)
    async with websockets.connect(url(server), origin=f"http://127.0.0.1:{server.port}") as ws:
        await recv_json(ws)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
        plain = await http.get("/ws")
        assert plain.status_code == 426 and "error" in plain.json()
        old = await http.get("/ws", headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                             "Sec-WebSocket-Version": "8",
                                             "Sec-WebSocket-Key": base64.b64encode(b"k" * 16).decode()})
        assert old.status_code == 426 and old.headers["sec-websocket-version"] == "13"
        keyless = await http.get("/ws", headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                                 "Sec-WebSocket-Version": "13"})
        assert keyless.status_code == 400 and "Sec-WebSocket-Key" in keyless.json()["error"]


async def test_clients_over_the_cap_are_503(start_server) -> None:
    server = await start_server(max_connections=1)
    async with websockets.connect(url(server)) as first:
        await recv_json(first)
        with pytest.raises(InvalidStatus) as info:
            await websockets.connect(url(server))
        assert info.value.response.status_code == 503


async def test_oversized_and_invalid_messages_close_only_their_connection(start_server) -> None:
    server = await start_server()
    async with websockets.connect(url(server)) as neighbour, \
            websockets.connect(url(server), max_size=None) as big:
        await recv_json(neighbour)
        await recv_json(big)
        await big.send("x" * ((1 << 20) + 1))
        with pytest.raises(ConnectionClosed):
            await recv_json(big)
        assert big.close_code == 1009
        sock = await asyncio.to_thread(raw_handshake, server.port)
        try:
            sock.sendall(client_frame(TEXT, b"\xc3\x28"))
            frames = await asyncio.to_thread(read_frames, sock, 0x8)
            assert close_code(frames[-1][1]) == 1007
        finally:
            sock.close()
        await neighbour.send(json.dumps({"type": "ping", "data": "still here"}))
        assert await recv_json(neighbour) == {"type": "pong", "data": "still here"}


async def test_fragmented_message_is_reassembled(start_server) -> None:
    server = await start_server()
    async with websockets.connect(url(server)) as ws:
        await recv_json(ws)
        await ws.send(iter(['{"type":"pi', 'ng","data":', '"frag"}']))
        assert await recv_json(ws) == {"type": "pong", "data": "frag"}


async def test_silent_client_is_dropped_and_answering_one_kept(start_server) -> None:
    server = await start_server(ws_ping_interval=0.2)
    async with websockets.connect(url(server), ping_interval=None) as lively:
        sock = await asyncio.to_thread(raw_handshake, server.port)
        try:
            frames = await asyncio.to_thread(read_frames, sock, 0x8)  # never answers the pings
            assert any(op == PING for op, _ in frames)
            assert close_code(frames[-1][1]) == 1011
        finally:
            sock.close()
        assert "clientId" in (await recv_json(lively))["data"]
        heartbeat = await recv_type(lively, "ping")  # websockets answers protocol pings itself
        assert isinstance(heartbeat["data"]["timestamp"], int)
        await asyncio.sleep(0.5)
        await lively.send(json.dumps({"type": "ping", "data": 1}))
        assert (await recv_type(lively, "pong"))["data"] == 1


async def test_a_client_that_never_reads_is_capped_and_delays_nobody(start_server) -> None:
    server = await start_server()
    hub = server.app.hub
    hub.settings = dataclasses.replace(hub.settings, client_budget_bytes=32 << 10, client_hard_cap_bytes=256 << 10)
    sock = await asyncio.to_thread(raw_handshake, server.port)  # reads nothing from here on
    try:
        async with websockets.connect(url(server), max_queue=None) as reader:
            await recv_json(reader)
            payload = "p" * 4000
            held = []
            for index in range(3000):  # 12 MB: more than the kernel's socket buffers absorb
                await hub.publish("complete", {"operationId": f"op-{index}", "result": {"pad": payload}})
                held.extend(c._backlog.nbytes + c._transport.get_write_buffer_size()
                            for c in hub.clients.values() if not c.closed)
                if index % 50 == 0:
                    await asyncio.sleep(0)
            got = 0
            while got < 3000:
                if (await recv_json(reader))["type"] == "complete":
                    got += 1
            assert max(held) <= (256 << 10) + 5000
            await eventually(lambda: len(hub.clients) == 1)  # the sleeper was closed (1013)
    finally:
        sock.close()


async def test_subscribe_after_completion_gets_the_final_message(start_server) -> None:
    server = await start_server()
    await server.app.hub.publish("progress", {"operationId": "split-9", "operation": "split", "progress": 60})
    await server.app.hub.publish("complete", {"operationId": "split-9", "result": {"filename": "a.mp4",
                                                                                   "url": "/videos/a.mp4"}})
    async with WsClient(url(server)) as client:
        await client.recv_type("ping")
        await client.subscribe(["split-9"])
        message = await client.recv_type("complete", timeout=10)
        assert message.data["operationId"] == "split-9"


async def test_two_nodes_sharing_redis_deliver_each_others_progress(start_server, redis_url) -> None:
    a = await start_server(redis_url=redis_url)
    b = await start_server(redis_url=redis_url)
    await eventually(lambda: a.app.hub.bus.state == "up" and b.app.hub.bus.state == "up")
    async with websockets.connect(url(b)) as on_b:
        await recv_json(on_b)
        await on_b.send(json.dumps({"type": "subscribe", "data": {"operationIds": ["process-7"]}}))
        await asyncio.sleep(0.05)
        await a.app.hub.publish("progress", {"operationId": "process-7", "operation": "process", "progress": 40})
        assert (await recv_type(on_b, "progress"))["data"]["progress"] == 40
        await a.app.hub.publish("complete", {"operationId": "process-7", "result": {"filename": "o.mp4",
                                                                                     "url": "/videos/o.mp4"}})
        assert (await recv_type(on_b, "complete"))["data"]["operationId"] == "process-7"


async def test_client_reconnects_and_resubscribes_missing_nothing_final(start_server) -> None:
    server = await start_server()
    proxy = TCPProxy("127.0.0.1", server.port)
    await proxy.start()
    try:
        client = WsClient(f"ws://127.0.0.1:{proxy.port}/ws", base_delay=0.05, max_delay=0.2)
        await client.connect()
        first = (await client.recv_type("ping")).data["clientId"]
        await client.subscribe(["trim-5"])
        await asyncio.sleep(0.05)
        await proxy.cut()
        await server.app.hub.publish("complete", {"operationId": "trim-5", "result": {"filename": "t.mp4",
                                                                                      "url": "/videos/t.mp4"}})
        await proxy.restore()
        message = await client.recv_type("complete", timeout=10)
        assert message.data["operationId"] == "trim-5"
        assert client.reconnects == 1 and client.client_id != first
        await client.close()
    finally:
        await proxy.close()


async def test_our_client_reports_a_refused_handshake(start_server) -> None:
    server = await start_server()
    with pytest.raises(HandshakeFailed) as info:
        await WsClient(url(server), origin="https://evil.example").connect()
    assert info.value.status == 403


async def test_shutdown_closes_websockets_with_1001(start_server) -> None:
    server = await start_server()
    async with websockets.connect(url(server)) as ws:
        await recv_json(ws)
        await server.stop()
        with pytest.raises(ConnectionClosed):
            await recv_json(ws)
        assert ws.close_code == 1001


async def test_bench_hook_only_with_the_flag(start_server) -> None:
    plain = await start_server()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{plain.port}") as http:
        assert (await http.post("/api/_bench/broadcast", json={"count": 3, "operationId": "b"})).status_code == 404
    bench = await start_server(bench=True)
    async with websockets.connect(url(bench)) as ws:
        await recv_json(ws)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{bench.port}") as http:
            answer = await http.post("/api/_bench/broadcast", json={"count": 3, "operationId": "bench-1"})
            assert answer.status_code == 202
            assert (await http.post("/api/_bench/broadcast", json={"count": "x"})).status_code == 400
        got = [(await recv_type(ws, "progress"))["data"] for _ in range(3)]
        assert [m["progress"] for m in got] == [pytest.approx(100 / 3), pytest.approx(200 / 3), 100]
        assert all(isinstance(m["sentAt"], float) for m in got)
