"""/api/openapi.json is OpenAPI 3.1 and describes exactly the routes the server has."""

from __future__ import annotations

import re

import httpx


async def test_every_route_is_described_and_nothing_else(server):
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        document = (await client.get("/api/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    described = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    routed = {(re.sub(r"\{(\w+):\w+\}", r"{\1}", r.pattern), r.method) for r in server.router.routes
              if not r.pattern.startswith("/api/_bench")}
    assert described == routed


async def test_every_reference_resolves(server):
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        document = (await client.get("/api/openapi.json")).json()
    refs = set(re.findall(r'"\$ref":\s*"#/components/schemas/(\w+)"', str(document).replace("'", '"')))
    assert refs and refs <= set(document["components"]["schemas"])
