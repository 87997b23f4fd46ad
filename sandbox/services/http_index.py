"""What a stub can precompute about its routes: which routes a path can reach, and the
answers that are the same for every request.

A request tries only the routes that can match its path, still in profile order (the first
that takes it wins, as with the plain scan): a route with a literal path takes that one path
only, so it is a candidate for it alone; a route with parameters is a candidate for every
path. An answer with no template, no file and no delay is built once, at load.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from sandbox.services.http_answers import JSON, TEXT
from sandbox.services.http_extras import encode
from sandbox.services.http_routes import Answer
from sandbox.services.templates import RenderError, has_templates, render_json


def is_literal(path: str) -> bool:
    """A route path without `{parameters}` (compile_path escapes everything else)."""
    return "{" not in path and "}" not in path


class PathIndex:
    """The indices of the routes a path may reach, in profile order."""

    def lists(self) -> list[Sequence[int]]:
        """Every candidate list `candidates` can return."""
        return [self._general, *self._by_path.values()]

    def __init__(self, paths: Sequence[str]) -> None:
        literal: dict[str, list[int]] = {}
        general: list[int] = []
        for index, path in enumerate(paths):
            if is_literal(path):
                literal.setdefault(path, []).append(index)
            else:
                general.append(index)
        self._by_path = {path: sorted(found + general) for path, found in literal.items()}
        self._general = general

    def candidates(self, path: str) -> Sequence[int]:
        """Every route that may take `path`, in profile order (no other can match it)."""
        return self._by_path.get(path, self._general)


_META = frozenset(".^$*+?{}[]\\|()")
NARROW_FROM = 4  # routes told apart by one query parameter before narrowing pays


def literal_of(pattern: str) -> str | None:
    """The text `^TEXT$` matches when `pattern` is that (letters and escaped punctuation
    only), else None. `re.search` with it takes exactly TEXT and TEXT followed by a newline."""
    if len(pattern) < 2 or pattern[0] != "^" or pattern[-1] != "$":
        return None
    body, out, index = pattern[1:-1], [], 0
    while index < len(body):
        char = body[index]
        if char == "\\":
            after = body[index + 1 : index + 2]
            if not after or after.isalnum() or after.isspace():
                return None  # a class like \d, or a trailing backslash (the $ is escaped)
            out.append(after)
            index += 2
            continue
        if char in _META:
            return None
        out.append(char)
        index += 1
    return "".join(out)


class QueryNarrowing:
    """Routes (of one candidate list) told apart by a literal query value, `kind: ^k19$`:
    a request tries only those whose value it carries, and the routes without one, still
    in profile order. Each route tried is still checked in full: this only leaves out
    routes whose condition cannot hold."""

    def __init__(self, name: str, keyed: dict[str, list[int]], rest: list[int]) -> None:
        self.name = name
        self._keyed = keyed
        self._rest = rest
        self._merged = {text: sorted(rest + found) for text, found in keyed.items()}

    @classmethod
    def of(
        cls, candidates: Sequence[int], literals: Sequence[dict[str, str]]
    ) -> QueryNarrowing | None:
        """`literals[i]`: route i's literal query conditions (name -> text). None when no
        parameter tells at least NARROW_FROM of `candidates` apart."""
        counts: dict[str, int] = {}
        for index in candidates:
            for name in literals[index]:
                counts[name] = counts.get(name, 0) + 1
        if not counts:
            return None
        name = max(counts, key=lambda key: counts[key])
        if counts[name] < NARROW_FROM:
            return None
        keyed: dict[str, list[int]] = {}
        rest: list[int] = []
        for index in candidates:
            text = literals[index].get(name)
            if text is None:
                rest.append(index)
            else:
                keyed.setdefault(text, []).append(index)
        return cls(name, keyed, rest)

    def candidates(self, values: Sequence[str]) -> Sequence[int]:
        """The routes a request whose parameter has `values` may match, in profile order."""
        if len(values) == 1 and not values[0].endswith("\n"):
            return self._merged.get(values[0], self._rest)
        found = set(self._rest)
        for value in values:
            found.update(self._keyed.get(value, ()))
            if value.endswith("\n"):  # `$` also matches before a final newline
                found.update(self._keyed.get(value[:-1], ()))
        return sorted(found)


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
    """The answer built once, as `http_answers.build` builds it; None unless it is the same
    for every request (no template anywhere, no file, no delay)."""
    if answer.file is not None or answer.delay or templated(answer):
        return None
    if not isinstance(answer.status, int):  # a templated status
        return None
    headers = CIMultiDict((name, text.source) for name, text in answer.headers)
    body: bytes | None = None
    try:
        if answer.body is not None:
            headers.setdefault("Content-Type", TEXT)
            body = encode(answer.body.source, headers["Content-Type"], answer.body.where)
        elif answer.json is not None:
            text = json.dumps(render_json(answer.json, {}), ensure_ascii=False)
            headers.setdefault("Content-Type", JSON)
            body = encode(text, headers["Content-Type"], "json")
    except RenderError:  # build() turns it into its 500 answer, every time
        return None
    return Prebuilt(answer.status, CIMultiDictProxy(headers), body)


def templated(answer: Answer) -> bool:
    """Whether any part of `answer` is a template (which may use anything of the request)."""
    texts = [text for _, text in answer.headers]
    if answer.body is not None:
        texts.append(answer.body)
    return any(text.template is not None for text in texts) or has_templates(answer.json)
