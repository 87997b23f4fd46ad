"""mountebank responses (`is`, `fault`, behaviours, `repeat`) as answers, reporting the rest."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from sandbox.io.importers._paths import escape_template
from sandbox.io.importers._where import Where

FAULTS = {"CONNECTION_RESET_BY_PEER": "reset", "RANDOM_DATA_THEN_CLOSE": "garbage"}
_MAX_REPEAT = 1000  # a larger `repeat` would make a profile with that many copies


@dataclass
class Answer:
    """One answer in a stub's cycle: the `is` fields (or a fault), its delay and repeat."""

    fields: dict[str, Any] | None  # the merged `is` object, or None for a fault
    fault: str | None
    delay_ms: float
    where: Where


def answers(responses: Any, where: Where, default: dict[str, Any]) -> list[Answer]:
    """The answers of a stub in turn, `repeat` expanded; proxies and injections reported."""
    out: list[Answer] = []
    for index, item in enumerate(responses if isinstance(responses, list) else [{}]):
        here = where.at(index)
        if not isinstance(item, dict):
            here.drop("a response that is not an object is left out")
            continue
        found = _one(item, here, default)
        if found is not None:
            out.extend([found] * _repeat(item, here))
    return out


def _one(item: dict[str, Any], where: Where, default: dict[str, Any]) -> Answer | None:
    for kind in ("proxy", "inject"):
        if kind in item:
            where.at(kind).drop(f"a {kind} response has no counterpart; it is left out")
            return None
    delay = _behaviours(item.get("_behaviors"), where.at("_behaviors"))
    for key in item:
        if key not in ("is", "fault", "_behaviors", "repeat"):
            where.at(key).drop(f"response field {key!r} has no counterpart")
    if "fault" in item:
        name = str(item["fault"])
        if name not in FAULTS:
            where.at("fault").drop(f"the fault {name} has no counterpart; it is left out")
            return None
        return Answer(None, FAULTS[name], delay, where)
    fields = item.get("is", {})
    if not isinstance(fields, dict):
        where.at("is").drop("`is` must be an object; the response is left out")
        return None
    return Answer({**default, **fields}, None, delay, where.at("is"))


def _repeat(item: dict[str, Any], where: Where) -> int:
    count = item.get("repeat")
    behaviours = item.get("_behaviors")
    for behaviour in behaviours if isinstance(behaviours, list) else [behaviours]:
        if isinstance(behaviour, dict) and "repeat" in behaviour:
            count = behaviour["repeat"]
    if count is None:
        return 1
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        where.drop(f"repeat {count!r} is not a positive whole number; it is left out")
        return 1
    if count > _MAX_REPEAT:
        where.approximate(f"repeat {count} is cut to {_MAX_REPEAT}")
        return _MAX_REPEAT
    return count


def _behaviours(raw: Any, where: Where) -> float:
    delay = 0.0
    items = raw if isinstance(raw, list) else [raw] if raw is not None else []
    for index, behaviour in enumerate(items):
        here = where.at(index) if isinstance(raw, list) else where
        if not isinstance(behaviour, dict):
            here.drop("a behaviour that is not an object is left out")
            continue
        for name, value in behaviour.items():
            if name == "wait" and isinstance(value, int | float) and not isinstance(value, bool):
                delay += float(value)
            elif name == "wait":
                here.at(name).drop("a wait computed by a function has no counterpart")
            elif name != "repeat":
                here.at(name).drop(f"the {name} behaviour has no counterpart")
    return delay


def http_response(answer: Answer, copies: dict[str, bytes], tag: str) -> dict[str, Any] | None:
    """The `response` of a route from an `is` answer (None for a fault)."""
    if answer.fields is None:
        return None
    fields, where = answer.fields, answer.where
    out: dict[str, Any] = {}
    status = fields.get("statusCode", 200)
    if not str(status).isdigit() or not 100 <= int(status) <= 599:
        where.at("statusCode").drop(f"status {status!r} is not 100..599; 200 is sent")
        status = 200
    status = int(status)
    if status != 200:
        out["status"] = status
    headers = {}
    for name, value in (fields.get("headers") or {}).items():
        if isinstance(value, list):
            where.at("headers", name).approximate("several values are sent as one, joined by ', '")
            value = ", ".join(str(v) for v in value)
        headers[str(name)] = escape_template(str(value))
    if headers:
        out["headers"] = headers
    body = fields.get("body")
    if fields.get("_mode") == "binary" and isinstance(body, str):
        try:
            copies[f"__files/{tag}.bin"] = base64.b64decode(body, validate=True)
            out["file"] = f"__files/{tag}.bin"
        except binascii.Error:
            where.at("body").drop("a binary body that is not base64 is left out")
    elif isinstance(body, str) and body:
        out["body"] = escape_template(body)
    elif isinstance(body, dict | list):
        out["json"] = _escaped(body)
    elif body not in (None, ""):
        out["body"] = json.dumps(body)
    for key in fields:
        if key not in ("statusCode", "headers", "body", "_mode"):
            where.at(key).drop(f"response field {key!r} has no counterpart")
    if answer.delay_ms:
        out["delay"] = f"{answer.delay_ms:g}ms"
    return out


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return escape_template(value)
    if isinstance(value, dict):
        return {k: _escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    return value
