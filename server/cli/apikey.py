"""``nve apikey create|list|revoke``: manage the API keys of embedding backends.

A key is printed once, by ``create``; only its hash is stored (core/access/apikeys.py).
The commands talk to the same PostgreSQL as the servers (migrating it first, so they
work on a database no server has started on yet). Revocation holds on every node at
the next request: keys are checked against the table, not cached.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import uvloop

from core.access.apikeys import ApiKey, ApiKeyStore
from core.db.migrations import migrate
from core.db.pool import Database
from core.errors import ValidationError


def add_apikey_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = subparsers.add_parser("apikey", help="create, list or revoke API keys")
    command.add_argument("--data-dir", type=Path, help="data directory (env NVE_DATA_DIR)")
    actions = command.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="make a key for a tenant and print it (shown only once)")
    create.add_argument("tenant", help="the tenant the key acts for: 1-64 of A-Z a-z 0-9 . _ -")
    create.add_argument("--label", help="a note to tell keys apart (who or what uses it)")
    actions.add_parser("list", help="list keys (prefix, tenant, label, created, revoked)")
    revoke = actions.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("id", type=int)


def run_apikey(args: argparse.Namespace, dsn: str) -> int:
    return uvloop.run(_run(args, dsn))


async def _run(args: argparse.Namespace, dsn: str) -> int:
    await migrate(dsn)
    db = Database(dsn, max_size=1)
    await db.open()
    try:
        keys = ApiKeyStore(db)
        if args.action == "create":
            try:
                key, record = await keys.create(args.tenant, args.label)
            except ValidationError as error:
                print(f"nve apikey: {error}", file=sys.stderr)
                return 2
            print(key)
            print(f"created key {record.id} ({record.prefix}...) for tenant {record.tenant}; "
                  "store it now: it is not shown again", file=sys.stderr)
        elif args.action == "list":
            for record in await keys.list():
                print(json.dumps(_describe(record)))
        else:
            revoked = await keys.revoke(args.id)
            if revoked is None:
                print(f"nve apikey: no active key with id {args.id}", file=sys.stderr)
                return 1
            print(f"revoked key {revoked.id} ({revoked.prefix}...) of tenant {revoked.tenant}")
    finally:
        await db.close()
    return 0


def _describe(record: ApiKey) -> dict[str, object]:
    return {"id": record.id, "tenant": record.tenant, "label": record.label, "prefix": record.prefix,
            "createdAt": record.created_at.isoformat(),
            "revokedAt": record.revoked_at.isoformat() if record.revoked_at else None}
