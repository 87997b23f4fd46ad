"""Proxy routes: two real stubs on two loopback addresses, and an upstream that is down."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.services.helpers import Listen, Start, context, http_spec, peer_of


@pytest.fixture
async def api_and_web(listen: Listen, start: Start, spare_loopback: Any) -> tuple[str, str]:
    """Two real servers on two addresses: web proxies /api/... to api. Returns their URLs."""
    web_addr, api_addr = (str(a) for a in spare_loopback(2))
    web_sock, api_sock = listen(web_addr), listen(api_addr)
    peers = {"api": peer_of("api", api_sock), "web": peer_of("web", web_sock)}
    api = http_spec(
        {
            "method": "GET",
            "path": "/api/users/{id}",
            "response": {
                "status": 203,
                "headers": {"X-Upstream": "api"},
                "json": {
                    "id": "{{ path.id }}",
                    "q": "{{ query.q }}",
                    "host": "{{ headers.host }}",
                    "via": "{{ headers.via }}",
                    "forwarded_for": "{{ headers['x-forwarded-for'] }}",
                },
            },
        },
        {"method": "POST", "path": "/api/echo", "response": {"body": "got {{ body }}"}},
    )
    web = http_spec(
        {"path": "/api/{rest:.*}", "proxy": "api"},
        {"path": "/v2/{rest:.*}", "proxy": "api", "strip_prefix": "/v2"},
        {"path": "/loop", "proxy": "web"},
    )
    await start(api, api_sock, context("api", api_sock, peers=peers))
    await start(web, web_sock, context("web", web_sock, peers=peers))
    return peers["web"].url, peers["api"].url


async def test_proxy_forwards_path_query_headers_and_body(api_and_web: tuple[str, str]) -> None:
    web_url, api_url = api_and_web
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{web_url}/api/users/7?q=x%20y") as resp:
            assert resp.status == 203
            assert resp.headers["X-Upstream"] == "api"
            body = await resp.json()
        async with session.post(f"{web_url}/api/echo", data=b"payload") as resp:
            echoed = await resp.text()
    assert body["id"] == "7"
    assert body["q"] == "x y"
    assert body["host"] == api_url.removeprefix("http://")
    assert body["via"] == "1.1 sandbox-web"
    assert body["forwarded_for"].startswith("127.")
    assert echoed == "got payload"


async def test_strip_prefix_removes_the_front_of_the_path(api_and_web: tuple[str, str]) -> None:
    web_url, _ = api_and_web
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{web_url}/v2/api/users/9?q=z") as resp:
            assert resp.status == 203
            assert (await resp.json())["id"] == "9"
        async with session.get(f"{web_url}/v2/users/9") as resp:
            assert resp.status == 404  # /users/9 upstream: no such route there


async def test_proxy_loop_is_refused(api_and_web: tuple[str, str]) -> None:
    web_url, _ = api_and_web
    async with aiohttp.ClientSession() as session, session.get(f"{web_url}/loop") as resp:
        assert resp.status == 508
        assert (await resp.json())["error"] == "proxy loop"


async def test_proxy_to_a_service_that_is_down_is_a_502(listen: Listen, start: Start) -> None:
    web_sock = listen("127.0.0.1")
    down = listen("127.0.0.1", listening=False)  # bound, not listening: connects are refused
    peers = {"api": peer_of("api", down)}
    ctx = context("web", web_sock, peers=peers)
    await start(http_spec({"path": "/api/{rest:.*}", "proxy": "api"}), web_sock, ctx)
    async with aiohttp.ClientSession() as session, session.get(ctx.url + "/api/x?y=1") as resp:
        assert resp.status == 502
        body = await resp.json()
    assert body["service"] == "api"
    assert body["url"] == f"{peers['api'].url}/api/x?y=1"
    assert "could not connect" in body["detail"]
    assert "refused" in body["detail"]
