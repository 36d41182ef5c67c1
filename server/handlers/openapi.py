"""``GET /api/openapi.json``: the OpenAPI document of the routes the app is served with."""

from __future__ import annotations

import weakref

from server import apidoc
from server.app import App
from server.http.request import Request
from server.http.response import Response, encode_json, raw_json_response

_encoded: weakref.WeakKeyDictionary[App, bytes] = weakref.WeakKeyDictionary()
"""Each app's document, encoded once: its route table is fixed for its life."""


async def openapi_json(request: Request) -> Response:
    app: App = request.app
    encoded = _encoded.get(app)
    if encoded is None:
        encoded = _encoded[app] = encode_json(apidoc.document(app.routes))
    return raw_json_response(encoded)
