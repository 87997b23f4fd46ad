"""WireMock headers, query parameters, cookies and body patterns as a route's `match`."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from sandbox.io.importers import _regex as rx
from sandbox.io.importers._paths import add_condition as add
from sandbox.io.importers._where import Where
from sandbox.io.importers._wiremock_request import top_key, value_regex

_PRESENT = r"^(?!(?:null|\{\}|\[\])\Z)"  # JSONPath presence: not null, not empty
_NUMBER = r"^-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?\Z"
_UNIT = "${json-unit."


def build_match(req: dict[str, Any], where: Where, query: dict[str, str]) -> dict[str, Any]:
    """The `match` block for a request (empty when nothing is checked); losses are reported."""
    headers: dict[str, str] = {}
    body: list[str] = []
    fields: dict[str, Any] = {}
    for name, spec in (req.get("headers") or {}).items():
        if (pattern := value_regex(spec, where.at("headers", name))) is not None:
            add(headers, name, pattern, fold=True)
    for name, spec in (req.get("queryParameters") or {}).items():
        if (pattern := value_regex(spec, where.at("queryParameters", name))) is not None:
            add(query, name, pattern)
    for name, spec in (req.get("cookies") or {}).items():
        _cookie(headers, name, spec, where.at("cookies", name))
    if isinstance(auth := req.get("basicAuthCredentials"), dict):
        token = f"{auth.get('username', '')}:{auth.get('password', '')}".encode()
        add(headers, "Authorization", rx.exact("Basic " + base64.b64encode(token).decode()))
    for index, spec in enumerate(req.get("bodyPatterns") or []):
        _body_pattern(spec, where.at("bodyPatterns", index), body, fields)
    match: dict[str, Any] = {}
    if query:
        match["query"] = query
    if headers:
        match["headers"] = headers
    if fields:
        match["json"] = fields
    if body:
        combined = body[0]
        for pattern in body[1:]:
            combined = rx.both(combined, pattern)
        match["body"] = combined
    return match


def _cookie(headers: dict[str, str], name: str, spec: Any, where: Where) -> None:
    if isinstance(spec, dict) and set(spec) == {"equalTo"}:
        pair = re.escape(f"{name}={spec['equalTo']}")
        add(headers, "Cookie", f"(?:^|;\\s*){pair}(?:;|\\Z)", fold=True)
    else:
        where.drop("only equalTo on a cookie can be expressed (as a Cookie header condition)")


def _body_pattern(spec: Any, where: Where, body: list[str], fields: dict[str, Any]) -> None:
    if not isinstance(spec, dict):
        where.drop("a body pattern that is not an object is left out")
    elif "equalToJson" in spec:
        _equal_to_json(spec, where, fields)
    elif "matchesJsonPath" in spec:
        _json_path(spec["matchesJsonPath"], where.at("matchesJsonPath"), fields)
    elif (pattern := value_regex(spec, where)) is not None:
        body.append(pattern)


def _set_field(fields: dict[str, Any], key: str, wanted: Any, where: Where) -> None:
    if key not in fields:
        fields[key] = wanted
    elif isinstance(fields[key], str) and isinstance(wanted, str):
        fields[key] = rx.both(fields[key], wanted)
    else:
        where.drop(f"a second condition on the JSON field {key!r} is left out")


def _equal_to_json(spec: dict[str, Any], where: Where, fields: dict[str, Any]) -> None:
    value = spec["equalToJson"]
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            where.drop("equalToJson holds text that is not JSON; the condition is left out")
            return
    if not isinstance(value, dict):
        where.drop(
            "equalToJson of a JSON array or value cannot be expressed (the route's `json` "
            "checks fields of an object); the condition is left out"
        )
        return
    if not spec.get("ignoreExtraElements"):
        where.approximate("the route checks the listed top-level fields; extra fields also match")
    for key, item in value.items():
        here = where.at("equalToJson", key)
        if isinstance(item, str) and item.startswith(_UNIT):
            if (pattern := _placeholder(item, here)) is not None:
                _set_field(fields, key, pattern, here)
        elif _UNIT in json.dumps(item):
            here.drop("a JsonUnit placeholder inside a nested value cannot be expressed")
        elif isinstance(item, str):
            _set_field(fields, key, rx.exact(item), here)
        else:
            if isinstance(item, dict | list) and (
                spec.get("ignoreExtraElements") or spec.get("ignoreArrayOrder")
            ):
                here.approximate("a nested value is compared exactly (extra elements, order)")
            _set_field(fields, key, item, here)


def _placeholder(item: str, where: Where) -> str | None:
    kind = item[len(_UNIT) :]
    if kind == "ignore}":
        return "(?s:.*)"
    if kind.startswith("regex}"):
        try:
            return rx.whole(rx.from_java(kind[len("regex}") :]))
        except ValueError as exc:
            where.drop(f"{exc}; the condition is left out")
            return None
    patterns = {
        "any-string}": "(?s:.*)",
        "any-number}": _NUMBER,
        "any-boolean}": "^(?:true|false)\\Z",
    }
    if kind in patterns:
        where.approximate(f"{item} is checked on the value's text, not its JSON type")
        return patterns[kind]
    where.drop(f"the placeholder {item} has no counterpart; the condition is left out")
    return None


def _json_path(spec: Any, where: Where, fields: dict[str, Any]) -> None:
    expression = spec.get("expression") if isinstance(spec, dict) else spec
    key = top_key(str(expression)) if expression is not None else None
    if key is None:
        where.drop(
            f"the JSONPath {expression!r} reaches below the top level or filters; only "
            "`$.field` can be expressed, so the condition is left out"
        )
        return
    if not isinstance(spec, dict):
        _set_field(fields, key, _PRESENT, where)
        return
    rest = {k: v for k, v in spec.items() if k != "expression"}
    if set(rest) == {"equalToJson"}:
        wanted = rest["equalToJson"]
        try:
            wanted = json.loads(wanted) if isinstance(wanted, str) else wanted
        except json.JSONDecodeError:
            where.drop("equalToJson holds text that is not JSON; the condition is left out")
            return
        where.approximate("the selected value is compared exactly (no extra elements allowed)")
        _set_field(fields, key, rx.exact(wanted) if isinstance(wanted, str) else wanted, where)
    elif (pattern := value_regex(rest, where)) is not None:
        _set_field(fields, key, pattern, where)
