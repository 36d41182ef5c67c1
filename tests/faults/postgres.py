"""A PostgreSQL server of the test's own, so that the test may stop and start it under load.

The machine's server is shared by every test (and everyone else on the machine);
restarting it would fail them all. This one is the same binaries (Debian's, under
``/usr/lib/postgresql/<version>/bin``) with a data directory and a port of its own.
PostgreSQL refuses to run as root, so as root (CI) it runs as the ``postgres`` system user
the package created. ``fsync`` is off: the tests kill processes, not the machine, and what
a process wrote before it died is in the page cache either way.

Every ``pg_ctl`` call is awaited as a subprocess, so the server under test, which runs on
the test's event loop, keeps serving while PostgreSQL stops and starts.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

BIN = max(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda path: int(path.parent.name))


class PrivatePostgres:
    def __init__(self, port: int) -> None:
        self.port = port
        # Not under pytest's tmp_path: the postgres user could not traverse root's 0700 directory.
        self.root = Path(tempfile.mkdtemp(prefix="nve-faults-pg-"))
        self.pgdata = self.root / "data"
        self._user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    async def create(self) -> None:
        """initdb (trust authentication, no fsync of the new files), then start."""
        if self._user is not None:
            os.chown(self.root, self._user.pw_uid, self._user.pw_gid)
        await self._run(BIN / "initdb", "-D", str(self.pgdata), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                        "--no-sync", "--no-instructions")
        await self.start()

    async def start(self) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
                   "-c shared_buffers=16MB -c max_connections=60")
        await self._run(BIN / "pg_ctl", "-D", str(self.pgdata), "-l", str(self.root / "log"), "-o", options,
                        "-w", "-t", "60", "start")

    async def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m fast`` (sessions terminated, a clean checkpoint) or ``immediate`` (a crash)."""
        await self._run(BIN / "pg_ctl", "-D", str(self.pgdata), "-m", mode, "-w", "-t", "60", "stop")

    async def destroy(self) -> None:
        if (self.pgdata / "postmaster.pid").exists():
            await self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    async def _run(self, *command: str | Path) -> None:
        # Output to a file, not a pipe: the postmaster that ``pg_ctl start`` leaves behind would
        # hold a pipe open, and reading it to the end would never return.
        output = self.root / "commands.log"
        with output.open("ab") as sink:
            process = await asyncio.create_subprocess_exec(
                *map(str, command), preexec_fn=self._drop_root(), stdin=asyncio.subprocess.DEVNULL,
                stdout=sink, stderr=asyncio.subprocess.STDOUT)
            code = await process.wait()
        if code != 0:
            logs = "".join(path.read_text(errors="replace")[-2000:] for path in (output, self.root / "log")
                           if path.exists())
            raise RuntimeError(f"{command[0]} failed ({code}):\n{logs}")

    def _drop_root(self) -> Callable[[], None] | None:
        """What the child runs before exec to become the postgres user (uvloop has no ``user=``)."""
        user = self._user
        if user is None:
            return None

        def become() -> None:
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)

        return become
