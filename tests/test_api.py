"""The Python API: async and sync use, the injectable stop trigger, and all-or-nothing."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import sandbox
from sandbox.errors import ConflictError, NotReadyError
from sandbox.runtime.events import Event, ServiceReady, ServiceStopped
from tests.helpers import listening


def _profile(addresses: list[ipaddress.IPv4Address], **extra: Any) -> dict[str, Any]:
    web, api = (str(a) for a in addresses)
    return {
        "name": "api-test",
        "services": {
            "web": {"kind": "http", "address": web, "depends_on": ["api"],
                    "routes": [{"path": "/", "response": {"body": "{{ services.api.url }}"}}]},
            "api": {"kind": "tcp", "address": api, **extra},
        },
    }  # fmt: skip


async def test_async_context_manager(spare_loopback: Any) -> None:
    addresses = spare_loopback(2)
    async with sandbox.start(_profile(addresses)) as sb:
        assert sb.address("web") == str(addresses[0])
        assert sb.port("web") in listening(sb.address("web"))
        body = await asyncio.to_thread(_get, sb.url("web") + "/")
        assert body == sb.url("api")
    assert listening(str(addresses[0])) == []
    assert listening(str(addresses[1])) == []


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def test_sync_run_from_plain_code(spare_loopback: Any) -> None:
    addresses = spare_loopback(2)
    with sandbox.run(_profile(addresses)) as sb:
        assert _get(sb.url("web") + "/") == sb.url("api")
        assert sorted(sb.services) == ["api", "web"]
    assert listening(str(addresses[0])) == []


async def test_serve_stops_when_the_injected_trigger_fires(spare_loopback: Any) -> None:
    addresses = spare_loopback(2)
    events: list[Event] = []
    stop = asyncio.Event()
    box = sandbox.Sandbox(sandbox.load(_profile(addresses)), emit=events.append)

    def on_event(event: Event) -> None:
        events.append(event)
        if isinstance(event, ServiceReady) and event.service == "web":
            stop.set()

    box.emit = on_event
    await asyncio.wait_for(box.serve(stop.wait), timeout=20)
    ready = [e.service for e in events if isinstance(e, ServiceReady)]
    stopped = [e.service for e in events if isinstance(e, ServiceStopped)]
    assert ready == ["api", "web"], "api first: web depends on it"
    assert stopped == ["web", "api"], "stopped in reverse"
    assert listening(str(addresses[0])) == []


async def test_a_held_port_fails_before_anything_serves(spare_loopback: Any) -> None:
    addresses = spare_loopback(2)
    with socket.socket() as held:
        held.bind((str(addresses[1]), 0))
        held.listen()
        data = _profile(addresses)
        data["services"]["api"]["port"] = held.getsockname()[1]
        data["services"]["web"]["port"] = held.getsockname()[1]
        with pytest.raises(ConflictError, match=r"api \("):
            async with sandbox.start(data):
                pytest.fail("started despite the conflict")
    assert listening(str(addresses[0])) == []


async def test_not_ready_unwinds_what_started(spare_loopback: Any, tmp_path: Path) -> None:
    addresses = spare_loopback(2)
    data = _profile(addresses)
    data["services"]["web"]["ready"] = {"http": "/missing", "status": 200, "timeout": "200ms"}
    with pytest.raises(NotReadyError, match="web"):
        async with sandbox.start(data, state_root=tmp_path):
            pytest.fail("started although web never became ready")
    assert listening(str(addresses[1])) == [], "api had started and must be stopped again"
    assert not (tmp_path / "api-test").exists(), "the record is removed"
