"""REST handlers for /api/webhooks: an owner's webhook endpoints and their deliveries.

The endpoints, their secrets and the delivery log are core/webhooks/store.py's; the sender
that POSTs the events is an app service (server/app.py). The store checks the bodies (the
NEW_WEBHOOK and ROTATION tables: 400 naming the field) and vets the URL against SSRF, and
answers for one owner only: another owner's endpoint or delivery is a 404, the same as one
that does not exist.

The signing secret is in two answers only, creation and rotation, both ``Cache-Control:
no-store``: it is shown once and cannot be read back (list and get never carry it); a lost
secret is replaced by rotating.
"""

from __future__ import annotations

from typing import Any

from core.webhooks.store import WebhookStore
from server.http.request import Request
from server.http.response import Response, json_response
from server.policy.access import owner_of

NO_STORE = ("cache-control", "no-store")


def _store(request: Request) -> WebhookStore:
    return request.app.webhooks


async def create_webhook(request: Request) -> Response:
    endpoint, secret = await _store(request).create(await owner_of(request), await request.json())
    return json_response({**endpoint.to_api(), "secret": secret}, 201, [NO_STORE])


async def list_webhooks(request: Request) -> Response:
    return json_response([endpoint.to_api() for endpoint in await _store(request).list(await owner_of(request))])


async def get_webhook(request: Request) -> Response:
    return json_response((await _store(request).get(await owner_of(request), request.path_params["id"])).to_api())


async def delete_webhook(request: Request) -> Response:
    await _store(request).delete(await owner_of(request), request.path_params["id"])
    return Response(204)


async def rotate_secret(request: Request) -> Response:
    # The body is optional (every field of ROTATION is): a bare POST rotates with the default overlap.
    body: Any = await request.json() if request.content_length != 0 else {}
    secret, previous_expires_at = await _store(request).rotate(await owner_of(request), request.path_params["id"],
                                                               body)
    return json_response({"secret": secret, "previousSecretExpiresAt": previous_expires_at}, 200, [NO_STORE])


async def list_deliveries(request: Request) -> Response:
    deliveries = await _store(request).deliveries(await owner_of(request), request.path_params["id"])
    return json_response([delivery.to_api() for delivery in deliveries])


async def redeliver(request: Request) -> Response:
    delivery = await _store(request).redeliver(await owner_of(request), request.path_params["id"],
                                               request.path_params["deliveryId"])
    return json_response(delivery.to_api(), 202)
