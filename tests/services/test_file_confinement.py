"""`file:` answers: read by descriptor inside the profile's folder, racing links never leak,
and a FIFO or device answers an error at once instead of blocking the shared thread pool."""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.services.http import create_app
from sandbox.services.http_answers import FileRefused, read_confined
from tests.services.helpers import context, http_spec

SECRET = b"outside secret"


@pytest.fixture
def swapping(tmp_path: Path) -> Iterator[Path]:
    """A profile folder whose data.txt keeps turning into a link to a file outside it."""
    profile = tmp_path / "profile"
    profile.mkdir()
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (profile / "real.txt").write_bytes(b"inside")
    (profile / "data.txt").write_bytes(b"inside")
    stop = threading.Event()

    def swap() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            tmp = profile / f".swap{n % 2}"
            if n % 2:
                tmp.symlink_to(tmp_path / "secret.txt")
            else:
                os.link(profile / "real.txt", tmp)
            os.replace(tmp, profile / "data.txt")

    thread = threading.Thread(target=swap, daemon=True)
    thread.start()
    try:
        yield profile
    finally:
        stop.set()
        thread.join(timeout=10)


def test_a_link_swapped_in_during_reads_leaks_nothing(swapping: Path) -> None:
    answers: list[bytes | str] = []
    deadline = time.monotonic() + 20
    # At least 3000 reads, and on until both sides of the race were seen (the swapping
    # thread needs the GIL now and then).
    while len(answers) < 3000 or not _both(answers):
        assert time.monotonic() < deadline, f"the race never ran both ways: {set(answers)}"
        try:
            answers.append(read_confined(swapping, "data.txt"))
        except FileRefused as exc:
            answers.append(str(exc))
    assert SECRET not in answers


def _both(answers: list[bytes | str]) -> bool:
    return b"inside" in answers and any("symbolic link" in str(a) for a in answers)


def test_a_folder_link_inside_the_path_is_not_followed(tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.txt").write_text("x")
    profile.mkdir()
    (profile / "dir").symlink_to(tmp_path / "real")
    with pytest.raises(FileRefused, match="symbolic link 'dir'"):
        read_confined(profile, "dir/a.txt")
    with pytest.raises(FileRefused, match="outside"):
        read_confined(profile, "sub/../../real/a.txt")


async def test_a_fifo_answers_an_error_at_once(aiohttp_client: Any, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.txt")
    spec = http_spec({"path": "/", "response": {"file": "pipe.txt"}})
    client = await aiohttp_client(create_app(spec, context("web", profile_dir=tmp_path)))
    t0 = time.perf_counter()
    resp = await client.get("/")
    assert time.perf_counter() - t0 < 1.0
    assert resp.status == 500
    assert "not a regular file" in (await resp.json())["detail"]


def test_a_device_is_refused(tmp_path: Path) -> None:
    (tmp_path / "zero").symlink_to("/dev/zero")
    with pytest.raises(FileRefused, match="symbolic link"):
        read_confined(tmp_path, "zero")
    if os.getuid() != 0:
        pytest.skip("only root may create a device node")
    os.mknod(tmp_path / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    with pytest.raises(FileRefused, match="not a regular file"):
        read_confined(tmp_path, "null")
