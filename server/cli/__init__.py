"""The ``nve`` command: ``serve``, ``migrate``, ``worker`` and ``apikey``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import uvloop

from core.config import ACCESS_MODES, Settings
from core.db.migrations import migrate
from server.cli.apikey import add_apikey_command, run_apikey
from server.cli.serve import database_url, serve
from server.cli.worker import add_worker_command, run_worker


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nve", description="native-video-editor backend")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True)

    serve_cmd = commands.add_parser("serve", help="run the HTTP + WebSocket server")
    serve_cmd.add_argument("--host", help="address to bind (default 0.0.0.0, env NVE_HOST)")
    serve_cmd.add_argument("--port", type=int, help="port (default 3001, env PORT)")
    serve_cmd.add_argument("--data-dir", type=Path, help="data directory (env NVE_DATA_DIR)")
    serve_cmd.add_argument("--workers", type=int, help="local media worker processes (env NVE_WORKERS)")
    serve_cmd.add_argument("--access", choices=ACCESS_MODES,
                           help="who may use the API without credentials: open, owners, or auto "
                                "(default: open for this machine's own clients, owners for others; env NVE_ACCESS)")
    serve_cmd.add_argument("--no-access-log", action="store_true", help="do not log one line per request")

    migrate_cmd = commands.add_parser("migrate", help="apply pending migrations and exit")
    migrate_cmd.add_argument("--data-dir", type=Path, help="data directory (env NVE_DATA_DIR)")

    add_worker_command(commands)
    add_apikey_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The format names none of these, and looking them up costs every record (the access
    # log writes one per request).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # The worker processes this command starts log at the same level (core/jobs/worker.py).
    os.environ.setdefault("NVE_LOG_LEVEL", args.log_level.upper())
    overrides = {"data_dir": args.data_dir}
    if args.command == "serve":
        overrides.update(host=args.host, port=args.port, workers=args.workers, access=args.access)
        if args.no_access_log:
            logging.getLogger("nve.access").setLevel(logging.WARNING)
    elif args.command == "worker":
        overrides.update(workers=args.workers)
    settings = Settings.from_env(**overrides)
    if args.command == "worker":
        return run_worker(settings)
    with database_url(settings) as dsn:
        if args.command == "apikey":
            return run_apikey(args, dsn)
        if args.command == "migrate":
            applied = uvloop.run(migrate(dsn))
            print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
        else:
            uvloop.run(serve(settings, dsn))
    return 0

