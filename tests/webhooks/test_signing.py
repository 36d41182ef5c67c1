"""Signatures as receivers check them: with the published ``standardwebhooks`` package."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from core.webhooks.signing import new_secret, sign


def _headers(msg_id: str, timestamp: int, signature: str) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


def test_a_secret_is_32_random_bytes_in_whsec_form():
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert new_secret() != secret


def test_the_signature_verifies_with_standardwebhooks():
    secret, body, now = new_secret(), b'{"type":"job.completed","data":{"x":"\xc3\xa9"}}', int(time.time())
    headers = _headers("msg_abc", now, sign([secret], "msg_abc", now, body))
    assert Webhook(secret).verify(body, headers) == {"type": "job.completed", "data": {"x": "é"}}


def test_a_changed_body_id_or_secret_does_not_verify():
    secret, body, now = new_secret(), b'{"a":1}', int(time.time())
    signature = sign([secret], "msg_1", now, body)
    for wrong_body, wrong_headers, wrong_secret in [
            (b'{"a":2}', _headers("msg_1", now, signature), secret),
            (body, _headers("msg_2", now, signature), secret),
            (body, _headers("msg_1", now + 1, signature), secret),
            (body, _headers("msg_1", now, signature), new_secret())]:
        with pytest.raises(WebhookVerificationError):
            Webhook(wrong_secret).verify(wrong_body, wrong_headers)


def test_during_a_rotation_either_secret_verifies():
    new, old, body, now = new_secret(), new_secret(), b"{}", int(time.time())
    signature = sign([new, old], "msg_r", now, body)
    assert len(signature.split(" ")) == 2
    for secret in (new, old):
        assert Webhook(secret).verify(body, _headers("msg_r", now, signature)) == {}
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, _headers("msg_r", now, signature))
