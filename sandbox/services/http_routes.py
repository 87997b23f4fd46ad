"""HTTP stub routes compiled: path patterns, `match` conditions and answers."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from multidict import MultiMapping

from sandbox.errors import StubConfigError
from sandbox.profile.models import Match, Response, Route, ScenarioStep
from sandbox.services.bounded import Bounded
from sandbox.services.http_extras import check_charset, compile_status
from sandbox.services.matchers import JsonConditions, PresenceConditions
from sandbox.services.templates import NO_NAMES, Text, compile_json, compile_text, names_in

# aiohttp's route syntax: `{name}` is one path segment, `{name:regex}` is the regex (which
# may itself hold `{m,n}` quantifiers, hence the nested braces).
_PARAM = re.compile(r"(\{[_a-zA-Z][^{}]*(?:\{[^{}]*\}[^{}]*)*\})")
_PLAIN = re.compile(r"\{(?P<name>[_a-zA-Z][_a-zA-Z0-9]*)\}")
_WITH_RE = re.compile(r"\{(?P<name>[_a-zA-Z][_a-zA-Z0-9]*):(?P<re>.+)\}")


class _Query(Protocol):
    """Where a lazy Incoming takes its query from (an aiohttp request)."""

    @property
    def query(self) -> MultiMapping[str]: ...


_UNREAD: Any = object()


def _parse_json(text: str) -> Any:
    # A body nested deeper than the parser's recursion allows is not JSON we can match.
    try:
        return json.loads(text) if text.strip() else None
    except (ValueError, RecursionError):
        return None


class Incoming:
    """What routing and templates see of a request (body already read).

    Made per request, so what most routes never look at (the query, the body as text, the
    body as JSON) is worked out on first use, once (`Incoming.of`).
    """

    __slots__ = ("_body", "_json", "_query", "_raw", "_source", "headers", "method", "path")

    def __init__(
        self,
        method: str,
        path: str,
        query: MultiMapping[str],
        headers: MultiMapping[str],
        body: str,
        json: Any = None,
    ) -> None:
        self.method = method
        # decoded except %2F and %25, as aiohttp matches: an encoded / stays in its segment
        self.path = path
        self.headers = headers  # case-insensitive
        self._query: MultiMapping[str] | None = query
        self._source: _Query | None = None
        self._raw = b""
        self._body: str | None = body
        self._json = json  # the parsed body, or None when it is empty or not JSON

    @classmethod
    def of(
        cls, method: str, path: str, source: _Query, headers: MultiMapping[str], raw: bytes
    ) -> Incoming:
        """A request whose query (from `source`), text and JSON (from `raw`) are read lazily."""
        made = cls.__new__(cls)
        made.method, made.path, made.headers = method, path, headers
        made._query, made._source = None, source
        made._raw, made._body, made._json = raw, None, _UNREAD
        return made

    @property
    def query(self) -> MultiMapping[str]:
        if self._query is None:
            assert self._source is not None
            self._query = self._source.query
        return self._query

    @property
    def body(self) -> str:
        if self._body is None:
            self._body = self._raw.decode("utf-8", "replace")
        return self._body

    @property
    def json(self) -> Any:
        if self._json is _UNREAD:
            self._json = _parse_json(self.body)
        return self._json


def compile_path(path: str, where: str) -> re.Pattern[str]:
    """A path like `/users/{id}` or `/api/{rest:.*}` as a regex to fullmatch.

    Raises StubConfigError for braces that are not a parameter or a regex that does not compile.
    """
    parts: list[str] = []
    for index, part in enumerate(_PARAM.split(path)):
        if index % 2 == 0:
            if "{" in part or "}" in part:
                raise StubConfigError(
                    f"{where}: {path!r} has a brace that is not a parameter.",
                    hint="Parameters look like {id} or {rest:.*}; names start with a letter.",
                )
            parts.append(re.escape(part))
        elif plain := _PLAIN.fullmatch(part):
            parts.append(f"(?P<{plain['name']}>[^{{}}/]+)")
        elif custom := _WITH_RE.fullmatch(part):
            parts.append(f"(?P<{custom['name']}>{custom['re']})")
        else:
            raise StubConfigError(
                f"{where}: {part!r} in {path!r} is not a valid parameter.",
                hint="Parameters look like {id} or {rest:.*}.",
            )
    try:
        return re.compile("".join(parts))
    except re.error as exc:
        raise StubConfigError(f"{where}: the path {path!r} does not compile: {exc}.") from None


def _unquote(value: str) -> str:
    """A parameter matched on the path-safe form, fully decoded (as aiohttp does)."""
    return value.replace("%2F", "/").replace("%25", "%")


@dataclass(frozen=True)
class Conditions:
    """A route's `match`: every condition must hold; regexes use re.search."""

    query: tuple[tuple[str, re.Pattern[str]], ...]
    headers: tuple[tuple[str, re.Pattern[str]], ...]
    json: JsonConditions
    body: Bounded[str] | None  # a body may be large: searched with a time limit
    presence: PresenceConditions

    @classmethod
    def of(cls, match: Match) -> Conditions:
        """Compile a `match` block (the model has already checked every regex)."""
        return cls(
            query=tuple((k, re.compile(v)) for k, v in match.query.items()),
            headers=tuple((k, re.compile(v)) for k, v in match.headers.items()),
            json=JsonConditions.of(match.json_),
            body=Bounded(match.body) if match.body is not None else None,
            presence=PresenceConditions.of(match),
        )

    def failure(self, req: Incoming) -> str | None:
        """Why `req` fails these conditions (the first failing one), or None if it meets them."""
        for what, pairs, values in (
            ("query parameter", self.query, req.query),
            ("header", self.headers, req.headers),
        ):
            for name, pattern in pairs:
                found = values.getall(name, [])
                if not found:
                    return f"{what} {name!r} is missing"
                if not any(pattern.search(v) for v in found):
                    return f"{what} {name}={found[0]!r} does not match /{pattern.pattern}/"
        return self._other_failure(req)

    def _other_failure(self, req: Incoming) -> str | None:
        if failed := self.presence.failure(req.query, req.headers):
            return failed
        if failed := self.json.failure(req.json):
            return failed
        if self.body is not None and not self.body.search(req.body):
            return f"the body does not match /{self.body.pattern}/"
        return None

    def holds(self, req: Incoming) -> bool:
        """Whether `req` meets every condition (`failure` is None), without saying why not:
        what routing asks of each candidate route, per request."""
        if self.query:
            query = req.query
            for name, pattern in self.query:
                for value in query.getall(name, ()):
                    if pattern.search(value):
                        break
                else:
                    return False
        if self.headers:
            headers = req.headers
            for name, pattern in self.headers:
                for value in headers.getall(name, ()):
                    if pattern.search(value):
                        break
                else:
                    return False
        return not self.others or self._other_failure(req) is None

    @property
    def others(self) -> bool:
        """Whether there is any condition besides query and header regexes."""
        presence = self.presence
        return bool(
            presence.absent_headers
            or presence.absent_query
            or presence.exact_query is not None
            or self.json.fields
            or self.body is not None
        )


