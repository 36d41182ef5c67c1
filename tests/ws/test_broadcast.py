"""Broadcast groups: one log, one write per client per sweep, and what a sweep owes whom.

The first tests drive :class:`Broadcast` with recording clients, the rest go through the
hub with fake transports and two writes per turn of the loop, so that a sweep spans
several turns and messages can be routed in the middle of one.
"""

from __future__ import annotations

import asyncio

import pytest

from server.ws import hub as hub_module
from server.ws.broadcast import Broadcast
from server.ws.hub import Hub
from tests.ws.fakes import connect, flushed, progress, send


class Recorder:
    """Stands in for a WsProtocol: records what a sweep hands it."""

    def __init__(self, joined: bool = True) -> None:
        self.joined = joined
        """False: it refuses the joined buffer (as an over-budget client does)."""
        self.writes: list[bytes] = []
        self.one_by_one: list[tuple[str, bytes, bool]] = []

    def write_broadcast(self, data: bytes) -> bool:
        if self.joined:
            self.writes.append(data)
        return self.joined

    def send_job(self, operation_id: str, frame: bytes, final: bool) -> None:
        self.one_by_one.append((operation_id, frame, final))


def group_of(count: int) -> tuple[Broadcast, list[Recorder]]:
    group = Broadcast()
    clients = [Recorder() for _ in range(count)]
    for client in clients:
        group.add(client)  # type: ignore[arg-type]
    return group, clients


def test_a_sweep_writes_each_client_once_the_same_joined_bytes() -> None:
    group, clients = group_of(4)
    assert group.route(b"a", "op", False)  # the first message makes the group fall behind: schedule it
    assert not group.route(b"b", "op", False)  # the next ones join it
    assert not group.route(b"c", "op", True)
    assert group.write(100) == 4
    assert not group.writing
    assert all(c.writes == [b"abc"] for c in clients)
    assert all(c.writes[0] is clients[0].writes[0] for c in clients)  # joined once


def test_the_budget_bounds_the_writes_of_one_call() -> None:
    group, clients = group_of(5)
    group.route(b"a", "op", False)
    assert group.write(2) == 2
    assert group.writing
    assert [len(c.writes) for c in clients] == [1, 1, 0, 0, 0]
    assert group.write(2) == 2 and group.write(2) == 1
    assert not group.writing


def test_a_message_routed_mid_sweep_reaches_the_clients_behind_with_the_rest_and_the_others_after_them() -> None:
    group, clients = group_of(4)
    group.route(b"a", "op", False)
    group.write(2)
    assert not group.route(b"b", "op", False)  # behind already: no new schedule
    order = []
    for client in clients:
        client.write_broadcast = lambda data, c=client: order.append(c) or Recorder.write_broadcast(c, data)
    assert group.write(10) == 4 and not group.writing
    assert order == [clients[2], clients[3], clients[0], clients[1]]  # in the order they fell behind
    assert [c.writes for c in clients] == [[b"a", b"b"], [b"a", b"b"], [b"ab"], [b"ab"]]


