"""HTTP stub routing: profile-order dispatch with `match` conditions, and 404 near misses."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any

from multidict import MultiMapping

from sandbox.errors import StubConfigError
from sandbox.profile.models import Match, Response, Route
from sandbox.services.templates import Text, compile_json, compile_text

# aiohttp's route syntax: `{name}` is one path segment, `{name:regex}` is the regex (which
# may itself hold `{m,n}` quantifiers, hence the nested braces).
_PARAM = re.compile(r"(\{[_a-zA-Z][^{}]*(?:\{[^{}]*\}[^{}]*)*\})")
_PLAIN = re.compile(r"\{(?P<name>[_a-zA-Z][_a-zA-Z0-9]*)\}")
_WITH_RE = re.compile(r"\{(?P<name>[_a-zA-Z][_a-zA-Z0-9]*):(?P<re>.+)\}")
CLOSE_ENOUGH = 0.6  # difflib ratio from which a route's path counts as a near miss


@dataclass(frozen=True)
class Incoming:
    """What routing and templates see of a request (body already read)."""

    method: str
    path: str  # decoded except %2F and %25, as aiohttp matches: an encoded / stays in its segment
    query: MultiMapping[str]
    headers: MultiMapping[str]  # case-insensitive
    body: str
    json: Any = None  # the parsed body, or None when it is empty or not JSON


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


def _show(value: object) -> str:
    """A request value as text for regexes and messages: JSON text for non-strings."""
    return value if isinstance(value, str) else json.dumps(value)


def _same(given: object, wanted: object) -> bool:
    # JSON true is not 1: Python's True == 1 must not make a boolean match a number.
    if isinstance(given, bool) or isinstance(wanted, bool):
        return type(given) is type(wanted) and given == wanted
    return given == wanted


@dataclass(frozen=True)
class Conditions:
    """A route's `match`: every condition must hold; regexes use re.search."""

    query: tuple[tuple[str, re.Pattern[str]], ...]
    headers: tuple[tuple[str, re.Pattern[str]], ...]
    json: tuple[tuple[str, re.Pattern[str] | Any], ...]
    body: re.Pattern[str] | None

    @classmethod
    def of(cls, match: Match) -> Conditions:
        """Compile a `match` block (the model has already checked every regex)."""
        return cls(
            query=tuple((k, re.compile(v)) for k, v in match.query.items()),
            headers=tuple((k, re.compile(v)) for k, v in match.headers.items()),
            json=tuple(
                (k, re.compile(v) if isinstance(v, str) else v) for k, v in match.json_.items()
            ),
            body=re.compile(match.body) if match.body is not None else None,
        )

    def holds(self, req: Incoming) -> bool:
        """Whether `req` meets every condition: `failure(req) is None`, without wording why."""
        for pairs, values in ((self.query, req.query), (self.headers, req.headers)):
            for name, pattern in pairs:
                if not any(pattern.search(v) for v in values.getall(name, ())):
                    return False
        if self.json:
            found = req.json
            if not isinstance(found, dict):
                return False
            for key, wanted in self.json:
                if key not in found:
                    return False
                given = found[key]
                if isinstance(wanted, re.Pattern):
                    if not wanted.search(_show(given)):
                        return False
                elif not _same(given, wanted):
                    return False
        return self.body is None or self.body.search(req.body) is not None

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
        if self.json:
            if not isinstance(req.json, dict):
                return "the request body is not a JSON object"
            for key, wanted in self.json:
                if key not in req.json:
                    return f"JSON field {key!r} is missing"
                given = req.json[key]
                if isinstance(wanted, re.Pattern):
                    if not wanted.search(_show(given)):
                        return f"JSON field {key}={_show(given)} does not match /{wanted.pattern}/"
                elif not _same(given, wanted):
                    return f"JSON field {key}={_show(given)} is not {_show(wanted)}"
        if self.body is not None and not self.body.search(req.body):
            return f"the body does not match /{self.body.pattern}/"
        return None


@dataclass(frozen=True)
class Answer:
    """One compiled `response`: templates compiled, ready to render per request."""

    status: int
    headers: tuple[tuple[str, Text], ...]
    body: Text | None
    json: Any  # compiled JSON (strings as Text), or None
    file: str | None
    delay: float

    @classmethod
    def of(cls, response: Response, where: str) -> Answer:
        """Compile one response. Raises StubConfigError for template syntax errors."""
        return cls(
            status=response.status,
            headers=tuple(
                (name, compile_text(value, f"{where}.headers.{name}"))
                for name, value in response.headers.items()
            ),
            body=compile_text(response.body, f"{where}.body")
            if response.body is not None
            else None,
            json=compile_json(response.json_, f"{where}.json"),
            file=response.file,
            delay=response.delay,
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

    def accepts(self, method: str) -> bool:
        """Whether the route takes this method; a GET route takes HEAD too."""
        wanted = self.spec.method
        return wanted in ("*", method) or (wanted == "GET" and method == "HEAD")

    def next_answer(self) -> Answer:
        """The answer for this request; advancing the turn cannot interleave (no await)."""
        answer = self.answers[self._turn % len(self.answers)]
        self._turn += 1
        return answer


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


def find(
    routes: Sequence[CompiledRoute], req: Incoming
) -> tuple[CompiledRoute, dict[str, str]] | None:
    """The first route, in profile order, that takes `req`, with its path parameters."""
    last: re.Pattern[str] | None = None
    found: re.Match[str] | None = None
    for route in routes:
        if route.pattern is not last:  # routes in a row often share a path (and its regex)
            last, found = route.pattern, route.pattern.fullmatch(req.path)
        if (
            found
            and route.accepts(req.method)
            and (route.conditions is None or route.conditions.holds(req))
        ):
            return route, {name: _unquote(value) for name, value in found.groupdict().items()}
    return None


def _prefix_in_the_way(route: CompiledRoute, path: str) -> str | None:
    """The leading segments of `path` without which `route` would match it, if any: the
    usual slip when a proxy forwards `/api/users/1` to a service whose route is `/users/{id}`."""
    segments = path.split("/")
    for cut in range(2, len(segments)):
        if route.pattern.fullmatch("/" + "/".join(segments[cut:])):
            return "/".join(segments[:cut])
    return None


def near_misses(
    routes: Sequence[CompiledRoute], req: Incoming, limit: int = 3
) -> list[dict[str, str]]:
    """Routes that almost answered `req`, each with why it did not; closest first.

    First the routes whose path matched (wrong method, or a failed `match` condition), in
    profile order; then routes that would match without a leading part of the path; then
    routes whose path is similar by difflib ratio, most similar first.
    """
    matched: list[dict[str, str]] = []
    prefixed: list[dict[str, str]] = []
    similar: list[tuple[float, dict[str, str]]] = []
    for route in routes:
        row = {"method": route.spec.method, "path": route.spec.path}
        if route.pattern.fullmatch(req.path):
            if not route.accepts(req.method):
                wrong = f"method {req.method} does not match {row['method']}"
                matched.append({**row, "why": wrong})
            elif route.conditions is not None and (failed := route.conditions.failure(req)):
                matched.append({**row, "why": failed})
        elif route.accepts(req.method) and (prefix := _prefix_in_the_way(route, req.path)):
            prefixed.append({**row, "why": f"the path would match without {prefix} in front"})
        elif (ratio := SequenceMatcher(None, req.path, route.spec.path).ratio()) >= CLOSE_ENOUGH:
            similar.append((ratio, {**row, "why": f"path differs ({ratio:.0%} similar)"}))
    similar.sort(key=lambda pair: -pair[0])
    return (matched + prefixed + [row for _, row in similar])[:limit]
