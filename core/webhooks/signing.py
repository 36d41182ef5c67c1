"""Secrets and signatures of the Standard Webhooks specification (standardwebhooks.com).

A secret is ``whsec_`` + base64 of 32 random bytes; the HMAC key is the decoded bytes. A
message is signed as ``v1,`` + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}")), where
``timestamp`` is the attempt's unix time in seconds (receivers refuse stale ones, so each
attempt is signed anew) and ``body`` the exact bytes sent. During a rotation both the new
and the old secret sign, space-separated in one ``webhook-signature`` header: a receiver
holding either verifies the message, so it may switch secrets at any moment of the overlap.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets as random
from collections.abc import Sequence

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(random.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def sign(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: one ``v1,<base64>`` per secret, space-separated."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join("v1," + base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest()).decode()
                    for secret in secrets)
