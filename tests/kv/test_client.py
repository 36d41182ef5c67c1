"""One connection policy for every Redis client: the request path's and the WebSocket bus's."""

from __future__ import annotations

import asyncio
import warnings

import pytest
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry as SyncRetry

from core.kv.client import POLICY
from core.kv.connection import RedisConnection
from server.ws.bus import RedisBus, create_redis
from server.ws.hub import create_hub
from server.ws.settings import WsSettings


async def test_building_and_using_the_clients_emits_no_warning(redis_url: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kv = RedisConnection(redis_url)
        hub = create_hub(WsSettings(channel="nve:quiet"), redis_url)
        try:
            assert await kv.ping()
            await hub.start()
            assert hub.bus.state == "up"
        finally:
            await hub.close(timeout=0)
            await kv.close()


def test_the_warning_guarded_against_is_what_a_synchronous_retry_gets() -> None:
    # So the test above would notice a regression (the bus used to pass redis.retry.Retry).
    with pytest.warns(UserWarning, match="synchronous redis.retry.Retry"):
        aioredis.Redis.from_url("redis://127.0.0.1:1/0", retry=SyncRetry(NoBackoff(), 0))


async def test_request_path_and_bus_connect_the_same_way(redis_url: str) -> None:
    kv = RedisConnection(redis_url)
    bus_client = create_redis(redis_url)
    try:
        kv_kwargs = kv._client.connection_pool.connection_kwargs
        bus_kwargs = bus_client.connection_pool.connection_kwargs
        assert (kv_kwargs["client_name"], bus_kwargs["client_name"]) == ("nve:kv", "nve:bus")
        policy = ("socket_timeout", "socket_connect_timeout", "socket_keepalive", "socket_keepalive_options",
                  "retry", "health_check_interval", "decode_responses", "parser_class")
        assert {name: kv_kwargs[name] for name in policy} == {name: bus_kwargs[name] for name in policy}
        assert kv_kwargs["maint_notifications_config"].relaxed_timeout == -1  # timeouts are never relaxed
        assert bus_kwargs["maint_notifications_config"].relaxed_timeout == -1
        assert kv_kwargs["socket_timeout"] == POLICY.socket_timeout
        assert kv_kwargs["socket_connect_timeout"] == POLICY.connect_timeout
        assert kv_kwargs["retry"].get_retries() == 0  # the callers retry, not redis-py
        assert kv_kwargs["decode_responses"] is False
    finally:
        await bus_client.aclose()
        await kv.close()


async def test_clients_are_named_on_the_server_subscription_included(redis_url: str) -> None:
    kv = RedisConnection(redis_url)
    hub = create_hub(WsSettings(channel="nve:named"), redis_url)
    await hub.start()
    try:
        assert isinstance(hub.bus, RedisBus) and hub.bus.state == "up"
        await kv.ping()
        clients = await kv.run(lambda r: r.client_list())
        named = {(client["name"], client["cmd"]) for client in clients}
        assert ("nve:kv", "client|list") in named
        assert ("nve:bus", "subscribe") in named  # the pub/sub connection, made by the same policy
    finally:
        await hub.close(timeout=0)
        await kv.close()


async def test_bus_subscription_fails_over_to_its_own_loop(redis_url: str) -> None:
    """With redis-py retrying nothing, a dropped subscription reaches the bus, which resubscribes
    and tells the hub to catch up (redis-py's own reconnect would skip the catch-up)."""
    hub = create_hub(WsSettings(channel="nve:dropped"), redis_url)
    resumed: list[float] = []
    await hub.start()
    try:
        assert isinstance(hub.bus, RedisBus)
        hub.bus.listen(lambda envelope: None, resumed.append)
        kv = RedisConnection(redis_url)
        try:
            await kv.run(lambda r: r.client_kill_filter(_type="pubsub"))
        finally:
            await kv.close()
        for _ in range(300):
            if resumed and hub.bus.state == "up":
                break
            await asyncio.sleep(0.01)
        assert resumed and hub.bus.state == "up"
    finally:
        await hub.close(timeout=0)
