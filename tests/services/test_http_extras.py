"""HTTP stub answers beyond the basics, over real loopback sockets: templated status and
headers, regex extraction, repeated query parameters, env, presence matchers, nested JSON,
default headers, CORS, add_prefix, long random ranges, charsets, the body limit."""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from sandbox.errors import StubConfigError
from sandbox.profile.models import HttpService
from tests.services.helpers import Listen, Start, context, peer_of

Serve = Callable[..., Awaitable[str]]


@pytest.fixture
def serve_routes(listen: Listen, start: Start) -> Serve:
    """Serve an http stub on a held socket; returns its base URL."""

    async def go(*routes: dict[str, Any], **service: Any) -> str:
        sock = listen()
        spec = HttpService.model_validate({"kind": "http", "routes": list(routes), **service})
        ctx = context("web", sock, peers=service.pop("_peers", None))
        await start(spec, sock, ctx)
        return ctx.url

    return go


async def _get(url: str, **kw: Any) -> tuple[int, dict[str, str], bytes]:
    method = kw.pop("method", "GET")
    async with aiohttp.ClientSession() as session, session.request(method, url, **kw) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def test_status_and_headers_are_templates(serve_routes: Serve) -> None:
    url = await serve_routes(
        {
            "path": "/status/{code}",
            "response": {"status": "{{ path.code }}", "headers": {"X-Code": "c{{ path.code }}"}},
        }
    )
    status, headers, _ = await _get(f"{url}/status/418")
    assert (status, headers["X-Code"]) == (418, "c418")
    status, _, body = await _get(f"{url}/status/abc")
    assert status == 500
    assert b"'abc' is not a status" in body


async def test_regex_extraction_from_the_body_and_all_values_of_a_query(
    serve_routes: Serve,
) -> None:
    url = await serve_routes(
        {
            "path": "/orders",
            "response": {
                "json": {
                    "id": "{{ body | regex('id=(\\\\d+)') }}",
                    "none": "{{ body | regex('zzz([0-9])') }}",
                    "numbers": "{{ body | regex_all('[0-9]+') | join(',') }}",
                    "tags": "{{ query_all.tag | join(',') }}",
                    "first": "{{ query.tag }}",
                }
            },
        }
    )
    status, _, body = await _get(
        f"{url}/orders?tag=a&tag=b&tag=c", method="POST", data="x id=42 y 7"
    )
    assert status == 200
    assert json.loads(body) == {
        "id": "42",
        "none": "",
        "numbers": "42,7",
        "tags": "a,b,c",
        "first": "a",
    }


