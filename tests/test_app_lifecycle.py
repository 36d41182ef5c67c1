"""The app's services start in dependency order, stop in reverse, and unwind a failed start
(server/app.py); a server whose start fails leaves nothing running (server/cli/serve.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Settings
from core.db.pool import Database
from core.jobs.supervisor import Supervisor
from core.kv.services import KvServices
from core.media.pool import MediaPool
from core.webhooks.sender import WebhookSender
from server.app import App
from server.routes import route_table
from server.ws.hub import Hub
from server.ws.job_events import JobEventBridge


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every service's start and stop (the real ones still run)."""
    log: list[str] = []
    for cls, start, stop in ((MediaPool, "start", "close"), (KvServices, "start", "close"), (Hub, "start", "close"),
                             (JobEventBridge, "start", "close"), (WebhookSender, "start", "stop"),
                             (Supervisor, "start", "stop")):
        for method in (start, stop):
            original = getattr(cls, method)

            async def recorded(self, *args, __original=original, __name=f"{cls.__name__}.{method}", **kwargs):
                log.append(__name)
                return await __original(self, *args, **kwargs)

            monkeypatch.setattr(cls, method, recorded)
    return log


def _settings(tmp_path: Path, dsn: str, **overrides: object) -> Settings:
    values: dict[str, object] = {"host": "127.0.0.1", "port": 0, "data_dir": tmp_path / "data",
                                 "database_url": dsn, "redis_url": "redis://127.0.0.1:1/0", "workers": 1}
    return Settings(**{**values, **overrides})  # type: ignore[arg-type]


async def test_services_start_in_order_and_stop_in_reverse(migrated_dsn: str, tmp_path: Path,
                                                           calls: list[str]) -> None:
    settings = _settings(tmp_path, migrated_dsn)
    db = Database(migrated_dsn)
    await db.open()
    try:
        app = App(settings, db, route_table(settings))
        await app.start()
        started = list(calls)
        await app.close_connections()
        await app.stop()
        await app.stop()  # idempotent
    finally:
        await db.close()
    assert started == ["MediaPool.start", "KvServices.start", "Hub.start", "JobEventBridge.start",
                       "WebhookSender.start", "Supervisor.start"]
    assert calls[len(started):] == ["Hub.close", "Supervisor.stop", "WebhookSender.stop", "JobEventBridge.close",
                                    "KvServices.close", "MediaPool.close"]


async def test_a_failed_start_stops_what_had_started(migrated_dsn: str, tmp_path: Path, calls: list[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    async def refuse(self: JobEventBridge, *args: object) -> None:
        calls.append("JobEventBridge.start")
        raise RuntimeError("no LISTEN connection")

    monkeypatch.setattr(JobEventBridge, "start", refuse)
    settings = _settings(tmp_path, migrated_dsn)
    db = Database(migrated_dsn)
    await db.open()
    try:
        app = App(settings, db, route_table(settings))
        with pytest.raises(RuntimeError, match="no LISTEN connection"):
            await app.start()
    finally:
        await db.close()
    assert calls == ["MediaPool.start", "KvServices.start", "Hub.start", "JobEventBridge.start",
                     "Hub.close", "KvServices.close", "MediaPool.close"]


async def test_a_server_that_cannot_start_leaves_nothing_behind(migrated_dsn: str, tmp_path: Path,
                                                                calls: list[str]) -> None:
    """The port is taken: the app was started, so it is stopped again, and the error is the listener's."""
    import socket

    from server.cli.serve import start

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(OSError):
            await start(_settings(tmp_path, migrated_dsn, workers=0, port=taken.getsockname()[1]), migrated_dsn)
    finally:
        taken.close()
    assert calls[-3:] == ["Hub.close", "KvServices.close", "MediaPool.close"]
