"""Malformed and hostile HTTP requests: one log line, no traceback, never a 500 for a body."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.services.helpers import Listen, Start, connection, context, http_spec, read_to_eof


async def test_a_malformed_request_is_one_log_line_without_a_traceback(
    listen: Listen, start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sock = listen("127.0.0.1")
    lines: list[str] = []
    ctx = context("web", sock, log=lines.append)
    await start(http_spec({"path": "/", "response": {}}), sock, ctx)
    async with connection(ctx.address, ctx.port) as (reader, writer):
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\n")
        answer = await read_to_eof(reader)
    assert b" 400 Bad Request" in answer.split(b"\r\n")[0]
    complaints = [line for line in lines if "Error handling request" in line]
    assert len(complaints) == 1, lines
    assert "\n" not in complaints[0]
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info]


async def test_a_deeply_nested_json_body_is_no_match_not_a_500(aiohttp_client: Any) -> None:
    from sandbox.services.http import create_app

    spec = http_spec(
        {
            "method": "POST",
            "path": "/j",
            "match": {"json": {"a": "1"}},
            "response": {"status": 201},
        },
        {"method": "POST", "path": "/j", "response": {"body": "plain"}},
    )
    client = await aiohttp_client(create_app(spec, context("web")))
    resp = await client.post("/j", data="[" * 100_000 + "]" * 100_000)
    assert resp.status == 200
    assert await resp.text() == "plain"
