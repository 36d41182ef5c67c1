"""Safe names and atomic commits in the media directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import storage
from core.errors import NotFound


@pytest.mark.parametrize("name", ["a.mp4", "1700000000000-abcdef012345.mp4", "A_b-C.1.webm", "-x", "x" * 255])
def test_safe_names(name: str) -> None:
    assert storage.is_safe_name(name)


@pytest.mark.parametrize("name", ["", ".", "..", ".hidden", "../a.mp4", "a/b.mp4", "/etc/passwd", "a\\b",
                                  "a b.mp4", "a\x00.mp4", "vidéo.mp4", "x" * 256, "a.mp4\n", "%2e%2e"])
def test_unsafe_names(name: str) -> None:
    assert not storage.is_safe_name(name)


def test_media_file(tmp_path: Path) -> None:
    (tmp_path / "a.mp4").write_bytes(b"x")
    (tmp_path / "dir").mkdir()
    assert storage.media_file(tmp_path, "a.mp4") == tmp_path / "a.mp4"
    for name in ("missing.mp4", "dir", "..", "../a.mp4"):
        with pytest.raises(NotFound):
            storage.media_file(tmp_path, name)


@pytest.mark.parametrize("client, fmt, ext", [
    ("My Clip.MOV", "mov,mp4,m4a,3gp,3g2,mj2", ".mov"),
    ("clip.exe", "mov,mp4,m4a,3gp,3g2,mj2", ".mp4"),
    (None, "matroska,webm", ".mkv"),
    ("x.webm", "matroska,webm", ".webm"),
    ("../../x", "avi", ".avi"),
])
def test_video_extension(client: str | None, fmt: str, ext: str) -> None:
    assert storage.video_extension(client, fmt) == ext


def test_commit_moves_under_a_new_unique_name(tmp_path: Path) -> None:
    names = set()
    for index in range(50):
        temp = storage.temp_upload_path(tmp_path)
        temp.write_bytes(b"%d" % index)
        name = storage.commit(temp, tmp_path, ".mp4")
        assert storage.is_safe_name(name) and not temp.exists()
        assert (tmp_path / name).read_bytes() == b"%d" % index
        names.add(name)
    assert len(names) == 50
    with pytest.raises(ValueError):
        storage.new_filename("/../x")


async def test_async_writer_gathers_and_hashes(tmp_path: Path) -> None:
    import hashlib

    hasher = hashlib.sha1()
    writer = await storage.AsyncFileWriter.open(tmp_path / "f", hasher=hasher)
    data = bytes(range(256)) * 9000
    for i in range(0, len(data), 1000):
        await writer.write(data[i:i + 1000])
    await writer.close()
    assert (tmp_path / "f").read_bytes() == data and hasher.digest() == hashlib.sha1(data).digest()
    assert writer.written == len(data)
