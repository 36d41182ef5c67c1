"""The opening handshake, sans-I/O: what is accepted, what answers 400/403/405/426."""

from __future__ import annotations

import base64

import pytest

from core.config import Settings
from server.http.request import Headers
from server.ws.handshake import HandshakeRejected, accept_handshake, origin_allowed
from server.ws.settings import WsSettings

KEY = base64.b64encode(b"0123456789abcdef").decode()


def headers(**overrides: str | None) -> Headers:
    fields = {"host": "localhost:3001", "upgrade": "websocket", "connection": "keep-alive, Upgrade",
              "sec-websocket-version": "13", "sec-websocket-key": KEY}
    fields.update({name.replace("_", "-"): value for name, value in overrides.items()})
    return Headers([(name.encode(), value.encode()) for name, value in fields.items() if value is not None])


def rejected(method: str = "GET", allowed: frozenset[str] = frozenset(), **overrides: str | None) -> HandshakeRejected:
    with pytest.raises(HandshakeRejected) as info:
        accept_handshake(method, headers(**overrides), allowed)
    return info.value


def test_valid_handshake_answers_the_rfc_accept_token() -> None:
    # RFC 6455 section 1.3's worked example.
    answer = dict(accept_handshake("GET", headers(sec_websocket_key="dGhlIHNhbXBsZSBub25jZQ=="), ()))
    assert answer["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert answer["upgrade"] == "websocket"
    assert "sec-websocket-extensions" not in answer  # no permessage-deflate, whatever is offered


def test_extension_offer_is_ignored() -> None:
    answer = dict(accept_handshake("GET", headers(sec_websocket_extensions="permessage-deflate"), ()))
    assert "sec-websocket-extensions" not in answer


def test_bad_version_is_426_naming_13() -> None:
    error = rejected(sec_websocket_version="8")
    assert error.status == 426
    assert ("sec-websocket-version", "13") in error.headers


def test_missing_version_is_426() -> None:
    assert rejected(sec_websocket_version=None).status == 426


@pytest.mark.parametrize("key", [None, "", "not base64!", base64.b64encode(b"short").decode()])
def test_missing_or_malformed_key_is_400(key: str | None) -> None:
    assert rejected(sec_websocket_key=key).status == 400


def test_plain_get_without_upgrade_is_426() -> None:
    error = rejected(upgrade=None)
    assert error.status == 426
    assert ("upgrade", "websocket") in error.headers


def test_connection_without_upgrade_token_is_400() -> None:
    assert rejected(connection="keep-alive").status == 400


def test_post_is_405() -> None:
    assert rejected(method="POST").status == 405


def test_wrong_origin_is_403() -> None:
    error = rejected(origin="https://evil.example")
    assert error.status == 403
    assert "evil.example" in error.message


def test_same_origin_and_listed_origins_pass() -> None:
    accept_handshake("GET", headers(origin="http://localhost:3001"), ())
    accept_handshake("GET", headers(origin="https://app.example"), frozenset({"https://app.example"}))
    accept_handshake("GET", headers(origin="https://anything.example"), frozenset({"*"}))


def test_no_origin_is_not_a_browser_and_passes() -> None:
    accept_handshake("GET", headers(origin=None), ())


@pytest.mark.parametrize(("origin", "host", "same"), [
    ("http://localhost:3001", "localhost:3001", True),
    ("HTTP://LocalHost:3001/", "localhost:3001", True),
    ("https://example.com", "example.com", True),
    ("https://example.com:443", "example.com", True),
    ("http://example.com", "example.com:80", True),
    ("http://localhost:3002", "localhost:3001", False),
    ("http://localhost", "localhost:3001", False),
    ("http://evil.com", "localhost:3001", False),
    ("http://localhost.evil.com:3001", "localhost:3001", False),
    ("null", "localhost:3001", False),
    ("http://localhost:99999", "localhost:3001", False),
    ("http://localhost:3001", None, False),
])
def test_origin_matching(origin: str, host: str | None, same: bool) -> None:
    assert origin_allowed(origin, host, ()) is same


def test_an_origin_configured_in_any_spelling_passes_the_handshake_and_the_http_check() -> None:
    settings = Settings.from_env({"NVE_ALLOWED_ORIGINS": "HTTPS://Example.COM:443/"})
    # What a browser on that origin sends, and what a hand-written client might.
    for origin in ("https://example.com", "https://Example.com:443/"):
        # The WebSocket handshake, with the hub's settings derived from the server's.
        accept_handshake("GET", headers(origin=origin), WsSettings.from_settings(settings).allowed_origins)
        # The HTTP same-origin check (server/policy/access.py) passes the settings' tuple as it is.
        assert origin_allowed(origin, "api.example", settings.allowed_origins)
    assert not origin_allowed("https://example.com:8443", "api.example", settings.allowed_origins)
