"""The hub delivers each operation to its owner's clients only (server/ws/hub.py, "Owners")."""

from __future__ import annotations

from server.ws.hub import Hub, create_hub
from server.ws.messages import Envelope, job_envelope
from server.ws.settings import WsSettings
from tests.ws.fakes import connect, done, flushed, progress, send

ALICE = "tenant:alice"
BOB = "tenant:bob"


async def test_broadcast_reaches_only_the_owners_clients() -> None:
    hub = Hub()
    _, alice = connect(hub, owner=ALICE)
    _, bob = connect(hub, owner=BOB)
    await hub.publish("progress", progress("trim-a", 10), ALICE)
    await hub.publish("complete", done("trim-b"), BOB)
    await flushed()
    assert alice.jobs() == [("progress", 10)]
    assert bob.jobs() == [("complete", "trim-b")]


async def test_subscribing_to_another_owners_operation_gets_nothing() -> None:
    hub = Hub()
    await hub.publish("progress", progress("trim-a", 40), ALICE)  # known in memory now
    snoop, snooped = connect(hub, owner=BOB)
    send(snoop, {"type": "subscribe", "data": {"operationIds": ["trim-a"]}})
    await hub.publish("complete", done("trim-a"), ALICE)
    await flushed()
    assert snooped.jobs() == []


async def test_the_fallback_answers_only_the_jobs_owner() -> None:
    async def job_table(operation_id: str) -> Envelope | None:
        return job_envelope("complete", done(operation_id), ALICE)

    hub = create_hub(WsSettings(), fallback=job_table)
    owner, owner_transport = connect(hub, owner=ALICE)
    other, other_transport = connect(hub, owner=BOB)
    for client in (owner, other):
        send(client, {"type": "subscribe", "data": {"operationIds": ["old"]}})
    await flushed()
    await flushed()
    assert owner_transport.jobs() == [("complete", "old")]
    assert other_transport.jobs() == []


async def test_an_unauthenticated_client_gets_nothing_until_its_token_is_redeemed() -> None:
    tokens = {"good": ALICE}

    async def redeem(token: str) -> str | None:
        return tokens.pop(token, None)  # single use

    hub = create_hub(WsSettings(), redeem=redeem)
    client, transport = connect(hub, owner=None)
    await hub.publish("progress", progress("trim-a", 5), ALICE)
    send(client, {"type": "subscribe", "data": {"operationIds": ["trim-a"]}})
    send(client, {"type": "ping", "data": 1})  # answered: pings need no owner
    await flushed()
    replies = transport.messages()[1:]
    assert replies[0]["type"] == "error" and "Authenticate first" in replies[0]["data"]["error"]
    assert replies[1] == {"type": "pong", "data": 1}
    assert transport.jobs() == []

    send(client, {"type": "auth", "data": {"token": "good"}})
    await flushed()
    assert transport.messages()[-1]["type"] == "authenticated"
    await hub.publish("progress", progress("trim-a", 50), ALICE)
    await hub.publish("progress", progress("trim-b", 50), BOB)
    await flushed()
    assert transport.jobs() == [("progress", 50)]

    again, again_transport = connect(hub, owner=None)
    send(again, {"type": "auth", "data": {"token": "good"}})  # spent
    send(again, {"type": "auth", "data": {}})
    await flushed()
    errors = [m["data"]["error"] for m in again_transport.messages() if m["type"] == "error"]
    # The malformed one is refused at once; the spent one once the redeem has answered.
    assert errors == ["data.token must be the token from POST /api/ws/token",
                      "The token is unknown, spent or expired"]


async def test_the_same_operation_id_of_two_owners_is_two_operations() -> None:
    hub = Hub()
    _, bob = connect(hub, owner=BOB)
    await hub.publish("complete", done("upload-42"), BOB)  # client-chosen ids may meet
    alice_client, alice = connect(hub, owner=ALICE)
    await hub.publish("progress", progress("upload-42", 50), ALICE)  # not "after bob's final"
    await hub.publish("complete", done("upload-42"), ALICE)
    late_client, late = connect(hub, owner=ALICE)
    send(late_client, {"type": "subscribe", "data": {"operationIds": ["upload-42"]}})
    await flushed()
    assert alice.jobs() == [("progress", 50), ("complete", "upload-42")]
    assert late.jobs() == [("complete", "upload-42")]
    assert bob.jobs() == [("complete", "upload-42")]