async def test_env_holds_only_the_listed_variables(
    serve_routes: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STUB_REGION", "eu-1")
    monkeypatch.setenv("STUB_SECRET", "hunter2")
    url = await serve_routes(
        {"path": "/r", "response": {"body": "{{ env.STUB_REGION }}/{{ env.MODE }}"}},
        {"path": "/s", "response": {"body": "{{ env.STUB_SECRET }}"}},
        pass_env=["STUB_REGION"],
        env={"MODE": "test"},
    )
    assert (await _get(f"{url}/r"))[2] == b"eu-1/test"
    status, _, body = await _get(f"{url}/s")
    assert status == 500
    assert b"hunter2" not in body
    assert b"STUB_SECRET" in body


async def test_a_pass_env_variable_that_is_not_set_stops_the_start(
    listen: Listen, start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STUB_NOT_SET", raising=False)
    sock = listen()
    spec = HttpService.model_validate({"kind": "http", "pass_env": ["STUB_NOT_SET"]})
    with pytest.raises(StubConfigError, match="STUB_NOT_SET"):
        await start(spec, sock, context("web", sock))


async def test_absent_and_exact_query_matchers(serve_routes: Serve) -> None:
    url = await serve_routes(
        {
            "path": "/a",
            "match": {
                "query": {"page": "^1$"},
                "exact_query": True,
                "absent": {"headers": ["X-Debug"]},
            },
            "response": {"body": "strict"},
        },
        {"path": "/a", "response": {"body": "loose"}},
    )
    assert (await _get(f"{url}/a?page=1"))[2] == b"strict"
    assert (await _get(f"{url}/a?page=1&extra=2"))[2] == b"loose"
    assert (await _get(f"{url}/a?page=1", headers={"X-Debug": "1"}))[2] == b"loose"


async def test_absent_reasons_show_in_the_404(serve_routes: Serve) -> None:
    url = await serve_routes(
        {"path": "/a", "match": {"absent": {"query": ["debug"]}}, "response": {"body": "x"}},
        # Its own method, so the 404's closest list (a row per method and path) shows it.
        {"method": "GET", "path": "/a", "match": {"exact_query": True}, "response": {"body": "y"}},
    )
    status, _, body = await _get(f"{url}/a?debug=1")
    assert status == 404
    assert b"query parameter 'debug' is present but must be absent" in body
    assert b"query parameter 'debug' is not expected (exact_query)" in body


async def test_nested_json_by_dotted_path_and_by_nested_object(serve_routes: Serve) -> None:
    url = await serve_routes(
        {
            "method": "POST",
            "path": "/u",
            "match": {"json": {"user.address.city": "^Par", "items.0.id": 7}},
            "response": {"body": "dotted"},
        },
        {
            "method": "POST",
            "path": "/u",
            "match": {"json": {"user": {"address": {"city": "^Lyon$"}, "admin": True}}},
            "response": {"body": "nested"},
        },
    )
    paris = {"user": {"address": {"city": "Paris", "zip": "75"}}, "items": [{"id": 7}]}
    assert (await _get(f"{url}/u", method="POST", json=paris))[2] == b"dotted"
    lyon = {"user": {"address": {"city": "Lyon"}, "admin": True, "extra": 1}}
    assert (await _get(f"{url}/u", method="POST", json=lyon))[2] == b"nested"
    status, _, body = await _get(
        f"{url}/u", method="POST", json={"user": {"address": {"city": "Nice"}, "admin": True}}
    )
    assert status == 404
    assert b"user.address.city" in body


async def test_default_headers_apply_unless_a_response_sets_them(serve_routes: Serve) -> None:
    url = await serve_routes(
        {"path": "/plain", "response": {"body": "x"}},
        {"path": "/own", "response": {"body": "x", "headers": {"X-Env": "own"}}},
        headers={"X-Env": "sandbox", "Cache-Control": "no-store"},
    )
    _, headers, _ = await _get(f"{url}/plain")
    assert (headers["X-Env"], headers["Cache-Control"]) == ("sandbox", "no-store")
    assert (await _get(f"{url}/own"))[1]["X-Env"] == "own"
    _, headers, _ = await _get(f"{url}/missing")  # the 404 too
    assert headers["X-Env"] == "sandbox"
    status, headers, _ = await _get(
        f"{url}/plain", method="POST", data=io.BytesIO(b"x" * (1024**2 + 1))
    )
    assert (status, headers["X-Env"]) == (413, "sandbox")  # and the 413


async def test_cors_answers_preflights_and_allows_the_origin(serve_routes: Serve) -> None:
    url = await serve_routes({"path": "/api", "response": {"json": {"ok": True}}}, cors=True)
    status, headers, _ = await _get(
        f"{url}/api",
        method="OPTIONS",
        headers={
            "Origin": "http://127.0.0.1:3000",
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "content-type, x-token",
        },
    )
    assert status == 204
    assert "PUT" in headers["Access-Control-Allow-Methods"]
    assert headers["Access-Control-Allow-Headers"] == "content-type, x-token"
    assert headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:3000"
    _, headers, _ = await _get(f"{url}/api", headers={"Origin": "http://127.0.0.1:3000"})
    assert headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:3000"
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert "Origin" in headers["Vary"]


async def test_without_cors_no_preflight_is_answered(serve_routes: Serve) -> None:
    url = await serve_routes({"path": "/api", "method": "GET", "response": {"body": "x"}})
    status, headers, _ = await _get(
        f"{url}/api",
        method="OPTIONS",
        headers={"Origin": "http://127.0.0.1:3000", "Access-Control-Request-Method": "GET"},
    )
    assert status == 404
    assert "Access-Control-Allow-Origin" not in headers


async def test_proxy_add_prefix(listen: Listen, start: Start) -> None:
    upstream_sock = listen()
    upstream = HttpService.model_validate(
        {
            "kind": "http",
            "routes": [{"path": "/v2/{rest:.*}", "response": {"body": "{{ path.rest }}"}}],
        }
    )
    await start(upstream, upstream_sock, context("api", upstream_sock))
    front_sock = listen()
    front = HttpService.model_validate(
        {
            "kind": "http",
            "routes": [
                {
                    "path": "/api/{rest:.*}",
                    "proxy": "api",
                    "strip_prefix": "/api",
                    "add_prefix": "/v2",
                }
            ],
        }
    )
    ctx = context("web", front_sock, peers={"api": peer_of("api", upstream_sock)})
    await start(front, front_sock, ctx)
    status, _, body = await _get(f"{ctx.url}/api/users/7?x=1")
    assert (status, body) == (200, b"users/7")


async def test_random_over_a_large_range_answers(serve_routes: Serve) -> None:
    url = await serve_routes(
        {"path": "/r", "response": {"body": "{{ range(1, 10**12) | random }}"}},
        {"path": "/loop", "response": {"body": "{{ range(10**7) | list | length }}"}},
    )
    for _ in range(5):
        status, _, body = await _get(f"{url}/r")
        assert status == 200
        assert 1 <= int(body) < 10**12
    status, _, body = await _get(f"{url}/loop")
    assert status == 500
    assert b"cannot be looped over" in body


async def test_bodies_honour_the_declared_charset(serve_routes: Serve) -> None:
    url = await serve_routes(
        {
            "path": "/latin",
            "response": {
                "body": "café",
                "headers": {"Content-Type": "text/plain; charset=latin-1"},
            },
        },
        {
            "path": "/json",
            "response": {
                "json": {"name": "Zoë"},
                "headers": {"Content-Type": "application/json; charset=iso-8859-1"},
            },
        },
        {"path": "/utf8", "response": {"body": "café"}},
        {
            "path": "/bad",
            "response": {"body": "✓", "headers": {"Content-Type": "text/plain; charset=latin-1"}},
        },
    )
    assert (await _get(f"{url}/latin"))[2] == "café".encode("latin-1")
    assert (await _get(f"{url}/json"))[2] == '{"name": "Zoë"}'.encode("latin-1")
    assert (await _get(f"{url}/utf8"))[2] == "café".encode()
    status, _, body = await _get(f"{url}/bad")
    assert status == 500
    assert b"cannot be written in latin-1" in body


async def test_an_unknown_charset_stops_the_start(listen: Listen, start: Start) -> None:
    sock = listen()
    spec = HttpService.model_validate(
        {
            "kind": "http",
            "routes": [
                {
                    "path": "/",
                    "response": {
                        "body": "x",
                        "headers": {"Content-Type": "text/plain; charset=klingon"},
                    },
                }
            ],
        }
    )
    with pytest.raises(StubConfigError, match="klingon"):
        await start(spec, sock, context("web", sock))


async def test_the_body_limit_is_configurable(serve_routes: Serve) -> None:
    url = await serve_routes(
        {"path": "/", "response": {"body": "{{ body | length }}"}}, max_body="2MiB"
    )
    status, _, body = await _get(url + "/", method="POST", data=io.BytesIO(b"x" * (1024**2 + 10)))
    assert (status, body) == (200, str(1024**2 + 10).encode())
    status, _, _ = await _get(url + "/", method="POST", data=io.BytesIO(b"x" * (2 * 1024**2 + 1)))
    assert status == 413


async def test_the_default_body_limit_is_one_mebibyte(serve_routes: Serve) -> None:
    url = await serve_routes({"path": "/", "response": {"body": "{{ body | length }}"}})
    assert (await _get(url + "/", method="POST", data=io.BytesIO(b"x" * 1024**2)))[0] == 200
    assert (await _get(url + "/", method="POST", data=io.BytesIO(b"x" * (1024**2 + 1))))[0] == 413
