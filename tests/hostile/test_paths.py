"""Path traversal wherever the API takes a file name: nothing outside MEDIA_DIR is read or written.

Every spelling of "somewhere else" (``..`` raw, percent-encoded, double-encoded, with
backslashes, overlong UTF-8, Unicode look-alike dots, absolute paths, NUL bytes, names
longer than a file name may be) and every symlink planted in MEDIA_DIR (to
``/etc/passwd``, to a secret, to a real video outside) is tried against each place a name
goes: URL paths (sent byte for byte, so no client normalises them first), JSON bodies of
the job endpoints, multipart and tus file names, and the static files. Each answers 400
or 404 and never a byte from outside; uploads with hostile names land under a server-made
name directly in MEDIA_DIR and nowhere else.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.media.pool import MediaPool
from core.uploads.resumable import clean_once
from server.handlers import static
from tests.hostile.raw import RawConnection

SECRET = "TOP-SECRET-6b1f0c"
"""In every file outside MEDIA_DIR a traversal could reach: must never appear in an answer."""
PASSWD = "root:x:0:0"
SERVER_NAME = re.compile(r"[0-9]+-[0-9a-f]{12}\.mp4")
"""What core/storage.new_filename makes of any client's name."""

TRAVERSALS = [
    "../secret.txt", "..%2fsecret.txt", "..%2Fsecret.txt", "%2e%2e%2fsecret.txt", "%2E%2E/secret.txt",
    ".%2e%2fsecret.txt", "..%5csecret.txt", "..\\secret.txt", "%2fetc%2fpasswd", "/etc/passwd",
    "..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd", "%252e%252e%252fsecret.txt", "....%2f%2fsecret.txt",
    "%c0%ae%c0%ae%c0%afsecret.txt",  # overlong UTF-8 for "../"
    "%e2%80%a4%e2%80%a4%e2%81%84secret.txt",  # one-dot leaders and a fraction slash
    "%ef%bc%8e%ef%bc%8e%ef%bc%8fsecret.txt",  # fullwidth "../"
    "secret.txt%00.mp4", "%00", "clip.mp4%00", "C:%5cWindows%5cwin.ini", "~root", "a" * 300,
    ".cache", ".uploads", ".tus", "passwd", "linked-secret.txt", "linked.mp4", "linked-dir%2fpasswd",
]
"""URL path segments: the first half encodings of "..", the last names of what is planted."""
URL_TEMPLATES = ["/videos/{}", "/api/metadata/{}", "/api/videos/{}/thumbnails", "/api/videos/{}/thumbnails.jpg",
                 "/api/videos/{}/waveform"]
BODY_NAMES = ["../secret.txt", "/etc/passwd", "..\\secret.txt", "%2e%2e%2fsecret.txt", "\uff0e\uff0e\uff0fsecret.txt",
              "\u2024\u2024/secret.txt", "sub/../clip.mp4", ".cache", "passwd", "linked-secret.txt", "linked.mp4",
              "a" * 300, "", " clip.mp4"]
"""File names as JSON strings (no URL decoding): every one is refused (400) or not found (404)."""
CLIENT_NAMES = ["../../evil.mp4", "/tmp/evil.mp4", "..\\..\\evil.mp4", "%2e%2e%2fevil.mp4", "evil\x00.mp4",
                ".evil.mp4", "evil.mp4/../../x", "\uff0e\uff0e\uff0fevil.mp4", "evil.sh"]
"""Upload file names (multipart and tus): the server keeps at most a known video extension."""


@dataclass
class Planted:
    """A server whose MEDIA_DIR holds one real video and symlinks out, with secrets around it."""

    app: Any
    port: int
    media_dir: Path
    root: Path
    """What lies outside MEDIA_DIR that a traversal could reach (the data dir and beyond)."""

    def outside(self) -> dict[str, bytes]:
        """Every file under ``root`` but outside MEDIA_DIR, with its content."""
        return {str(path): path.read_bytes() for path in self.root.rglob("*")
                if path.is_file() and not path.is_symlink() and self.media_dir not in path.parents
                and "pgdata" not in path.parts}


@pytest.fixture
async def planted(start_server, redis_url: str, shared_pool: MediaPool, clip: Path, tmp_path: Path) -> Planted:
    server = await start_server(redis_url=redis_url)
    server.app.media_pool = shared_pool
    media_dir = server.app.settings.media_path
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    shutil.copy(clip, outside / "outside.mp4")
    (media_dir.parent / "secret.txt").write_text(SECRET)  # where "../secret.txt" would land
    shutil.copy(clip, media_dir / "clip.mp4")
    (media_dir / "passwd").symlink_to("/etc/passwd")
    (media_dir / "linked-secret.txt").symlink_to(outside / "secret.txt")
    (media_dir / "linked.mp4").symlink_to(outside / "outside.mp4")
    (media_dir / "linked-dir").symlink_to(outside, target_is_directory=True)
    return Planted(server.app, server.port, media_dir, tmp_path)


