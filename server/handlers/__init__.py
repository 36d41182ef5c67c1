"""REST handlers, one module per resource; :func:`register` puts them on the router."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.handlers import health, openapi, projects

if TYPE_CHECKING:
    from server.app import App


def register(app: App) -> None:
    add = app.router.add
    add("GET", "/healthz", health.healthz)
    add("GET", "/readyz", health.readyz)
    add("GET", "/api/openapi.json", openapi.openapi_json)

    add("POST", "/api/projects", projects.create_project, rate_limited=True)
    add("GET", "/api/projects", projects.list_projects)
    add("GET", "/api/projects/{id:int}", projects.get_project)
    add("PUT", "/api/projects/{id:int}", projects.update_project, rate_limited=True)
    add("DELETE", "/api/projects/{id:int}", projects.delete_project, rate_limited=True)
