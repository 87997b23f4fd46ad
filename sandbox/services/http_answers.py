"""Turn a compiled HTTP answer into an aiohttp response: templates, files, JSON errors."""

from __future__ import annotations

import asyncio
import json
import mimetypes
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from sandbox.services.context import Peer
from sandbox.services.http_extras import encode, render_status
from sandbox.services.http_routes import Answer, Incoming
from sandbox.services.templates import RenderError, render_json

TEXT = "text/plain; charset=utf-8"
JSON = "application/json"


class FileRefused(Exception):
    """A `file:` response cannot be served; the message says why."""


def json_response(
    status: int, document: Any, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A JSON response, indented so that a person reading curl's output can follow it."""
    body = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    merged = CIMultiDict(headers or {})
    merged.setdefault("Content-Type", JSON)
    return web.Response(status=status, body=body.encode(), headers=merged)


def template_variables(
    req: Incoming, params: Mapping[str, str], peers: Mapping[str, Peer]
) -> dict[str, Any]:
    """What a template can use: path, query, headers, json, body, method, services."""
    query: dict[str, str] = {}
    for name, value in req.query.items():
        query.setdefault(name, value)  # a repeated parameter shows its first value
    return {
        "path": dict(params),
        "query": query,
        "headers": req.headers,
        "json": req.json,
        "body": req.body,
        "method": req.method,
        "services": peers,
    }


def confine(profile_dir: Path | None, name: str) -> Path:
    """The file `name` inside `profile_dir`. Raises FileRefused for anything outside it."""
    if profile_dir is None:
        raise FileRefused("this service has no profile folder, so it serves no files")
    if PurePath(name).is_absolute():
        raise FileRefused("an absolute path is refused: name a file inside the profile's folder")
    base = profile_dir.resolve()
    path = (base / name).resolve()  # resolving follows symlinks, so a link cannot escape
    if not path.is_relative_to(base):
        raise FileRefused(f"{name!r} lies outside the profile's folder {base}")
    return path


async def _file_body(profile_dir: Path | None, name: str) -> tuple[bytes, str]:
    path = confine(profile_dir, name)
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise FileRefused(f"{name!r} cannot be read: {exc.strerror or exc}") from None
    return data, mimetypes.guess_type(path.name)[0] or "application/octet-stream"


async def build(
    answer: Answer, variables: Mapping[str, Any], profile_dir: Path | None
) -> web.Response:
    """Render `answer` after its delay. A template or file problem becomes a 500 JSON error."""
    try:
        status = render_status(answer.status, variables)
        headers = CIMultiDict((name, text.render(variables)) for name, text in answer.headers)
        body: bytes | None = None
        if answer.body is not None:
            headers.setdefault("Content-Type", TEXT)
            text = answer.body.render(variables)
            body = encode(text, headers["Content-Type"], answer.body.where)
        elif answer.json is not None:
            rendered = render_json(answer.json, variables)
            headers.setdefault("Content-Type", JSON)
            text = json.dumps(rendered, ensure_ascii=False)
            body = encode(text, headers["Content-Type"], "json")
        elif answer.file is not None:
            body, content_type = await _file_body(profile_dir, answer.file)
            headers.setdefault("Content-Type", content_type)
    except RenderError as exc:
        return json_response(
            500,
            {
                "error": "a response template failed",
                "where": exc.where,
                "detail": exc.detail,
                "template": exc.source,
            },
        )
    except FileRefused as exc:
        return json_response(
            500,
            {
                "error": "the response file cannot be served",
                "file": answer.file,
                "detail": str(exc),
            },
        )
    if answer.delay:
        await asyncio.sleep(answer.delay)  # the slowness is the behaviour being stubbed
    return web.Response(status=status, body=body, headers=headers)
