"""GET /api/openapi.json."""

from __future__ import annotations

from functools import cache

from server import openapi
from server.http.request import Request
from server.http.response import Response, encode_json, raw_json_response


@cache
def _encoded() -> bytes:
    return encode_json(openapi.document())


async def openapi_json(request: Request) -> Response:
    return raw_json_response(_encoded())
