"""WireMock's Handlebars response templates as Jinja, for the request model parts that map."""

from __future__ import annotations

import re

from sandbox.io.importers._paths import escape_template
from sandbox.io.importers._where import Where
from sandbox.io.importers._wiremock_request import PathInfo

_EXPR = re.compile(r"\{\{\{?(.*?)\}?\}\}", re.S)
_SEGMENT = re.compile(r"^request\.(?:path|pathSegments)\.\[?(\d+)\]?$")
_NAMED = re.compile(r"^request\.path\.\[?([_a-zA-Z][_a-zA-Z0-9]*)\]?$")
_QUERY = re.compile(r"^request\.query\.\[?([^.\[\]\s]+)\]?(?:\.(?:\[0\]|0|first))?$")
_HEADER = re.compile(r"^request\.headers\.\[?([^\[\]\s]+?)\]?(?:\.(?:\[0\]|0|first))?$")
_JSON_PATH = re.compile(r"^jsonPath\s+request\.body\s+'(\$[^']*)'(?:\s+default\s*=\s*'([^']*)')?$")
_STEP = re.compile(r"\.([_a-zA-Z][_a-zA-Z0-9-]*)|\[(\d+)\]|\[['\"]([^'\"]+)['\"]\]")


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _json_steps(expression: str) -> str | None:
    rest, steps = expression[1:], []
    while rest:
        step = _STEP.match(rest)
        if not step:
            return None
        name, index, quoted = step.groups()
        steps.append(f"[{index}]" if index is not None else f"[{_quote(name or quoted)}]")
        rest = rest[step.end() :]
    return "json" + "".join(steps) if steps else None


def expression(expr: str, info: PathInfo) -> str | None:
    """One Handlebars expression as Jinja text, or None when it has no counterpart."""
    expr = " ".join(expr.split())
    if expr == "request.path":
        if info.segments is None:
            return "/{{ path.wm }}"
        return "/" + "/".join(info.segments)
    if expr in ("request.body", "request.method"):
        return "{{ " + expr.removeprefix("request.") + " }}"
    if found := _SEGMENT.match(expr):
        index = int(found.group(1))
        if info.segments is None:
            return f"{{{{ path.wm.split('/')[{index}]|default('') }}}}"
        return info.segments[index] if index < len(info.segments) else ""
    if (found := _NAMED.match(expr)) and found.group(1) in info.names:
        return f"{{{{ path.{found.group(1)} }}}}"
    if found := _QUERY.match(expr):
        return f"{{{{ query[{_quote(found.group(1))}]|default('') }}}}"
    if found := _HEADER.match(expr):
        return f"{{{{ headers[{_quote(found.group(1))}]|default('') }}}}"
    if (found := _JSON_PATH.match(expr)) and (steps := _json_steps(found.group(1))):
        return f"{{{{ {steps}|default({_quote(found.group(2) or '')}) }}}}"
    return None


def translate(text: str, where: Where, info: PathInfo) -> str:
    """A templated WireMock string as Jinja; if any part cannot map, the text is kept literal."""
    out: list[str] = []
    failed: list[str] = []
    last = 0
    for found in _EXPR.finditer(text):
        out.append(escape_template(text[last : found.start()]))
        jinja = expression(found.group(1), info)
        if jinja is None:
            failed.append(found.group(0))
        else:
            out.append(jinja)
        last = found.end()
    out.append(escape_template(text[last:]))
    if failed:
        where.drop(
            f"template {', '.join(failed[:3])} has no counterpart; the text is sent literally"
        )
        return escape_template(text)
    return "".join(out)