def test_no_message_waits_more_than_one_sweep_while_messages_keep_coming() -> None:
    group, clients = group_of(10)
    for turn in range(40):
        group.route(b"%d," % turn, "op", False)  # a message per turn of the loop
        group.write(3)  # three writes per turn: a sweep of the ten clients takes four turns
        for client in clients:
            have = b"".join(client.writes).count(b",")
            assert have >= turn + 1 - 4  # written within the last sweep, with all there was then
    while group.writing:
        group.write(3)
    assert all(b"".join(c.writes) == b"".join(b"%d," % i for i in range(40)) for c in clients)
    assert all(len(c.writes) <= 40 // 3 + 1 for c in clients)  # several messages a write


def test_a_client_that_joins_gets_what_is_routed_from_then_on() -> None:
    group, clients = group_of(2)
    group.route(b"a", "op", False)
    group.write(1)
    late = Recorder()
    group.add(late)  # type: ignore[arg-type]
    group.route(b"b", "op", False)
    while group.writing:
        group.write(10)
    assert late.writes == [b"b"]
    assert clients[0].writes == [b"a", b"b"] and clients[1].writes == [b"ab"]


def test_a_client_that_leaves_takes_its_unwritten_messages_and_is_skipped() -> None:
    group, clients = group_of(3)
    group.route(b"a", "op-1", False)
    group.route(b"b", "op-2", True)
    group.write(1)
    assert group.remove(clients[0]) == []  # written already  # type: ignore[arg-type]
    assert group.remove(clients[2]) == [(b"a", "op-1", False), (b"b", "op-2", True)]  # type: ignore[arg-type]
    assert group.write(10) == 1
    assert [c.writes for c in clients] == [[b"ab"], [b"ab"], []]
    assert group.remove(clients[2]) == []  # type: ignore[arg-type]


def test_a_client_refusing_the_joined_bytes_gets_each_message_with_its_operation() -> None:
    group = Broadcast()
    slow, fast = Recorder(joined=False), Recorder()
    group.add(slow)  # type: ignore[arg-type]
    group.add(fast)  # type: ignore[arg-type]
    group.route(b"a", "op-1", False)
    group.route(b"b", "op-1", True)
    group.write(10)
    assert slow.one_by_one == [("op-1", b"a", False), ("op-1", b"b", True)]
    assert fast.writes == [b"ab"]


def test_the_log_is_empty_once_nobody_is_behind() -> None:
    group, _ = group_of(3)
    for round_ in range(3):
        group.route(b"x" * 1000, f"op-{round_}", False)
        while group.writing:
            group.write(2)
        assert group.remove(Recorder()) == []  # type: ignore[arg-type]
        assert group._log == [] and group.end == round_ + 1


def test_a_group_without_clients_keeps_nothing() -> None:
    group = Broadcast()
    assert not group.route(b"a", "op", False)
    assert group._log == [] and not group.writing
    client = Recorder()
    group.add(client)  # type: ignore[arg-type]
    group.remove(client)  # type: ignore[arg-type]
    assert group.route(b"b", "op", False)  # its place is visited once, and then forgotten
    assert group.write(10) == 0 and not group.writing and group._log == []


def test_clients_coming_and_going_with_no_message_leave_no_places_behind() -> None:
    group, stayers = group_of(3)
    for _ in range(10_000):  # a day of reconnects on an idle server
        client = Recorder()
        group.add(client)  # type: ignore[arg-type]
        group.remove(client)  # type: ignore[arg-type]
    assert len(group._current) + len(group._behind) <= 3 + 64 + 1
    group.route(b"a", "op", False)
    group.write(3)
    group.remove(stayers[0])  # type: ignore[arg-type]  (mid-sweep: the places are swept in place)
    for _ in range(200):
        client = Recorder()
        group.add(client)  # type: ignore[arg-type]
        group.remove(client)  # type: ignore[arg-type]
    group.route(b"b", "op", False)
    while group.writing:
        group.write(2)
    assert stayers[1].writes == stayers[2].writes == [b"a", b"b"]
    assert len(group._current) + len(group._behind) <= 2 + 64 + 1


def test_a_client_that_leaves_and_comes_back_is_written_once() -> None:
    group, clients = group_of(2)
    group.route(b"a", "op", False)
    group.remove(clients[1])  # type: ignore[arg-type]
    group.add(clients[1])  # type: ignore[arg-type]
    group.route(b"b", "op", False)
    while group.writing:
        group.write(10)
    assert clients[0].writes == [b"ab"] and clients[1].writes == [b"b"]


# -- through the hub -------------------------------------------------------------------------


@pytest.fixture
def chunk_of_two(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_module, "FLUSH_SLICE", 0.0)
    monkeypatch.setattr(hub_module, "FLUSH_STEP", 2)


async def test_one_write_per_client_per_sweep_through_the_hub() -> None:
    hub = Hub()
    transports = [connect(hub)[1] for _ in range(6)]
    await flushed()
    before = [len(t.writes) for t in transports]
    for value in (10, 20, 30):
        await hub.publish("progress", progress("trim-1", value))
    await flushed()
    assert [len(t.writes) - n for t, n in zip(transports, before)] == [1] * 6
    assert all(t.jobs() == [("progress", 10), ("progress", 20), ("progress", 30)] for t in transports)


@pytest.mark.usefixtures("chunk_of_two")
async def test_a_sweep_spans_turns_and_messages_routed_meanwhile_reach_everyone_once() -> None:
    hub = Hub()
    transports = [connect(hub)[1] for _ in range(6)]
    await flushed()
    await hub.publish("progress", progress("trim-1", 10))
    await asyncio.sleep(0)  # one turn: two clients written
    await hub.publish("progress", progress("trim-1", 20))
    await flushed()
    for transport in transports:
        assert transport.jobs() == [("progress", 10), ("progress", 20)]


@pytest.mark.usefixtures("chunk_of_two")
async def test_a_client_narrowing_itself_mid_sweep_loses_nothing_routed_before() -> None:
    hub = Hub()
    transports = [connect(hub) for _ in range(4)]
    await flushed()
    await hub.publish("progress", progress("trim-1", 10))
    client, last = transports[-1]  # the sweep reaches it last
    send(client, {"type": "subscribe", "data": {"operationIds": ["trim-2"]}})
    await hub.publish("progress", progress("trim-1", 20))  # no longer for it
    await hub.publish("progress", progress("trim-2", 5))
    await flushed()
    assert last.jobs() == [("progress", 10), ("progress", 5)]
    assert transports[0][1].jobs() == [("progress", 10), ("progress", 20), ("progress", 5)]


@pytest.mark.usefixtures("chunk_of_two")
async def test_own_frames_are_written_before_the_broadcast_that_follows_them() -> None:
    hub = Hub()
    transports = [connect(hub)[1] for _ in range(3)]
    await hub.publish("progress", progress("trim-1", 10))  # routed before any welcome is written
    await flushed()
    for transport in transports:
        kinds = [m["type"] for m in transport.messages()]
        assert kinds == ["ping", "progress"]  # the welcome first, always


async def test_a_slow_client_in_a_sweep_coalesces_and_its_neighbours_do_not_wait() -> None:
    hub = Hub()
    slow, slow_transport = connect(hub, reading=False)
    slow_transport.high = 1  # over budget at its first write
    _, fast = connect(hub)
    await flushed()
    for value in range(1, 6):
        await hub.publish("progress", progress("trim-1", value * 10))
        await flushed()
    assert fast.jobs() == [("progress", v * 10) for v in range(1, 6)]
    slow_transport.drain()
    assert slow_transport.jobs() == [("progress", 50)]  # latest wins
