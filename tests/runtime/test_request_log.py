"""The request log switch: on by default, off for one stub (`log_requests: false`) or for all."""

from __future__ import annotations

import asyncio
import urllib.request
from typing import Any

import pytest

from sandbox.api import load
from sandbox.runtime.events import Event, LogLine
from sandbox.runtime.launch import REQUEST_LOG_ENV, request_log_default
from sandbox.runtime.sandbox import Sandbox


def _profile(addresses: list[Any], quiet: dict[str, Any]) -> dict[str, Any]:
    route = [{"path": "/", "response": {"body": "ok"}}]
    return {
        "name": "request-log",
        "services": {
            "loud": {"kind": "http", "address": str(addresses[0]), "routes": route},
            "quiet": {"kind": "http", "address": str(addresses[1]), "routes": route, **quiet},
        },
    }


def _get(url: str) -> None:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.read() == b"ok"


async def _request_lines(profile: dict[str, Any], **options: Any) -> dict[str, list[str]]:
    """GET / on each stub; the request lines each logged (emitted before the answer goes)."""
    seen: list[LogLine] = []

    def collect(event: Event) -> None:
        if isinstance(event, LogLine):
            seen.append(event)

    async with Sandbox(load(profile), emit=collect, **options) as sb:
        for name in ("loud", "quiet"):
            await asyncio.to_thread(_get, sb.url(name) + "/")
    return {
        name: [e.text for e in seen if e.service == name and e.text.startswith("GET /")]
        for name in ("loud", "quiet")
    }


async def test_every_request_is_logged_by_default(spare_loopback: Any) -> None:
    lines = await _request_lines(_profile(spare_loopback(2), {}))
    assert len(lines["loud"]) == 1
    assert lines["loud"][0].startswith("GET / 200 ")
    assert len(lines["quiet"]) == 1


async def test_log_requests_false_silences_that_stub_only(spare_loopback: Any) -> None:
    lines = await _request_lines(_profile(spare_loopback(2), {"log_requests": False}))
    assert len(lines["loud"]) == 1
    assert lines["quiet"] == []


async def test_request_log_false_silences_every_stub(spare_loopback: Any) -> None:
    lines = await _request_lines(_profile(spare_loopback(2), {}), request_log=False)
    assert lines == {"loud": [], "quiet": []}


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, True), ("1", True), ("yes", True), ("0", False), ("off", False), (" False ", False)],
)
def test_the_environment_switch(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: bool
) -> None:
    if value is None:
        monkeypatch.delenv(REQUEST_LOG_ENV, raising=False)
    else:
        monkeypatch.setenv(REQUEST_LOG_ENV, value)
    assert request_log_default() is expected
