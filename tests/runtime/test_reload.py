"""Reload: a profile edit swaps a running stub's routes while its socket stays bound."""

from __future__ import annotations

import asyncio
import http.client
import os
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sandbox.api import run, start
from sandbox.errors import ProfileError, ReloadRefused, SandboxError, UsageError
from sandbox.runtime.reload import changes, reload_running, request_reload
from tests.helpers import until as _until

LOOP_LIMIT = 3000  # requests the client loop makes at most
LOOP_SECONDS = 20.0  # and for how long at most


def _write(path: Path, address: str, body: str, extra: str = "") -> None:
    path.write_text(
        textwrap.dedent(
            f"""\
            name: reloading
            services:
              api:
                kind: http
                address: {address}
                port: auto
                routes:
                  - path: /v
                    response: {{body: "{body}"}}
              db:
                kind: tcp
                address: {address}
                port: auto
                tcp:
                  rules: [{{expect: PING, send: "+{body.upper()}\\r\\n"}}]
            """
        )
        + extra
    )


class _Loop(threading.Thread):
    """A client asking GET /v again and again, on new and kept-alive connections alike,
    recording every answer and every error, until told to stop (or its bounds are hit)."""

    def __init__(self, address: str, port: int) -> None:
        super().__init__(daemon=True)
        self.address, self.port = address, port
        self.answers: list[str] = []
        self.errors: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + LOOP_SECONDS
        kept: http.client.HTTPConnection | None = None
        for n in range(LOOP_LIMIT):
            if self.halt.is_set() or time.monotonic() > deadline:
                break
            fresh = n % 2 == 0
            conn = http.client.HTTPConnection(self.address, self.port, timeout=5)
            if not fresh:
                kept = kept or http.client.HTTPConnection(self.address, self.port, timeout=5)
                conn = kept
            try:
                conn.request("GET", "/v")
                self.answers.append(conn.getresponse().read().decode())
            except OSError as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            finally:
                if fresh:
                    conn.close()
        if kept is not None:
            kept.close()


async def test_reload_swaps_routes_with_no_refused_or_reset_connection(
    spare_loopback: Any, tmp_path: Path
) -> None:
    address = str(spare_loopback(1)[0])
    profile = tmp_path / "p.yaml"
    _write(profile, address, "one")
    async with start(profile, state_root=tmp_path / "state") as sb:
        folder = tmp_path / "state" / sb.name
        loop = _Loop(address, sb.port("api"))
        loop.start()
        try:
            await _until(lambda: len(loop.answers) > 50, "answers before the reload")
            _write(profile, address, "two")
            report = await asyncio.to_thread(request_reload, folder, None)
            after = len(loop.answers)
            await _until(lambda: len(loop.answers) > after + 50, "answers after the reload")
        finally:
            loop.halt.set()
            await asyncio.to_thread(loop.join, 30)
        assert report.reloaded == ["api", "db"]
        assert loop.errors == []
        assert loop.answers[0] == "one"
        # At most one request was in flight while the swap happened (the loop is serial).
        assert set(loop.answers[after + 1 :]) == {"two"}
        # The TCP stub took its new rules too.
        reader, writer = await asyncio.open_connection(address, sb.port("db"))
        writer.write(b"PING")
        assert await asyncio.wait_for(reader.readline(), 5) == b"+TWO\r\n"
        writer.close()