@pytest.fixture
async def api(planted: Planted) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{planted.port}", timeout=30) as client:
        yield client


def assert_refused(status: int, body: bytes, what: str) -> None:
    assert status in (400, 404), f"{what}: {status} {body[:200]!r}"
    assert SECRET.encode() not in body and PASSWD.encode() not in body, what


async def test_url_paths_never_leave_the_media_dir(planted: Planted) -> None:
    before = planted.outside()
    for template in URL_TEMPLATES:
        # The control: the real video in MEDIA_DIR is served, so a 404 below is the name's doing.
        async with await RawConnection.open(planted.port) as connection:
            assert (await connection.request("GET", template.format("clip.mp4"))).status == 200, template
        for name in TRAVERSALS:
            target = template.format(name)
            # A fresh connection each: a 400 from the HTTP layer closes the one it came on.
            async with await RawConnection.open(planted.port) as connection:
                response = await connection.request("GET", target)
            assert_refused(response.status, response.body, target)
    assert planted.outside() == before
    # The video behind linked.mp4 was never probed or derived from.
    assert not any("linked" in path.name for path in (planted.media_dir / ".cache").iterdir())


async def test_a_symlink_swapped_in_for_a_cached_sprite_is_not_served(api: httpx.AsyncClient,
                                                                      planted: Planted) -> None:
    """The sprite is served from .cache by path: opened with O_NOFOLLOW, a symlink there is a 404."""
    assert (await api.get("/api/videos/clip.mp4/thumbnails.jpg")).status_code == 200
    sprite = planted.media_dir / ".cache" / "clip.mp4.filmstrip-10.jpg"
    secret = planted.root / "outside" / "new-secret.jpg"
    secret.write_text(SECRET)  # written after the video, so the cache takes the sprite for fresh
    sprite.unlink()
    sprite.symlink_to(secret)
    response = await api.get("/api/videos/clip.mp4/thumbnails.jpg")
    assert_refused(response.status_code, response.content, "symlinked sprite")


async def test_hidden_working_dirs_replaced_by_symlinks_are_not_written_through(api: httpx.AsyncClient,
                                                                                planted: Planted,
                                                                                clip: Path) -> None:
    """.uploads, .tus and .cache planted as symlinks to a directory outside: the server puts real ones back."""
    elsewhere = planted.root / "elsewhere"
    elsewhere.mkdir()
    old = elsewhere / "old-file"
    old.write_text(SECRET)
    os.utime(old, (0, 0))  # "stale" to the cleaner, were it to look there
    for hidden in (".uploads", ".tus", ".cache"):
        target = planted.media_dir / hidden
        if target.exists():
            shutil.rmtree(target)
        target.symlink_to(elsewhere, target_is_directory=True)
    await clean_once(planted.app.tus, planted.app.settings.media_path)  # the periodic cleaner, before anything repairs .uploads
    assert old.exists()
    upload = await api.post("/api/upload", files={"video": ("clip.mp4", clip.read_bytes(), "video/mp4")})
    assert upload.status_code == 201, upload.text
    created = await api.post("/api/uploads", headers={"Tus-Resumable": "1.0.0", "Upload-Length": "10"})
    assert created.status_code == 201
    assert (await api.get(f"/api/videos/{upload.json()['filename']}/waveform")).status_code == 200
    assert sorted(path.name for path in elsewhere.iterdir()) == ["old-file"]
    for hidden in (".uploads", ".tus", ".cache"):
        assert not (planted.media_dir / hidden).is_symlink(), hidden


async def test_job_bodies_take_plain_names_of_regular_files_only(api: httpx.AsyncClient) -> None:
    for name in BODY_NAMES:
        for path, body in (("/api/edit/trim", {"filename": name, "startTime": 0, "endTime": 1}),
                           ("/api/edit/split", {"filename": name, "splitTime": 1}),
                           ("/api/edit/process", {"filename": name, "edits": []})):
            response = await api.post(path, json=body)
            assert_refused(response.status_code, response.content, f"{path} {name!r}")
    accepted = await api.post("/api/edit/trim", json={"filename": "clip.mp4", "startTime": 0, "endTime": 1})
    assert accepted.status_code == 202


