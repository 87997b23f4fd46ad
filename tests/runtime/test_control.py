"""The control API of a running sandbox: journal, verify, reset, state; loopback Host only."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

import sandbox
from sandbox.errors import UsageError
from sandbox.runtime.control import host_allowed, origin_allowed
from sandbox.runtime.sandbox import Sandbox
from sandbox.runtime.state import StateDir


def profile(addresses: list[ipaddress.IPv4Address]) -> dict[str, Any]:
    api, cache = (str(a) for a in addresses)
    return {
        "name": "control-test",
        "services": {
            "api": {
                "kind": "http",
                "address": api,
                "vars": {"count": 0},
                "routes": [
                    {"method": "GET", "path": "/", "response": {}},
                    {
                        "method": "POST",
                        "path": "/orders",
                        "match": {"headers": {"x-api-key": "^abc$"}},
                        "set": {"count": "{{ vars.count + 1 }}"},
                        "scenario": {"name": "checkout", "then": "ordered"},
                        "response": {"status": 201},
                    },
                ],
            },
            "cache": {"kind": "tcp", "address": cache,
                      "tcp": {"rules": [{"expect": "PING", "send": "+PONG\r\n"}]}},
        },
    }  # fmt: skip


@pytest.fixture
async def running(spare_loopback: Any, tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with sandbox.start(profile(spare_loopback(2)), state_root=tmp_path) as sb:
        yield sb


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as made:
        yield made


async def _orders(session: aiohttp.ClientSession, sb: Sandbox, key: str | None) -> int:
    headers = {"x-api-key": key} if key else {}
    async with session.post(sb.url("api") + "/orders", headers=headers) as resp:
        return resp.status


async def test_the_control_api_is_on_loopback_and_recorded(
    running: Sandbox, tmp_path: Path
) -> None:
    url = running.control_url
    assert url is not None
    assert url.startswith("http://127.0.0.1:")
    record = StateDir(tmp_path, "control-test").read()
    assert record is not None
    assert record.control == url


async def test_journal_lists_what_the_stubs_received(
    running: Sandbox, session: aiohttp.ClientSession
) -> None:
    assert await _orders(session, running, "abc") == 201
    assert await _orders(session, running, None) == 404
    async with session.get(f"{running.control_url}/journal?service=api&method=post") as resp:
        assert resp.status == 200
        document = await resp.json()
    entries = document["entries"]
    assert [(e["path"], e["status"], e["route"]) for e in entries] == [
        ("/orders", 201, 1),
        ("/orders", 404, None),
    ]
    assert entries[1]["miss"]["route"] == 1
    assert "x-api-key" in entries[1]["miss"]["why"]
    assert document["last"] >= entries[1]["seq"]
    since = entries[0]["seq"]
    async with session.get(f"{running.control_url}/journal?since={since}") as resp:
        later = (await resp.json())["entries"]
    assert [e["seq"] for e in later] == [entries[1]["seq"]]


async def test_verify_answers_200_when_it_holds_and_409_with_the_evidence(
    running: Sandbox, session: aiohttp.ClientSession
) -> None:
    await _orders(session, running, "abc")
    await _orders(session, running, "wrong")
    good = {"service": "api", "method": "POST", "path": "/orders", "times": 2}
    async with session.post(f"{running.control_url}/verify", json=good) as resp:
        assert resp.status == 200
        assert (await resp.json())["ok"] is True
    bad = {"service": "api", "method": "PUT", "path": "/orders", "at_least": 1}
    async with session.post(f"{running.control_url}/verify", json=bad) as resp:
        assert resp.status == 409
        verdict = await resp.json()
    assert verdict["ok"] is False
    assert verdict["count"] == 0
    assert len(verdict["received"]) == 2
    assert verdict["nearest"][0]["why"] == "method POST, not PUT"
    assert "expected PUT /orders at least 1 time, received it 0 times" in verdict["message"]


async def test_reset_and_state_through_the_api(
    running: Sandbox, session: aiohttp.ClientSession
) -> None:
    control = running.control_url
    await _orders(session, running, "abc")
    async with session.get(f"{control}/state/api") as resp:
        assert await resp.json() == {
            "api": {"scenarios": {"checkout": "ordered"}, "vars": {"count": 1}}
        }
    new = {"scenarios": {"checkout": "shipped"}, "vars": {"count": 41}}
    async with session.put(f"{control}/state/api", json=new) as resp:
        assert resp.status == 200
    await _orders(session, running, "abc")
    assert running.state("api") == {"scenarios": {"checkout": "ordered"}, "vars": {"count": 42}}
    async with session.post(f"{control}/reset", json={"service": "api"}) as resp:
        assert await resp.json() == {"reset": ["api"]}
    assert running.requests("api") == ()
    assert running.state("api") == {"scenarios": {"checkout": "Started"}, "vars": {"count": 0}}


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Host": "evil.example"}, 403),  # a DNS-rebinding page: its own name, our address
        ({"Host": "evil.example:{port}"}, 403),
        ({"Host": "127.0.0.1:1"}, 403),  # the right address, another port
        ({"Origin": "http://evil.example"}, 403),
        ({"Origin": "null"}, 403),
        ({"Host": "localhost:{port}"}, 200),
        ({"Host": "127.0.0.1:{port}", "Origin": "http://localhost:3000"}, 200),
    ],
)
async def test_only_loopback_hosts_and_origins_are_answered(
    running: Sandbox, session: aiohttp.ClientSession, headers: dict[str, str], status: int
) -> None:
    control = running.control_url
    assert control is not None
    port = str(urlsplit(control).port)
    sent = {k: v.replace("{port}", port) for k, v in headers.items()}
    async with session.get(f"{control}/journal", headers=sent) as resp:
        assert resp.status == status
        if status == 403:
            assert "refused" in (await resp.json())["error"]


async def test_only_requests_under_the_secret_url_are_answered(
    running: Sandbox, session: aiohttp.ClientSession
) -> None:
    control = running.control_url
    assert control is not None
    parts = urlsplit(control)
    assert len(parts.path) > 20  # /TOKEN: not guessable
    root = f"{parts.scheme}://{parts.netloc}"
    for path in ("/journal", "/", "/x" + parts.path + "/journal", parts.path + "x/journal"):
        async with session.get(root + path) as resp:
            assert resp.status == 403, path
            assert "only under its URL" in (await resp.json())["error"]
    async with session.get(control) as resp:
        assert resp.status == 200
        assert "GET /journal[?service=&method=&path=&since=]" in (await resp.json())["endpoints"]


async def test_bad_requests_are_told_what_is_wrong(
    running: Sandbox, session: aiohttp.ClientSession
) -> None:
    control = running.control_url
    async with session.post(f"{control}/verify", data=b"{not json") as resp:
        assert resp.status == 400
        assert "not JSON" in (await resp.json())["error"]
    async with session.post(f"{control}/verify", json={"service": "nope"}) as resp:
        assert resp.status == 404
        assert "no stub named" in (await resp.json())["error"]
    async with session.post(f"{control}/verify", json={"service": "api", "times": -1}) as resp:
        assert resp.status == 400
    async with session.get(f"{control}/journal?since=x") as resp:
        assert resp.status == 400
    async with session.put(f"{control}/state/cache", json={"vars": {}}) as resp:
        assert resp.status == 400
        assert "tcp stub" in (await resp.json())["error"]


async def test_a_command_service_is_told_the_control_url(
    spare_loopback: Any, tmp_path: Path
) -> None:
    [address] = spare_loopback(1)
    spec = {
        "name": "control-env",
        "services": {
            "job": {
                "kind": "command",
                "address": str(address),
                "run": "sh -c 'echo control=$SANDBOX_CONTROL_URL; exec sleep 30'",
                "ready": {"log": "control="},
            }
        },
    }
    async with sandbox.start(spec, state_root=tmp_path) as sb:
        log = StateDir(tmp_path, "control-env").log_path("job").read_text()
        assert f"control={sb.control_url}" in log


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:80", True),
        ("127.9.8.7:80", True),
        ("[::1]:80", True),
        ("LOCALHOST:80", True),
        ("127.0.0.1", False),
        ("127.0.0.1:81", False),
        ("10.0.0.1:80", False),
        ("localhost.evil.example:80", False),
        ("[::1:80", False),
        ("127.0.0.1:x", False),
        (None, False),
    ],
)
def test_host_rule(host: str | None, allowed: bool) -> None:
    assert host_allowed(host, 80) is allowed


def test_origin_rule() -> None:
    assert origin_allowed(None)
    assert origin_allowed("http://127.0.0.1:5173")
    assert origin_allowed("http://[::1]")
    assert not origin_allowed("https://127.0.0.1.evil.example")
    assert not origin_allowed("null")


def test_the_control_api_refuses_a_non_loopback_address() -> None:
    from sandbox.api import load

    spec = {"name": "x", "services": {"a": {"kind": "http"}}}
    with pytest.raises(UsageError, match="only on a loopback address"):
        Sandbox(load(spec), control_address="0.0.0.0")
    assert Sandbox(load(spec), control_address=None).control_address is None