async def test_an_invalid_edit_is_refused_and_the_routes_are_kept(
    spare_loopback: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOT_SET_X", raising=False)
    address = str(spare_loopback(1)[0])
    profile = tmp_path / "p.yaml"
    _write(profile, address, "one")
    async with start(profile, state_root=tmp_path / "state") as sb:
        folder = tmp_path / "state" / sb.name
        _write(profile, address, "two", extra="    nonsense: 1\n")
        with pytest.raises(ProfileError) as caught:
            await asyncio.to_thread(request_reload, folder, None)
        assert caught.value.exit_code == 3
        assert caught.value.problems[0].startswith(f"{profile}:16:5 services.db.nonsense")
        # A template that does not compile is refused too, with its place in the file.
        _write(profile, address, "{{ nope(")
        with pytest.raises(ProfileError) as bad:
            await asyncio.to_thread(request_reload, folder, None)
        assert "p.yaml:9:26 services.api.routes.0.response.body" in bad.value.problems[0]
        # And a stub that cannot be built (exit 3, naming the field): nothing is swapped,
        # db (changed too) keeps its old rules.
        _write(profile, address, "two")
        text = profile.read_text().replace("kind: http", "kind: http\n    pass_env: [NOT_SET_X]")
        profile.write_text(text)
        with pytest.raises(SandboxError, match="pass_env names NOT_SET_X") as unbuilt:
            await asyncio.to_thread(request_reload, folder, None)
        assert unbuilt.value.exit_code == 3
        reader, writer = await asyncio.open_connection(address, sb.port("db"))
        writer.write(b"PING")
        assert await asyncio.wait_for(reader.readline(), 5) == b"+ONE\r\n"
        writer.close()
        body = await asyncio.to_thread(_get, address, sb.port("api"))
        assert body == "one"


async def test_a_change_that_needs_a_rebind_is_refused_by_name(
    spare_loopback: Any, tmp_path: Path
) -> None:
    address, other = (str(a) for a in spare_loopback(2))
    profile = tmp_path / "p.yaml"
    _write(profile, address, "one")
    async with start(profile, state_root=tmp_path / "state") as sb:
        folder = tmp_path / "state" / sb.name
        _write(profile, other, "two")
        with pytest.raises(ReloadRefused) as caught:
            await sb.reload()
        assert f"api.address changed from '{address}' to '{other}'" in caught.value.message
        assert f"db.address changed from '{address}' to '{other}'" in caught.value.message
        # Through the channel: the same refusal, exit 2.
        with pytest.raises(Exception, match=r"api\.address changed") as through:
            await asyncio.to_thread(request_reload, folder, None)
        assert int(getattr(through.value, "exit_code", 0)) == 2
        assert await asyncio.to_thread(_get, address, sb.port("api")) == "one"


async def test_reload_of_one_service_leaves_the_others(spare_loopback: Any, tmp_path: Path) -> None:
    address = str(spare_loopback(1)[0])
    profile = tmp_path / "p.yaml"
    _write(profile, address, "one")
    async with start(profile, state_root=tmp_path / "state") as sb:
        _write(profile, address, "two")
        report = await sb.reload("api")
        assert (report.reloaded, report.unchanged) == (["api"], [])
        assert await asyncio.to_thread(_get, address, sb.port("api")) == "two"
        reader, writer = await asyncio.open_connection(address, sb.port("db"))
        writer.write(b"PING")
        assert await asyncio.wait_for(reader.readline(), 5) == b"+ONE\r\n"
        writer.close()


def _get(address: str, port: int) -> str:
    conn = http.client.HTTPConnection(address, port, timeout=5)
    try:
        conn.request("GET", "/v")
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def test_changes_yields_when_the_file_is_modified(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("a")
    ticks: list[float] = []

    def tick(interval: float) -> None:
        ticks.append(interval)
        if len(ticks) == 3:
            path.write_text("b")
            os.utime(path, ns=(1, 10**18))  # a different mtime even on a coarse clock
        if len(ticks) == 4:
            path.unlink()  # an editor mid-save: no change reported
        if len(ticks) == 6:
            path.write_text("c")
            os.utime(path, ns=(1, 2 * 10**18))
        assert len(ticks) < 10, "no change was seen"

    seen = changes(path, interval=0.25, sleep=tick)
    next(seen)
    assert len(ticks) == 3
    assert set(ticks) == {0.25}
    next(seen)
    assert len(ticks) == 6


async def test_reload_running_finds_the_sandbox_by_name(
    spare_loopback: Any, tmp_path: Path
) -> None:
    address = str(spare_loopback(1)[0])
    profile = tmp_path / "p.yaml"
    _write(profile, address, "one")
    root = tmp_path / "state"
    with pytest.raises(UsageError, match="not running"):
        reload_running(root, "reloading", None)
    async with start(profile, state_root=root) as sb:
        with pytest.raises(UsageError, match="no service"):
            await asyncio.to_thread(reload_running, root, "reloading", "nope")
        _write(profile, address, "two")
        report = await asyncio.to_thread(reload_running, root, "reloading", "api")
        assert report.reloaded == ["api"]
        assert await asyncio.to_thread(_get, address, sb.port("api")) == "two"


def test_the_sync_api_reloads_too(spare_loopback: Any, tmp_path: Path) -> None:
    address = str(spare_loopback(1)[0])
    profile = tmp_path / "p.yaml"
    _write(profile, address, "one")
    with run(profile) as sb:
        assert sb.ca_bundle is None
        _write(profile, address, "two")
        assert sb.reload().reloaded == ["api", "db"]
        assert _get(address, sb.port("api")) == "two"
