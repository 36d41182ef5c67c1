"""The media volume fills up while a worker writes a job's output.

MEDIA_DIR is a tmpfs of its own, sized to hold the source and a few KiB more: every
output runs out of space part way, where the kernel says ENOSPC, as on a real full disk.
(Mounting needs root, as CI has; there is no honest ENOSPC without a filesystem that is
really full, so the test fails rather than skips when it cannot mount.) Each operation's
job must fail with an error that says so, and leave nothing behind; once there is space
again, the same worker runs the next job.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.jobs.conftest import FAST, finished_over_http, media_files

HEADROOM = 16 * 1024
"""Free bytes once the source is in: less than any output of the 2 s clip needs."""


def mount_tmpfs(path: Path, size: int) -> None:
    command = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({done.stderr.strip()}): the disk-full test needs root "
                    "(CAP_SYS_ADMIN) to mount a small filesystem")


@pytest.fixture
def full_media_dir(tmp_path: Path, clips: Path) -> Iterator[Path]:
    """A MEDIA_DIR holding ``clip.mp4`` with ``HEADROOM`` bytes to spare; unmounted afterwards."""
    path = tmp_path / "small-media"
    path.mkdir()
    source = clips / "clip.mp4"
    page = 4096
    mount_tmpfs(path, -(-source.stat().st_size // page) * page + HEADROOM)
    try:
        shutil.copy(source, path / "clip.mp4")
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


async def test_a_full_disk_fails_the_job_clearly_and_leaves_no_file(start_server: Any,
                                                                    full_media_dir: Path) -> None:
    server = await start_server(media_dir=full_media_dir, jobs=FAST, workers=1)
    requests = [("trim", {"filename": "clip.mp4", "startTime": 0.2, "endTime": 1.8}, "{}.mp4"),
                ("split", {"filename": "clip.mp4", "splitTime": 1.0}, "{}-part1.mp4"),
                ("process", {"filename": "clip.mp4", "edits": [{"type": "volume", "gain": 0.5}]}, "{}.mp4")]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as http:
        for operation, body, output in requests:
            accepted = await http.post(f"/api/edit/{operation}", json=body)
            assert accepted.status_code == 202, accepted.text
            operation_id = accepted.json()["operationId"]
            job = await finished_over_http(http, operation_id)
            assert job["status"] == "failed" and job["attempts"] == 1, job
            assert job["error"] == f"Not enough disk space to write {output.format(operation_id)}", job
            # Hidden temporaries included: the partial output went with the failure.
            assert media_files(full_media_dir) == {"clip.mp4"}, operation

        subprocess.run(["mount", "-o", "remount,size=64m", str(full_media_dir)], check=True)
        accepted = await http.post("/api/edit/trim", json=requests[0][1])
        job = await finished_over_http(http, accepted.json()["operationId"])
        assert job["status"] == "done", job
        assert media_files(full_media_dir) == {"clip.mp4", job["result"]["filename"]}


async def test_an_upload_that_fills_the_disk_is_a_507_and_leaves_nothing(
        start_server: Any, full_media_dir: Path, clips: Path) -> None:
    server = await start_server(media_dir=full_media_dir)
    video = (clips / "clip.mp4").read_bytes()
    assert len(video) > HEADROOM
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as http:
        response = await http.post("/api/upload", files={"video": ("big.mp4", video, "video/mp4")})
        assert response.status_code == 507, response.text
        assert response.json()["error"] == "Not enough disk space to store the upload"
        left = sorted(str(path.relative_to(full_media_dir)) for path in full_media_dir.rglob("*")
                      if path.is_file())
        assert left == ["clip.mp4"]  # the temporary upload went with the failure

        tus = {"tus-resumable": "1.0.0"}
        created = await http.post("/api/uploads/", headers={**tus, "upload-length": str(len(video))})
        location = created.headers["location"]
        patch = {**tus, "upload-offset": "0", "content-type": "application/offset+octet-stream"}
        refused = await http.patch(location, headers=patch, content=video)
        assert refused.status_code == 507, refused.text
        assert (await http.head(location, headers=tus)).headers["upload-offset"] == "0"  # resumable, from 0


async def test_a_tus_upload_created_on_a_full_disk_is_a_507_and_leaves_nothing(
        start_server: Any, full_media_dir: Path) -> None:
    server = await start_server(media_dir=full_media_dir)
    filler = full_media_dir / "filler"
    with filler.open("wb", buffering=0) as out, pytest.raises(OSError):  # all the headroom taken
        while True:
            out.write(b"x" * 4096)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as http:
        tus = {"tus-resumable": "1.0.0", "upload-length": "1000"}
        refused = await http.post("/api/uploads/", headers=tus)
        assert refused.status_code == 507, refused.text
        assert refused.json()["error"] == "Not enough disk space to store the upload"
        assert list((full_media_dir / ".tus").iterdir()) == []  # no lock, no part, no hidden temporary
        filler.unlink()
        assert (await http.post("/api/uploads/", headers=tus)).status_code == 201
