"""Owner ids: the text every owned row carries in its ``owner`` column.

Three kinds, so that an id says where it came from and no two kinds can collide:

- ``local``: the single user of open mode (sql/004_owners.sql gives it everything that
  existed before owners did);
- ``tenant:<name>``: an API key's tenant, ``<name>`` of ``[A-Za-z0-9._-]``;
- ``session:<hash>``: a browser session. The session id is the cookie, a credential, so
  the owner id is a hash of it: rows, logs and bus messages never hold the credential.

Owner ids never hold a line feed; the job event and bus wire formats rely on it.
"""

from __future__ import annotations

import hashlib
import re

from core.errors import ValidationError

LOCAL = "local"
TENANT_PREFIX = "tenant:"
SESSION_PREFIX = "session:"
TENANT_MAX = 64
_TENANT = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{TENANT_MAX - 1}}}")


def tenant(name: str) -> str:
    """The owner id of tenant ``name``; ValidationError when the name is not a valid one."""
    if not _TENANT.fullmatch(name):
        raise ValidationError(f"A tenant name is 1 to {TENANT_MAX} of A-Z a-z 0-9 . _ - "
                              f"starting with a letter or digit (got {name!r})", "tenant")
    return TENANT_PREFIX + name


def session(session_id: str) -> str:
    """The owner id of the browser session ``session_id`` (a hash: see the module docstring)."""
    return SESSION_PREFIX + hashlib.sha256(session_id.encode()).hexdigest()[:32]
