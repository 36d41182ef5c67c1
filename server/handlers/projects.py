"""REST handlers for /api/projects (docs/CONTRACT.md section 2, Projects)."""

from __future__ import annotations

from core.errors import PreconditionFailed
from core.projects import Document, NewProject, ProjectChanges, page_limit
from server.http.files import etag_matches
from server.http.request import Request
from server.http.response import Response, encode_json, raw_json_response
from server.policy.access import owner_of
from server.policy.client import remember_project
from server.policy.idempotency import REPLAYED, idempotency_key


def etag(version: int) -> str:
    return f'"{version}"'


def _document(doc: Document, status: int = 200) -> Response:
    return raw_json_response(doc.json, status, [("etag", etag(doc.version))])


def parse_if_match(value: str | None) -> int | None:
    """The version an ``If-Match`` names; None when absent or ``*`` (unconditional).

    An entity tag this server could not have issued can match no version; it is mapped
    to 0, which no row has, so the update answers 412 as RFC 9110 says.
    """
    if value is None or value.strip() == "*":
        return None
    tag = value.split(",")[0].strip()
    if tag.startswith("W/"):
        tag = tag[2:]
    tag = tag.strip('"')
    return int(tag) if tag.isdigit() and len(tag) < 10 else 0


async def create_project(request: Request) -> Response:
    project = NewProject.from_body(await request.json())
    doc, created = await request.app.projects.create(await owner_of(request), project, idempotency_key(request))
    await remember_project(request, doc.json)
    response = _document(doc, 201)
    if not created:
        response.headers.append(REPLAYED)
    return response


async def list_projects(request: Request) -> Response:
    limit = page_limit(request.query.get("limit"))
    cursor = request.query.get("cursor") or None
    page = await request.app.projects.page(await owner_of(request), limit, cursor)
    headers = [("x-next-cursor", page.next_cursor)] if page.next_cursor else []
    return raw_json_response(page.json, 200, headers)


async def get_project(request: Request) -> Response:
    doc = await request.app.projects.get(await owner_of(request), request.path_params["id"])
    await remember_project(request, doc.json)
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and etag_matches(if_none_match, etag(doc.version)):
        # The client's copy is this version (RFC 9110 section 13.1.2): the ETag, no body.
        return Response(304, [("etag", etag(doc.version))])
    return _document(doc)


async def update_project(request: Request) -> Response:
    changes = ProjectChanges.from_body(await request.json())
    version = parse_if_match(request.headers.get("if-match"))
    try:
        doc = await request.app.projects.update(await owner_of(request), request.path_params["id"], changes,
                                                version)
    except PreconditionFailed as stale:
        return _precondition_failed(stale)
    await remember_project(request, doc.json)
    return _document(doc)


def _precondition_failed(error: PreconditionFailed) -> Response:
    """412: the contract's error sentence merged into the current row, with its ETag."""
    head = encode_json({"error": str(error)})
    body = head[:-1] + b"," + error.current[1:]
    return raw_json_response(body, 412, [("etag", etag(error.version))])


async def delete_project(request: Request) -> Response:
    await request.app.projects.delete(await owner_of(request), request.path_params["id"])
    return Response(204)


