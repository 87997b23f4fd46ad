"""Match conditions beyond a regex per value: absent names, an exact query, nested JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from multidict import MultiMapping

from sandbox.profile.models import Match
from sandbox.services.bounded import Bounded

_MISSING = object()


def _show(value: object) -> str:
    """A request value as text for regexes and messages: JSON text for non-strings."""
    return value if isinstance(value, str) else json.dumps(value)


def _same(given: object, wanted: object) -> bool:
    # JSON true is not 1: Python's True == 1 must not make a boolean match a number.
    if isinstance(given, bool) or isinstance(wanted, bool):
        return type(given) is type(wanted) and given == wanted
    return given == wanted


def _compile_json(value: Any) -> Any:
    """Strings become regexes (searched with a time limit: a field may be large), dicts are
    walked (subset match), the rest is kept for equality."""
    if isinstance(value, str):
        return Bounded(value)
    if isinstance(value, dict):
        return {key: _compile_json(item) for key, item in value.items()}
    return value


def lookup(document: Any, path: str) -> Any:
    """`document[path]`, where a dotted path walks into objects and lists (`items.0.id`).

    A key that exists as written (dots included) wins over the dotted walk.
    Returns _MISSING when nothing is there.
    """
    if isinstance(document, dict) and path in document:
        return document[path]
    current = document
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def _json_failure(given: Any, wanted: Any, where: str) -> str | None:
    """Why `given` (the value at `where`) does not meet `wanted`, or None."""
    if isinstance(wanted, Bounded):
        if not wanted.search(_show(given)):
            return f"JSON field {where}={_show(given)} does not match /{wanted.pattern}/"
        return None
    if isinstance(wanted, dict):
        if not isinstance(given, dict):
            return f"JSON field {where}={_show(given)} is not an object"
        for key, inner in wanted.items():
            if key not in given:
                return f"JSON field {where}.{key!s} is missing"
            if failed := _json_failure(given[key], inner, f"{where}.{key}"):
                return failed
        return None
    if not _same(given, wanted):
        return f"JSON field {where}={_show(given)} is not {_show(wanted)}"
    return None


@dataclass(frozen=True)
class JsonConditions:
    """`match.json`: each key is a top-level field or a dotted path (`user.address.city`);
    a string is a regex, an object matches field by field (extra fields allowed), anything
    else must be equal."""

    fields: tuple[tuple[str, Any], ...]

    @classmethod
    def of(cls, wanted: dict[str, Any]) -> JsonConditions:
        """Compile `match.json` (the model has already checked every regex)."""
        return cls(tuple((key, _compile_json(value)) for key, value in wanted.items()))

    def failure(self, document: Any) -> str | None:
        """Why the parsed body fails, or None."""
        if not self.fields:
            return None
        if not isinstance(document, dict):
            return "the request body is not a JSON object"
        for key, wanted in self.fields:
            given = lookup(document, key)
            if given is _MISSING:
                return f"JSON field {key!r} is missing"
            if failed := _json_failure(given, wanted, key):
                return failed
        return None


@dataclass(frozen=True)
class PresenceConditions:
    """`match.absent` and `match.exact_query`."""

    absent_headers: tuple[str, ...]
    absent_query: tuple[str, ...]
    exact_query: frozenset[str] | None  # the only parameter names allowed, when exact

    @classmethod
    def of(cls, match: Match) -> PresenceConditions:
        """Compile the presence conditions of a `match` block."""
        absent = match.absent
        return cls(
            absent_headers=tuple(absent.headers) if absent else (),
            absent_query=tuple(absent.query) if absent else (),
            exact_query=frozenset(match.query) if match.exact_query else None,
        )

    def failure(self, query: MultiMapping[str], headers: MultiMapping[str]) -> str | None:
        """Why the request fails, or None."""
        for name in self.absent_headers:
            if name in headers:
                return f"header {name!r} is present but must be absent"
        for name in self.absent_query:
            if name in query:
                return f"query parameter {name!r} is present but must be absent"
        if self.exact_query is not None:
            extra = sorted({name for name in query if name not in self.exact_query})
            if extra:
                return f"query parameter {extra[0]!r} is not expected (exact_query)"
        return None
