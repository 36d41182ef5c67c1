"""The fan-out harness's client: what it records during a round is what it would have parsed."""

from __future__ import annotations

import json
import random

from perf.ws_bench import BenchClient, Sink


def frame(message: dict[str, object]) -> bytes:
    payload = json.dumps(message, separators=(",", ":")).encode()
    size = len(payload)
    head = bytes((0x81, size)) if size < 126 else bytes((0x81, 126)) + size.to_bytes(2, "big")
    return head + payload


def stream(count: int) -> tuple[bytes, list[float]]:
    """A handshake answer, the welcome, then ``count`` bench messages with their sentAt."""
    sent = [1_700_000_000_000.0 + index * 1000.5 for index in range(count)]
    data = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
    data += frame({"type": "ping", "data": {"clientId": "c", "message": "Connected"}})
    for index, at in enumerate(sent):
        data += frame({"type": "progress", "data": {"operationId": "bench", "progress": index, "sentAt": at}})
    return data, sent


async def test_recorded_reads_cut_anywhere_count_and_replay_every_message_once() -> None:
    for seed in range(20):
        cuts = random.Random(seed)
        data, sent = stream(200)
        welcome_end = data.index(b"Connected") + 20
        sink = Sink()
        client = BenchClient(sink)
        client.data_received(data[:welcome_end])
        assert client.ready.done()
        client.record()
        offset = welcome_end
        while offset < len(data):  # pieces of 1 to 40 bytes: markers and frames cut everywhere
            step = cuts.randint(1, 40)
            client.data_received(data[offset:offset + step])
            offset += step
        assert sink.arrived == 200 and len(sink.latencies) == 0
        client.replay()
        assert len(sink.latencies) == 200
        assert client.recorded is None
        # Every latency is its own message's: arrival minus that message's sentAt.
        arrivals = [latency + at for latency, at in zip(sink.latencies, sent)]
        assert max(arrivals) - min(arrivals) < 60_000
        assert sorted(sink.latencies, reverse=True) == list(sink.latencies)  # later sentAt, smaller latency
