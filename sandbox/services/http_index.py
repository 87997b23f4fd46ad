"""What a stub can precompute about its routes: which routes a path can reach, and the
answers that are the same for every request.

A request tries only the routes that can match its path, still in profile order (the first
that takes it wins, as with the plain scan): a route with a literal path takes one path
only, so it is a candidate for that path alone; a route with parameters is a candidate for
every path. An answer with no template, no file and no delay is built once, at load.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from sandbox.services.http_answers import JSON, TEXT
from sandbox.services.http_routes import Answer, CompiledRoute
from sandbox.services.templates import has_templates, render_json


def is_literal(path: str) -> bool:
    """A path without `{parameters}` (compile_path escapes everything else)."""
    return "{" not in path and "}" not in path


class RouteIndex:
    """The candidate routes of a path, in profile order."""

    def __init__(self, routes: Sequence[CompiledRoute]) -> None:
        literal: dict[str, list[int]] = {}
        general: list[int] = []
        for index, route in enumerate(routes):
            if is_literal(route.spec.path):
                literal.setdefault(route.spec.path, []).append(index)
            else:
                general.append(index)
        self._by_path = {
            path: [routes[i] for i in sorted(indices + general)]
            for path, indices in literal.items()
        }
        self._general = [routes[i] for i in general]

    def candidates(self, path: str) -> Sequence[CompiledRoute]:
        """Every route that may take `path`, in profile order (others cannot match it)."""
        return self._by_path.get(path, self._general)


@dataclass(frozen=True)
class Prebuilt:
    """A constant answer: status, headers and body computed once."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes | None

    def response(self) -> web.Response:
        # aiohttp copies the headers into the response, so one set serves every request.
        return web.Response(status=self.status, body=self.body, headers=self.headers)


def prebuild(answer: Answer) -> Prebuilt | None:
    """The answer built once, as `http_answers.build` would build it; None unless it is the
    same for every request (no template anywhere, no file, no delay)."""
    if answer.file is not None or answer.delay or _templated(answer):
        return None
    headers = CIMultiDict((name, text.source) for name, text in answer.headers)
    body: bytes | None = None
    if answer.body is not None:
        body = answer.body.source.encode()
        headers.setdefault("Content-Type", TEXT)
    elif answer.json is not None:
        body = json.dumps(render_json(answer.json, {}), ensure_ascii=False).encode()
        headers.setdefault("Content-Type", JSON)
    return Prebuilt(answer.status, CIMultiDictProxy(headers), body)


def _templated(answer: Answer) -> bool:
    texts = [text for _, text in answer.headers]
    if answer.body is not None:
        texts.append(answer.body)
    return any(text.template is not None for text in texts) or has_templates(answer.json)


def uses_request(routes: Sequence[CompiledRoute]) -> bool:
    """Whether any route looks at the query, the body or its JSON: a condition on them, or a
    template (which may use any of them)."""
    for route in routes:
        conditions = route.conditions
        if conditions is not None and (conditions.query or conditions.json or conditions.body):
            return True
        if any(_templated(answer) for answer in route.answers):
            return True
    return False
