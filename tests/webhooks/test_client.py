"""The webhook client against a real loopback receiver: status, refusals, redirects, timeouts."""

from __future__ import annotations

import asyncio
import ipaddress
import time

import pytest

from core.webhooks.client import Refused, is_private, post, vet_url
from tests.conftest import free_port
from tests.webhooks.receiver import HANG


async def test_posts_the_body_and_headers_over_http_1_1(receiver):
    answer = await post(receiver.url("/hook?x=1"), [("webhook-id", "msg_1")], b'{"a":1}', allow_private=True)
    assert answer.ok and answer.status == 200 and answer.error is None
    [request] = receiver.received
    assert request.path == "/hook?x=1" and request.body == b'{"a":1}'
    assert request.headers["webhook-id"] == "msg_1"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert request.headers["connection"] == "close"


async def test_non_2xx_is_an_answer_that_is_not_ok(receiver):
    receiver.script("/h", 500, 404, 201)
    answers = [await post(receiver.url("/h"), [], b"{}", allow_private=True) for _ in range(3)]
    assert [(a.status, a.ok) for a in answers] == [(500, False), (404, False), (201, True)]
    assert answers[0].summary() == "HTTP 500"


async def test_redirects_are_not_followed(receiver):
    receiver.script("/moved", 302)
    answer = await post(receiver.url("/moved"), [], b"{}", allow_private=True)
    assert answer.status == 302 and not answer.ok
    assert [r.path for r in receiver.received] == ["/moved"]


async def test_private_addresses_are_refused_unless_allowed(receiver):
    answer = await post(receiver.url("/h"), [], b"{}", allow_private=False)
    assert answer.status is None
    assert answer.error == "refused: 127.0.0.1 resolves to 127.0.0.1, a private address"
    assert receiver.received == []
    with pytest.raises(Refused) as refused:
        await vet_url("http://localhost:9/x", allow_private=False)
    assert refused.value.field == "url" and "a private address" in str(refused.value)
    vetted = await vet_url("http://localhost:9/x?y", allow_private=True)
    assert vetted.port == 9 and vetted.target == "/x?y" and vetted.host == "localhost" and vetted.addresses


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
                                     "0.0.0.0", "224.0.0.1", "240.0.0.1", "100.64.0.1", "::1", "fe80::1",
                                     "fd00::1", "ff02::1", "::", "::ffff:127.0.0.1"])
def test_every_kind_of_non_public_address_is_private(address):
    assert is_private(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_not(address):
    assert not is_private(ipaddress.ip_address(address))


@pytest.mark.parametrize("url", ["ftp://example.com/", "/relative", "http://", "http://user:pw@example.com/",
                                 "http://example.com:99999/", "not a url"])
async def test_malformed_urls_are_refused(url):
    with pytest.raises(Refused):
        await vet_url(url, allow_private=True)


async def test_an_unresolvable_host_is_refused():
    answer = await post("http://no-such-host.invalid/", [], b"{}", allow_private=True)
    assert answer.error is not None and answer.error.startswith("refused: no-such-host.invalid does not resolve")


async def test_a_refused_connection_is_a_failed_attempt():
    answer = await post(f"http://127.0.0.1:{free_port()}/", [], b"{}", allow_private=True)
    assert answer.status is None and answer.error is not None and answer.error.startswith("connection failed")


async def test_a_hanging_receiver_costs_the_total_timeout(receiver):
    receiver.script("/hang", HANG)
    started = time.monotonic()
    answer = await post(receiver.url("/hang"), [], b"{}", allow_private=True, total_timeout=0.5)
    assert 0.45 < time.monotonic() - started < 2
    assert answer.status is None and answer.error == "timeout after 0.5 s"


async def test_a_connect_that_hangs_costs_the_connect_timeout(monkeypatch):
    # A SYN nobody answers cannot be staged on loopback: the connect itself is made to hang.
    async def never(*args, **kwargs):
        await asyncio.Event().wait()

    monkeypatch.setattr(asyncio, "open_connection", never)
    started = time.monotonic()
    answer = await post("http://127.0.0.1:9/", [], b"{}", allow_private=True, connect_timeout=0.2)
    assert 0.15 < time.monotonic() - started < 1
    assert answer.error == "connect timeout after 0.2 s"
