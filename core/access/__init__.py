"""Who owns what: owner ids, API keys, WebSocket tokens, and the owners of media files.

Nothing here knows about HTTP: server/policy/access.py decides which owner a request acts for
and hands the id to these stores and to the project and job queries, which all filter on it.
"""

from __future__ import annotations

import hashlib


def digest(secret: str) -> bytes:
    """What is stored of a random credential (an API key, a WebSocket token): its SHA-256
    (full-entropy secrets need no slow hash; see core/access/apikeys.py)."""
    return hashlib.sha256(secret.encode()).digest()
