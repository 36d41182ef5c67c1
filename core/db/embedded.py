"""The embedded PostgreSQL used when no database is configured.

``pgserver`` ships PostgreSQL binaries in a wheel and runs them in a data directory of
ours (``data_dir/pgdata``), listening on a Unix socket inside it. The data directory
outlives the process, so projects survive restarts; the server is stopped when
``nve serve`` exits.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pgserver.postgres_server import PostgresServer

log = logging.getLogger("nve.db")
# pgserver logs every pg_ctl command line and its output at INFO; ours says what matters.
logging.getLogger("pgserver").setLevel(logging.WARNING)

DATABASE = "nve"


class EmbeddedPostgres:
    """Start on ``__enter__`` (initdb on first use), stop on ``__exit__``; ``dsn`` in between."""

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = data_dir / "pgdata"
        self._server: PostgresServer | None = None

    def __enter__(self) -> EmbeddedPostgres:
        # Imported here: only the embedded mode pays for it. From its module: the package
        # re-exports get_server implicitly, which strict mypy does not count as an export.
        from pgserver.postgres_server import get_server

        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._server = server = get_server(self.pgdata, cleanup_mode="stop")
        exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}';")
        if "(1 row)" not in exists:
            server.psql(f'CREATE DATABASE "{DATABASE}";')
        log.info("embedded PostgreSQL running in %s", self.pgdata)
        return self

    @property
    def dsn(self) -> str:
        assert self._server is not None
        return f"postgresql://postgres@/{DATABASE}?host={self.pgdata}"

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
            log.info("embedded PostgreSQL stopped")
