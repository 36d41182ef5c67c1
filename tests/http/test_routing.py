"""The router: static and typed routes, 404 / 405 / 400, HEAD on GET routes."""

from __future__ import annotations

import pytest

from server.http.response import HTTPError
from server.http.routing import Router


async def handler(request):  # pragma: no cover - never called
    raise AssertionError


@pytest.fixture
def router() -> Router:
    r = Router()
    r.add("GET", "/api/projects", handler)
    r.add("POST", "/api/projects", handler, body_limit=10)
    r.add("GET", "/api/projects/{id:int}", handler)
    r.add("DELETE", "/api/projects/{id:int}", handler)
    r.add("GET", "/videos/{filename}", handler)
    r.add("POST", "/api/jobs/{operationId}/cancel", handler)
    return r


def test_static_and_dynamic_matches(router):
    route, params = router.resolve("GET", "/api/projects/42")
    assert route.pattern == "/api/projects/{id:int}" and params == {"id": 42}
    route, params = router.resolve("POST", "/api/projects")
    assert route.body_limit == 10 and params == {}
    _, params = router.resolve("GET", "/videos/clip.mp4")
    assert params == {"filename": "clip.mp4"}
    _, params = router.resolve("POST", "/api/jobs/trim-abc/cancel")
    assert params == {"operationId": "trim-abc"}


def test_head_uses_the_get_route(router):
    route, _ = router.resolve("HEAD", "/api/projects")
    assert route.method == "GET"


def test_unknown_path_is_404(router):
    with pytest.raises(HTTPError) as raised:
        router.resolve("GET", "/api/projects/1/extra")
    assert raised.value.status == 404


def test_wrong_method_is_405_with_allow(router):
    with pytest.raises(HTTPError) as raised:
        router.resolve("PATCH", "/api/projects/3")
    assert raised.value.status == 405
    assert dict(raised.value.headers)["allow"] == "DELETE, GET, HEAD"


def test_non_integer_id_is_400_naming_it(router):
    with pytest.raises(HTTPError) as raised:
        router.resolve("GET", "/api/projects/abc")
    assert raised.value.status == 400 and raised.value.extra == {"field": "id"}


def test_segments_do_not_span_slashes(router):
    with pytest.raises(HTTPError) as raised:
        router.resolve("GET", "/videos/a/b.mp4")
    assert raised.value.status == 404


def test_duplicate_static_route_is_refused(router):
    with pytest.raises(ValueError):
        router.add("GET", "/api/projects", handler)
