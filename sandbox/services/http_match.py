"""Which route answers a request (profile order, scenario states included), and for a request
no route answered, the nearest routes with the first condition each one failed."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

from sandbox.services.http_index import PathIndex, QueryNarrowing, literal_of
from sandbox.services.http_routes import (
    _PARAM,
    _PLAIN,
    _WITH_RE,
    CompiledRoute,
    Incoming,
    _unquote,
)
from sandbox.services.journal import Miss
from sandbox.services.scenarios import StubState

CLOSE_ENOUGH = 0.6  # difflib ratio from which a route's path counts as a near miss


def route_name(route: CompiledRoute) -> str:
    return route.name


def _loose(path: str) -> tuple[re.Pattern[str], dict[str, re.Pattern[str]]] | None:
    """`path` with every `{name:regex}` parameter taking anything, and those regexes: tells
    a path whose parameter failed its pattern from a different path."""
    parts: list[str] = []
    custom: dict[str, re.Pattern[str]] = {}
    for index, part in enumerate(_PARAM.split(path)):
        if index % 2 == 0:
            parts.append(re.escape(part))
        elif plain := _PLAIN.fullmatch(part):
            parts.append(f"(?P<{plain['name']}>[^/]+)")
        elif found := _WITH_RE.fullmatch(part):
            parts.append(f"(?P<{found['name']}>.+?)")
            custom[found["name"]] = re.compile(found["re"])
    if not custom:
        return None
    return re.compile("".join(parts)), custom


@dataclass
class Router:
    """A service's compiled routes with what each needs to say why it did not answer."""

    routes: Sequence[CompiledRoute]

    def __post_init__(self) -> None:
        self._loose = [_loose(route.spec.path) for route in self.routes]
        self._index = PathIndex([route.spec.path for route in self.routes])
        literals = [_literal_query(route) for route in self.routes]
        self._narrowing = {
            id(candidates): narrowing
            for candidates in self._index.lists()
            if (narrowing := QueryNarrowing.of(candidates, literals)) is not None
        }

    def find(
        self, req: Incoming, state: StubState
    ) -> tuple[int, CompiledRoute, dict[str, str]] | None:
        """The first route, in profile order, that takes `req` now: its index, itself and its
        path parameters."""
        routes, path, method = self.routes, req.path, req.method
        last: re.Pattern[str] | None = None
        last_found: re.Match[str] | None = None
        candidates = self._index.candidates(path)
        if self._narrowing and (narrowing := self._narrowing.get(id(candidates))):
            candidates = narrowing.candidates(req.query.getall(narrowing.name, ()))
        for index in candidates:
            route = routes[index]
            found: re.Match[str] | None = None
            if not route.literal:  # the index offers a literal route for its own path only
                # Routes on one path share their compiled pattern (re's cache): match once.
                if route.pattern is not last:
                    last, last_found = route.pattern, route.pattern.fullmatch(path)
                found = last_found
                if found is None:
                    continue
            if (
                (route.methods is None or method in route.methods)
                and (route.conditions is None or route.conditions.holds(req))
                and (route.step is None or state.failure(route.step) is None)
            ):
                if found is None:
                    return index, route, {}
                params = {name: _unquote(value) for name, value in found.groupdict().items()}
                return index, route, params
        return None

    def nearest(self, req: Incoming, state: StubState, limit: int = 3) -> list[Miss]:
        """Routes that almost answered `req`, closest first, one per method and path.

        First routes whose path and method fit but a `match` condition or the scenario
        state failed; then routes whose path parameter failed its pattern; then a wrong
        method; then routes that would match without a leading part of the path; then
        routes whose path is similar (difflib ratio), most similar first.
        """
        ranked: list[tuple[float, int, Miss]] = []
        for index, route in enumerate(self.routes):
            found = self._why(index, route, req, state)
            if found is not None:
                rank, why = found
                ranked.append((rank, index, Miss(index, route.spec.method, route.spec.path, why)))
        ranked.sort(key=lambda item: (item[0], item[1]))
        seen: set[str] = set()
        misses: list[Miss] = []
        for _, _, miss in ranked:
            if miss.name not in seen:  # a path split over many routes is listed once
                seen.add(miss.name)
                misses.append(miss)
        return misses[:limit]

    def _why(
        self, index: int, route: CompiledRoute, req: Incoming, state: StubState
    ) -> tuple[float, str] | None:
        """(rank, why) for a route that did not answer `req`, or None when it is not near."""
        method_ok = route.accepts(req.method)
        wrong_method = f"method {req.method} does not match {route.spec.method}"
        if route.pattern.fullmatch(req.path):
            if not method_ok:
                return 2.0, wrong_method
            if route.conditions is not None and (failed := route.conditions.failure(req)):
                return 0.0, failed
            if failed := state.failure(route.spec.scenario):
                return 0.0, failed
            return None
        loose = self._loose[index]
        if loose is not None and (found := loose[0].fullmatch(req.path)):
            for name, pattern in loose[1].items():
                value = _unquote(found[name])
                if not pattern.fullmatch(found[name]):
                    why = f"path parameter {name}={value!r} does not match /{pattern.pattern}/"
                    return (1.0 if method_ok else 2.5), why
        if method_ok and (prefix := _prefix_in_the_way(route, req.path)):
            return 3.0, f"the path would match without {prefix} in front"
        ratio = SequenceMatcher(None, req.path, route.spec.path).ratio()
        if ratio >= CLOSE_ENOUGH:
            return 5.0 - ratio, f"path differs ({ratio:.0%} similar)"
        return None


def _literal_query(route: CompiledRoute) -> dict[str, str]:
    """The route's query conditions that take one literal value (`^k19$`), by name."""
    if route.conditions is None:
        return {}
    return {
        name: text
        for name, pattern in route.conditions.query
        if pattern.flags == re.UNICODE and (text := literal_of(pattern.pattern)) is not None
    }


def _prefix_in_the_way(route: CompiledRoute, path: str) -> str | None:
    """The leading segments of `path` without which `route` would match it, if any: the
    usual slip when a proxy forwards `/api/users/1` to a service whose route is `/users/{id}`."""
    segments = path.split("/")
    for cut in range(2, len(segments)):
        if route.pattern.fullmatch("/" + "/".join(segments[cut:])):
            return "/".join(segments[:cut])
    return None
