"""WireMock request patterns as route paths and `match` conditions, reporting what cannot map."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from sandbox.io.importers import _regex as rx
from sandbox.io.importers._paths import check_path, escape_template, literal_path, regex_path
from sandbox.io.importers._where import Where

_PLACEHOLDER = re.compile(r"^\{([_a-zA-Z][_a-zA-Z0-9]*)\}$")
_TOP_KEY = re.compile(r"^\$(?:\.([_a-zA-Z][_a-zA-Z0-9-]*)|\[['\"]([^'\"]+)['\"]\])$")
_IGNORED = {"caseInsensitive"}
REQUEST_KEYS = {
    "url", "urlPath", "urlPattern", "urlPathPattern", "urlPathTemplate", "method",
    "headers", "queryParameters", "bodyPatterns", "pathParameters",
}  # fmt: skip


@dataclass
class PathInfo:
    """How response templates can name parts of the request path.

    `segments`: Jinja text per path segment (literal or `{{ path.x }}`), or None when the path
    is a regex whose text is `path.wm`.
    """

    segments: list[str] | None
    names: set[str] = field(default_factory=set)  # path template variables


def _decoded(path: str) -> str:
    # the stub matches decoded paths (an encoded slash stays encoded, as aiohttp does)
    return unquote(path.replace("%2F", "%252F").replace("%2f", "%252F"))


def _segments(path: str) -> PathInfo:
    return PathInfo([escape_template(s) for s in path.split("/")[1:]])


def route_path(req: dict[str, Any], where: Where) -> tuple[str, PathInfo, dict[str, str]] | None:
    """The route path, the template path info, and query conditions taken from `url`."""
    query: dict[str, str] = {}
    try:
        if "url" in req:
            raw = str(req["url"])
            path, mark, text = raw.partition("?")
            if not path.startswith("/"):
                raise ValueError(f"url {raw!r} does not start with /")
            for name, value in parse_qsl(text, keep_blank_values=True):
                query[name] = rx.exact(value)
            if mark:
                where.at("url").approximate(
                    "url matches the exact query string; the route checks each parameter, so "
                    "extra parameters or another order also match"
                )
            else:
                where.at("url").approximate(
                    "url with no query string refuses requests that carry one; the route "
                    "ignores the query string"
                )
            path = _decoded(path)
            return literal_path(path), _segments(path), query
        if "urlPath" in req:
            path = _decoded(str(req["urlPath"]))
            if not path.startswith("/"):
                raise ValueError(f"urlPath {path!r} does not start with /")
            return literal_path(path), _segments(path), query
        if "urlPathTemplate" in req:
            return _template_path(req, where)
        if "urlPathPattern" in req:
            path = regex_path(str(req["urlPathPattern"]))
            check_path(path)
            return path, PathInfo(None), query
        if "urlPattern" in req:
            pattern = str(req["urlPattern"])
            cut = re.search(r"\\\?|\[\?\]", pattern)
            if cut:
                where.at("urlPattern").approximate(
                    f"the query part {pattern[cut.start() :]!r} of the pattern is dropped: "
                    "the route matches the path only"
                )
                pattern = pattern[: cut.start()]
            elif not pattern.endswith(".*"):
                where.at("urlPattern").approximate(
                    "urlPattern matches the path and query string together; the route "
                    "matches the path only, so a request with a query string matches too"
                )
            path = regex_path(pattern)
            check_path(path)
            return path, PathInfo(None), query
    except ValueError as exc:
        where.drop(f"the mapping is left out: {exc}")
        return None
    return "/{wm:.*}", PathInfo(None), query


def _template_path(req: dict[str, Any], where: Where) -> tuple[str, PathInfo, dict[str, str]]:
    template = str(req["urlPathTemplate"])
    params = req.get("pathParameters") or {}
    parts, segments, names = [], [], set()
    for segment in template.split("/")[1:]:
        found = _PLACEHOLDER.match(segment)
        if not found:
            if "{" in segment or "}" in segment:
                raise ValueError(f"urlPathTemplate segment {segment!r} is not {{name}}")
            parts.append(segment)
            segments.append(escape_template(segment))
            continue
        name = found.group(1)
        names.add(name)
        segments.append(f"{{{{ path.{name} }}}}")
        wanted = (
            _segment_regex(params[name], where.at("pathParameters", name))
            if name in params
            else None
        )
        parts.append(f"{{{name}:{wanted}}}" if wanted else f"{{{name}}}")
    path = "/" + "/".join(parts)
    check_path(path)
    return path, PathInfo(segments, names), {}


def _segment_regex(spec: Any, where: Where) -> str | None:
    """A path parameter condition as the parameter's own regex (one segment, whole)."""
    if isinstance(spec, dict) and len(spec) == 1:
        ((op, value),) = spec.items()
        try:
            if op == "equalTo":
                return re.escape(str(value)).replace("{", "\\x7b").replace("}", "\\x7d")
            if op == "matches":
                return f"(?:{rx.from_java(str(value))})(?<!/)"
            if op == "contains":
                return f"[^/]*{re.escape(str(value))}[^/]*"
        except ValueError as exc:
            where.drop(f"{exc}; the condition is left out")
            return None
    where.drop("only equalTo, contains and matches on a path parameter can be expressed")
    return None


def value_regex(spec: Any, where: Where) -> str | None:
    """A WireMock string matcher (`{"equalTo": "x"}`...) as a searched regex, or None (reported)."""
    if not isinstance(spec, dict):
        where.drop(f"{json.dumps(spec)} is not a matcher object; the condition is left out")
        return None
    ignore_case = bool(spec.get("caseInsensitive"))
    operators = [k for k in spec if k not in _IGNORED]
    if len(operators) != 1:
        where.drop(f"a matcher with {operators or 'no operator'} is left out")
        return None
    op = operators[0]
    value = spec[op]
    try:
        if op == "equalTo":
            return rx.exact(str(value), ignore_case)
        if op == "contains":
            return rx.substring(str(value), ignore_case)
        if op == "doesNotContain":
            return rx.negate(rx.substring(str(value), ignore_case))
        if op == "matches":
            return rx.whole(rx.from_java(str(value)), ignore_case)
        if op == "doesNotMatch":
            return rx.negate(rx.whole(rx.from_java(str(value)), ignore_case))
    except ValueError as exc:
        where.at(op).drop(f"{exc}; the condition is left out")
        return None
    if op == "absent":
        where.at(op).drop("a condition on absence cannot be expressed; it is left out")
    else:
        where.at(op).drop(f"the {op} matcher has no counterpart; the condition is left out")
    return None


def top_key(expression: str) -> str | None:
    """The field of a JSONPath naming one top-level field (`$.name`, `$['name']`), else None."""
    found = _TOP_KEY.match(expression.strip())
    return (found.group(1) or found.group(2)) if found else None
