"""REST handlers, one module per resource; :func:`register` puts them on the router."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.caching import LIVE, SHARED

if TYPE_CHECKING:
    from server.app import App


def register(app: App) -> None:
    # Imported here, not at the top: modules the handlers import (server.access) import
    # helpers of this package, which must not pull every handler in with them.
    from server.handlers import health, jobs, media, metadata, metrics, openapi, projects, session, static, tus
    from server.ws import endpoint

    add = app.router.add
    # Every other route answers per owner (the default policy); "/" too, as it may set
    # the session cookie.
    add("GET", "/", static.index)
    add("GET", "/static/{file}", static.static_file, cache=SHARED)
    add("GET", "/static/{dir}/{file}", static.static_file, cache=SHARED)
    add("GET", "/healthz", health.healthz, cache=LIVE)
    add("GET", "/readyz", health.readyz, cache=LIVE)
    add("GET", "/api/openapi.json", openapi.openapi_json, cache=SHARED)

    add("POST", "/api/projects", projects.create_project, rate_limited=True)
    add("GET", "/api/projects", projects.list_projects)
    add("GET", "/api/projects/{id:int}", projects.get_project)
    add("PUT", "/api/projects/{id:int}", projects.update_project, rate_limited=True)
    add("DELETE", "/api/projects/{id:int}", projects.delete_project, rate_limited=True)

    media.install_media_pool(app, size=app.settings.media_workers, warm=app.settings.workers > 0)
    media.register_media_routes(app)
    tus.install_tus(app, ttl=app.settings.tus_ttl)
    session.register_session_routes(app)
    metadata.register_metadata_routes(app)
    metrics.register_metrics_routes(app)
    # The hub first: the jobs hooks start after it and stop before it.
    app.hub = endpoint.install(app)
    jobs.install(app, app.hub)
