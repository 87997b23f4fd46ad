"""One mountebank imposter as a service: http stubs as routes, tcp stubs as rules."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from sandbox.io.importers import _regex as rx
from sandbox.io.importers._mountebank_predicates import Cond, Context, conditions
from sandbox.io.importers._mountebank_responses import Answer, answers, http_response
from sandbox.io.importers._paths import add_condition, check_path, literal_path, regex_path
from sandbox.io.importers._where import Where

ANY_PATH = "/{wm:.*}"
_PATH_START = re.compile(r"^(\(\?i:)?\^/")


def http_routes(
    imposter: dict[str, Any], where: Where, copies: dict[str, bytes], tag: str
) -> list[dict[str, Any]]:
    """Routes in stub order, then a catch-all answering like mountebank when nothing matches."""
    default = imposter.get("defaultResponse") or {}
    routes = []
    for index, stub in enumerate(imposter.get("stubs") or []):
        here = where.at("stubs", index)
        if not isinstance(stub, dict):
            here.drop("a stub that is not an object is left out")
            continue
        route = _route(stub, here, default, copies, f"{tag}-{index}")
        if route is not None:
            routes.append(route)
    # mountebank answers a request no stub matches with its default response (200, empty)
    fallback = http_response(
        Answer(dict(default), None, 0.0, where.at("defaultResponse")), copies, f"{tag}-default"
    )
    routes.append({"path": ANY_PATH, "response": fallback or {}})
    return routes


def _route(
    stub: dict[str, Any], where: Where, default: dict[str, Any], copies: dict[str, bytes], tag: str
) -> dict[str, Any] | None:
    conds = conditions(stub.get("predicates"), where.at("predicates"), Context("http"))
    route: dict[str, Any] = {}
    methods = [c for c in conds if c.field == "method"]
    if methods:
        route["method"] = str(methods[0].literal).upper()
        if len({str(c.literal).upper() for c in methods}) > 1:
            where.at("predicates").drop("two different methods never match; the first is kept")
    try:
        route["path"] = _path([c for c in conds if c.field == "path"])
    except ValueError as exc:
        where.at("predicates").drop(f"the stub is left out: {exc}")
        return None
    match: dict[str, Any] = {}
    for field in ("query", "headers", "json"):
        found: dict[str, str] = {}
        for cond in (c for c in conds if c.field == field):
            add_condition(found, str(cond.key), cond.regex, fold=field == "headers")
        if found:
            match[field] = found
    body = [c.regex for c in conds if c.field == "body"]
    if body:
        combined = body[0]
        for regex in body[1:]:
            combined = rx.both(combined, regex)
        match["body"] = combined
    if match:
        route["match"] = match
    cycle = answers(stub.get("responses"), where.at("responses"), default)
    faults = [a for a in cycle if a.fault]
    replies = [
        r for n, a in enumerate(cycle) if (r := http_response(a, copies, f"{tag}-{n}")) is not None
    ]
    if replies:
        for answer in faults:
            answer.where.at("fault").drop(
                "a fault among other answers is left out (a route either faults or answers)"
            )
        route["responses" if len(replies) > 1 else "response"] = (
            replies if len(replies) > 1 else replies[0]
        )
    elif faults:
        route["fault"] = faults[0].fault
        if len({a.fault for a in faults}) > 1:
            where.at("responses").drop("different faults in turn: only the first is kept")
        if any(a.delay_ms for a in faults):
            where.at("responses").drop("a route with a fault has no delay; the wait is left out")
    else:
        where.drop("a stub with no answer that can be expressed is left out")
        return None
    return route


def _path(conds: list[Cond]) -> str:
    if not conds:
        return ANY_PATH
    if len(conds) == 1 and conds[0].literal is not None and conds[0].literal.startswith("/"):
        value = conds[0].literal
        if not conds[0].ignore_case or value.lower() == value.upper():
            return literal_path(value)
        braces = {"{": "\\x7b", "}": "\\x7d"}
        inner = "".join(braces.get(c) or re.escape(c) for c in value[1:])
        path = "/{wm:(?i:" + inner + ")}"
    else:
        regex = conds[0].regex
        for cond in conds[1:]:
            regex = rx.both(regex, cond.regex)
        path = _searched_path(regex)
    check_path(path)
    return path


def _searched_path(regex: str) -> str:
    """A route path matching the paths in which `regex` is found (re.search)."""
    start = _PATH_START.match(regex)
    if start and "|" not in regex:
        # anchored at `/`: the route's own leading `/` stands for it
        inner = (start.group(1) or "") + regex[start.end() :]
        exact = regex.endswith(("\\Z", "\\Z)"))
        return "/{wm:" + inner + ("" if exact else "(?s:.*)") + "}"
    return regex_path(f"(?s:.*?)(?:{regex})(?s:.*)")


def tcp_spec(imposter: dict[str, Any], where: Where) -> dict[str, Any]:
    """The `tcp` block: one rule per stub, silent when nothing matches (as mountebank)."""
    binary = imposter.get("mode") == "binary"
    rules = []
    for index, stub in enumerate(imposter.get("stubs") or []):
        here = where.at("stubs", index)
        if not isinstance(stub, dict):
            here.drop("a stub that is not an object is left out")
            continue
        rule = _rule(stub, here, binary, imposter.get("defaultResponse") or {})
        if rule is not None:
            rules.append(rule)
    if rules:
        where.at("stubs").approximate(
            "mountebank matches each packet on its own; the stub matches the bytes received "
            "since the last answer, so data that matched nothing stays in front of the next packet"
        )
    return {"rules": rules, "default": "silent"}


def _rule(
    stub: dict[str, Any], where: Where, binary: bool, default: dict[str, Any]
) -> dict[str, Any] | None:
    conds = conditions(stub.get("predicates"), where.at("predicates"), Context("tcp", binary))
    expect = "(?s:.+)"
    if conds:
        expect = conds[0].regex
        for cond in conds[1:]:
            expect = rx.both(expect, cond.regex)
    cycle = answers(stub.get("responses"), where.at("responses"), default)
    if not cycle:
        where.drop("a stub with no answer that can be expressed is left out")
        return None
    first = cycle[0]
    if any(a is not first for a in cycle):
        where.at("responses").drop(
            "a tcp rule always sends one answer: the others in turn are left out"
        )
    rule: dict[str, Any] = {"expect": expect}
    if first.fault:
        rule["fault"] = first.fault
    elif first.fields is not None:
        data = first.fields.get("data")
        for key in first.fields:
            if key != "data":
                first.where.at(key).drop(f"response field {key!r} has no counterpart")
        if isinstance(data, str) and data:
            if binary:
                rule["send_hex"] = _hex(data, first.where.at("data"))
            else:
                rule["send"] = data
    if first.delay_ms:
        rule["delay"] = f"{first.delay_ms:g}ms"
    if rule.get("send_hex") == "":
        del rule["send_hex"]
    return rule


def _hex(data: str, where: Where) -> str:
    try:
        return base64.b64decode(data, validate=True).hex()
    except binascii.Error:
        where.drop("binary data that is not base64 is left out")
        return ""
