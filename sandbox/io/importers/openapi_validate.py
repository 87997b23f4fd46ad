"""Request checks for imported operations, as far as route `match` conditions can express them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sandbox.io.importers._common import as_list, as_map, as_strs
from sandbox.io.importers.openapi_ops import Operation, is_json
from sandbox.io.importers.openapi_refs import Resolver

_TEXT_FORMS = {
    "integer": r"^-?\d+$",
    "number": r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$",
    "boolean": r"^(true|false)$",
}
_JSON_FORMS = {**_TEXT_FORMS, "object": r"^\{", "array": r"^\["}


@dataclass(frozen=True)
class Condition:
    """One check: `section` (query, headers, json, body) and its key, and how it is explained."""

    section: str
    key: str
    pattern: str
    field: str  # what the 400 answer names: `query.limit`, `body.name`
    expected: str


def conditions(op: Operation, resolver: Resolver) -> list[Condition]:
    """Checks for required query parameters and headers and required top-level body fields."""
    found: list[Condition] = []
    for param in op.params:
        if not param.required or param.location not in ("query", "header"):
            continue
        section = "query" if param.location == "query" else "headers"
        pattern, expected = _text_form(param.schema, resolver, param.where)
        label = f"{param.location}.{param.name}"
        found.append(Condition(section, param.name, pattern, label, f"required, {expected}"))
    body = op.body
    if body is None:
        return found
    schema = _flatten(resolver.deref(body.schema, body.where), resolver, body.where)
    if body.required:
        found.append(Condition("body", "", ".", "body", "a request body is required"))
    if not is_json(body.media):
        return found
    props = as_map(schema.get("properties"))
    for name in as_strs(schema.get("required")):
        sub = resolver.deref(props.get(name, {}), body.where)
        kind = _kind(sub)
        pattern = _JSON_FORMS.get(kind, ".*")
        expected = f"required, {kind}" if kind else "required"
        found.append(Condition("json", str(name), pattern, f"body.{name}", expected))
    return found


def match_of(conds: list[Condition]) -> dict[str, Any]:
    """The route `match` that holds when every condition does."""
    match: dict[str, Any] = {}
    for c in conds:
        if c.section == "body":
            match["body"] = c.pattern
        else:
            match.setdefault(c.section, {})[c.key] = c.pattern
    return match


def rejections(method: str, path: str, conds: list[Condition]) -> list[dict[str, Any]]:
    """Routes that answer 400 naming the first failing condition, to follow the operation's routes.

    The route for condition k matches conditions 1..k-1; since the operation's own route did
    not answer, condition k (or a later one) failed. Trying k = n first names the first failure.
    """
    routes: list[dict[str, Any]] = []
    for k in range(len(conds) - 1, -1, -1):
        failed = conds[k]
        route: dict[str, Any] = {"method": method, "path": path}
        if k:
            route["match"] = match_of(conds[:k])
        route["response"] = {
            "status": 400,
            "json": {
                "error": "the request does not fit the API description",
                "field": failed.field,
                "expected": failed.expected,
            },
        }
        routes.append(route)
    return routes


def _text_form(schema: dict[str, Any], resolver: Resolver, where: str) -> tuple[str, str]:
    schema = resolver.deref(schema, where)
    enum = schema.get("enum") if isinstance(schema, dict) else None
    if isinstance(enum, list) and enum:
        choices = "|".join(re.escape(_text(v)) for v in enum)
        return f"^({choices})$", "one of " + ", ".join(_text(v) for v in enum)
    kind = _kind(schema)
    if kind in _TEXT_FORMS:
        return _TEXT_FORMS[kind], f"an {kind}" if kind == "integer" else f"a {kind}"
    return ".*", "present"


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _kind(schema: Any) -> str:
    if not isinstance(schema, dict):
        return ""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "")
    return kind if isinstance(kind, str) else ""


def _flatten(schema: Any, resolver: Resolver, where: str, depth: int = 0) -> dict[str, Any]:
    """An object schema's properties and required names, with allOf parts merged in."""
    if not isinstance(schema, dict) or depth > 4:  # allOf nests a level or two in practice
        return {}
    props = dict(as_map(schema.get("properties")))
    required = as_strs(schema.get("required"))
    for part in as_list(schema.get("allOf")):
        sub = _flatten(resolver.deref(part, where), resolver, where, depth + 1)
        props.update(as_map(sub.get("properties")))
        required += [r for r in as_strs(sub.get("required")) if r not in required]
    return {"properties": props, "required": required}