async def test_a_process_output_is_a_plain_name(api: httpx.AsyncClient) -> None:
    for output in ("../evil", "/tmp/evil", "a/b", "..\\evil", ".hidden", "evil\\x", "~", "x" * 101):
        response = await api.post("/api/edit/process", json={"filename": "clip.mp4", "edits": [], "output": output})
        assert response.status_code == 400 and response.json()["field"] == "output", output
    assert (await api.post("/api/edit/process", json={"filename": "clip.mp4", "edits": [],
                                                      "output": "my-cut.mp4"})).status_code == 202


async def test_a_project_naming_a_file_outside_cannot_be_processed(api: httpx.AsyncClient) -> None:
    """videoFilename is stored as any text; the render takes only a plain name of a regular file."""
    for name, status in (("../secret.txt", 400), ("/etc/passwd", 400), ("linked.mp4", 404), ("passwd", 404)):
        project = await api.post("/api/projects", json={"name": "p", "videoFilename": name, "videoUrl": "/x"})
        response = await api.post("/api/edit/process", json={"projectId": project.json()["id"]})
        assert response.status_code == status, (name, response.text)
        assert_refused(response.status_code, response.content, name)


def stored_where_expected(planted: Planted, filename: str, before: dict[str, bytes]) -> None:
    assert SERVER_NAME.fullmatch(filename), filename
    assert (planted.media_dir / filename).is_file() and not (planted.media_dir / filename).is_symlink()
    assert planted.outside() == before, "a file appeared outside MEDIA_DIR"


async def test_multipart_file_names_are_never_paths(api: httpx.AsyncClient, planted: Planted, clip: Path) -> None:
    data = clip.read_bytes()
    before = planted.outside()
    for client_name in CLIENT_NAMES:
        response = await api.post("/api/upload", files={"video": (client_name, data, "video/mp4")})
        assert response.status_code == 201, (client_name, response.text)
        stored_where_expected(planted, response.json()["filename"], before)


async def test_tus_file_names_are_never_paths(api: httpx.AsyncClient, planted: Planted, clip: Path) -> None:
    data = clip.read_bytes()
    before = planted.outside()
    for client_name in CLIENT_NAMES:
        metadata = "filename " + base64.b64encode(client_name.encode()).decode()
        created = await api.post("/api/uploads", headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(len(data)),
                                                           "Upload-Metadata": metadata})
        assert created.status_code == 201, (client_name, created.text)
        pending = (await api.get(created.headers["location"], headers={"Tus-Resumable": "1.0.0"})).json()
        assert pending["metadata"]["filename"] == client_name  # kept as data, never used as a path
        done = await api.patch(created.headers["location"], content=data, headers={
            "Tus-Resumable": "1.0.0", "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
        assert done.status_code == 204, (client_name, done.text)
        stored_where_expected(planted, done.headers["upload-video-filename"], before)


STATIC_TARGETS = [
    "/static/..%2f..%2fcore%2fconfig.py", "/static/..%2f..%2f..%2fcore%2fconfig.py", "/static/%2e%2e%2fapp.py",
    "/static/js/..%2f..%2fapp.py", "/static/js/%2e%2e", "/static/..%5capp.py", "/static/..\\app.py",
    "/static/%2fetc%2fpasswd", "/static//etc/passwd", "/static/index.html%00.js", "/static/%00",
    "/static/%c0%ae%c0%ae%c0%afapp.py", "/static/%ef%bc%8e%ef%bc%8e%ef%bc%8fapp.py", "/static/.hidden",
    "/static/" + "a" * 300, "/static/js/" + "\u00e9" * 200, "/static/%252e%252e%252fapp.py",
]


async def test_static_paths_never_leave_the_static_root(planted: Planted) -> None:
    for target in STATIC_TARGETS:
        async with await RawConnection.open(planted.port) as connection:
            response = await connection.request("GET", target.encode("utf-8"))
        assert response.status in (400, 404), (target, response.status)
        assert b"class Settings" not in response.body and b"def " not in response.body, target
    async with await RawConnection.open(planted.port) as connection:
        assert (await connection.request("GET", "/static/index.html")).status == 200


async def test_a_symlink_in_the_static_root_is_not_followed_out(planted: Planted, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The static root as a directory of this test's, so a symlink can be planted in it."""
    root = tmp_path / "static-root"
    (root / "js").mkdir(parents=True)
    (root / "js" / "ok.js").write_text("export {};")
    (root / "js" / "leak.js").symlink_to(planted.media_dir.parent / "secret.txt")
    (root / "inner.js").symlink_to(root / "js" / "ok.js")  # a symlink that stays inside is fine
    monkeypatch.setattr(static, "STATIC_ROOT", root.resolve())
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{planted.port}") as client:
        assert (await client.get("/static/js/ok.js")).status_code == 200
        assert (await client.get("/static/inner.js")).status_code == 200
        leak = await client.get("/static/js/leak.js")
        assert_refused(leak.status_code, leak.content, "static symlink")
