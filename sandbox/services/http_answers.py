"""Turn a compiled HTTP answer into an aiohttp response: templates, files, JSON errors."""

from __future__ import annotations

import asyncio
import errno
import json
import mimetypes
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from sandbox.services.context import Peer
from sandbox.services.http_extras import charset_of, encode, encode_as, render_status
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


def _first_values(req: Incoming) -> dict[str, str]:
    query: dict[str, str] = {}
    for name, value in req.query.items():
        query.setdefault(name, value)  # a repeated parameter shows its first value
    return query


_Provider = Callable[[Incoming, Mapping[str, str], Mapping[str, Peer]], Any]
_REQUEST: dict[str, _Provider] = {
    "path": lambda req, params, peers: dict(params),
    "query": lambda req, params, peers: _first_values(req),
    "headers": lambda req, params, peers: req.headers,
    "json": lambda req, params, peers: req.json,
    "body": lambda req, params, peers: req.body,
    "method": lambda req, params, peers: req.method,
    "services": lambda req, params, peers: peers,
}


def template_variables(
    req: Incoming,
    params: Mapping[str, str],
    peers: Mapping[str, Peer],
    names: Iterable[str] | None = None,
) -> dict[str, Any]:
    """What a template can use: path, query, headers, json, body, method, services; only
    those in `names` (what the templates to render read) when given."""
    wanted = _REQUEST if names is None else [name for name in names if name in _REQUEST]
    return {name: _REQUEST[name](req, params, peers) for name in wanted}


MAX_FILE = 64 << 20  # a stub answers with fixtures, not disk images
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def confine(profile_dir: Path | None, name: str) -> list[str]:
    """The components of `name`, a relative path inside `profile_dir`.

    Raises FileRefused for no folder, an absolute path or a `..` component.
    """
    if profile_dir is None:
        raise FileRefused("this service has no profile folder, so it serves no files")
    if PurePath(name).is_absolute():
        raise FileRefused("an absolute path is refused: name a file inside the profile's folder")
    parts = [p for p in PurePath(name).parts if p != "."]
    if ".." in parts or not parts:
        raise FileRefused(f"{name!r} lies outside the profile's folder {profile_dir}")
    return parts


def read_confined(profile_dir: Path | None, name: str) -> bytes:
    """The bytes of the regular file `name` inside `profile_dir`, opened safely.

    Every component is opened relative to the descriptor of the one before it with
    O_NOFOLLOW, so no symbolic link is followed even if one is swapped in while we walk;
    the file is opened without blocking and checked (fstat) to be a regular file, so a
    FIFO or a device is refused at once. Raises FileRefused saying why.
    """
    parts = confine(profile_dir, name)
    assert profile_dir is not None
    try:
        folder = os.open(profile_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise FileRefused(f"the profile's folder cannot be opened: {exc.strerror}") from None
    try:
        for part in parts[:-1]:
            step = _open_at(folder, part, _DIR_FLAGS, name)
            os.close(folder)
            folder = step
        fd = _open_at(folder, parts[-1], _FILE_FLAGS, name)
    finally:
        os.close(folder)
    with os.fdopen(fd, "rb") as stream:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused(f"{name!r} is not a regular file (a FIFO, device or socket)")
        if info.st_size > MAX_FILE:
            raise FileRefused(f"{name!r} is larger than {MAX_FILE} bytes")
        os.set_blocking(fd, True)
        return stream.read(MAX_FILE + 1)[:MAX_FILE]


def _open_at(folder: int, part: str, flags: int, name: str) -> int:
    try:
        return os.open(part, flags, dir_fd=folder)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(folder, part):
            raise FileRefused(
                f"{name!r} goes through the symbolic link {part!r}: links are not followed, "
                "so a file can never be reached outside the profile's folder"
            ) from None
        raise FileRefused(f"{name!r} cannot be read: {exc.strerror or exc}") from None


def _is_link(folder: int, part: str) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(part, dir_fd=folder).st_mode)
    except OSError:
        return False


async def _file_body(profile_dir: Path | None, name: str) -> tuple[bytes, str]:
    data = await asyncio.to_thread(read_confined, profile_dir, name)
    return data, mimetypes.guess_type(PurePath(name).name)[0] or "application/octet-stream"


@dataclass(frozen=True)
class Head:
    """What stays the same in an answer whose body (text or JSON) is a template: status,
    headers (Content-Type included) and the charset the body is written in."""

    status: int
    headers: CIMultiDictProxy[str]
    charset: str

    @classmethod
    def of(cls, answer: Answer) -> Head | None:
        """None unless only the body or JSON of `answer` is templated (no file, no delay)."""
        if answer.file is not None or answer.delay or not isinstance(answer.status, int):
            return None
        if any(text.template is not None for _, text in answer.headers):
            return None
        if answer.body is None and answer.json is None:
            return None
        headers = CIMultiDict((name, text.source) for name, text in answer.headers)
        headers.setdefault("Content-Type", TEXT if answer.body is not None else JSON)
        return cls(answer.status, CIMultiDictProxy(headers), charset_of(headers["Content-Type"]))


def _template_failed(exc: RenderError) -> web.Response:
    return json_response(
        500,
        {
            "error": "a response template failed",
            "where": exc.where,
            "detail": exc.detail,
            "template": exc.source,
        },
    )


def build_body(answer: Answer, head: Head, variables: Mapping[str, Any]) -> web.Response:
    """What `build` makes of an answer whose Head is known: only the body is rendered."""
    try:
        if answer.body is not None:
            body = encode_as(answer.body.render(variables), head.charset, answer.body.where)
        else:
            text = json.dumps(render_json(answer.json, variables), ensure_ascii=False)
            body = encode_as(text, head.charset, "json")
    except RenderError as exc:
        return _template_failed(exc)
    return web.Response(status=head.status, body=body, headers=head.headers)


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
        return _template_failed(exc)
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