@dataclass(frozen=True)
class Answer:
    """One compiled `response`: templates compiled, ready to render per request."""

    status: int | Text
    headers: tuple[tuple[str, Text], ...]
    body: Text | None
    json: Any  # compiled JSON (strings as Text), or None
    file: str | None
    delay: float
    names: frozenset[str] = frozenset()  # the variables its templates read

    @classmethod
    def of(cls, response: Response, where: str) -> Answer:
        """Compile one response. Raises StubConfigError for template syntax errors."""
        for name, value in response.headers.items():
            if name.lower() == "content-type" and "{" not in value:
                check_charset(value, f"{where}.headers.{name}")
        status = compile_status(response.status, f"{where}.status")
        headers = tuple(
            (name, compile_text(value, f"{where}.headers.{name}"))
            for name, value in response.headers.items()
        )
        body = compile_text(response.body, f"{where}.body") if response.body is not None else None
        json = compile_json(response.json_, f"{where}.json")
        texts = [text for _, text in headers] + [t for t in (status, body) if isinstance(t, Text)]
        return cls(
            status=status,
            headers=headers,
            body=body,
            json=json,
            file=response.file,
            delay=response.delay,
            names=names_in(json).union(*(text.names for text in texts)) or NO_NAMES,
        )


@dataclass
class CompiledRoute:
    """A route ready to dispatch; `responses` are answered in turn, then repeat."""

    spec: Route
    where: str
    pattern: re.Pattern[str]
    conditions: Conditions | None
    answers: tuple[Answer, ...]
    _turn: int = field(default=0, repr=False)
    # Worked out once, for routing (http_match.Router.find):
    name: str = field(init=False)  # "GET /orders/{id}", as journal entries name it
    methods: frozenset[str] | None = field(init=False, repr=False)  # None: any method
    literal: bool = field(init=False, repr=False)  # a path without parameters
    step: ScenarioStep | None = field(init=False, repr=False)  # a scenario state to be in

    def __post_init__(self) -> None:
        spec = self.spec
        self.name = f"{spec.method} {spec.path}"
        wanted = spec.method
        self.methods = None if wanted == "*" else _methods(wanted)
        self.literal = "{" not in spec.path and "}" not in spec.path
        when = spec.scenario is not None and spec.scenario.when is not None
        self.step = spec.scenario if when else None

    def accepts(self, method: str) -> bool:
        """Whether the route takes this method; a GET route takes HEAD too."""
        wanted = self.spec.method
        return wanted in ("*", method) or (wanted == "GET" and method == "HEAD")

    def next_answer(self) -> Answer:
        """The answer for this request; advancing the turn cannot interleave (no await)."""
        answer = self.answers[self._turn % len(self.answers)]
        self._turn += 1
        return answer


@functools.cache
def _methods(wanted: str) -> frozenset[str]:
    """The methods a route for `wanted` takes (one set per method, shared by every route)."""
    return frozenset((wanted, "HEAD") if wanted == "GET" else (wanted,))


def compile_routes(routes: Sequence[Route], service: str) -> list[CompiledRoute]:
    """Compile every route of a service. Raises StubConfigError naming the field at fault."""
    compiled = []
    for index, route in enumerate(routes):
        where = f"services.{service}.routes[{index}]"
        if route.responses:
            answers = [
                Answer.of(r, f"{where}.responses[{n}]") for n, r in enumerate(route.responses)
            ]
        elif route.response:
            answers = [Answer.of(route.response, f"{where}.response")]
        else:
            answers = []
        compiled.append(
            CompiledRoute(
                spec=route,
                where=where,
                pattern=compile_path(route.path, f"{where}.path"),
                conditions=Conditions.of(route.match) if route.match else None,
                answers=tuple(answers),
            )
        )
    return compiled
