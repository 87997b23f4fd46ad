"""A WireMock response definition as a route's answer: response, fault, or nothing (reported)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from sandbox.io.importers._paths import escape_template
from sandbox.io.importers._source import Budget, file_kind
from sandbox.io.importers._where import Where
from sandbox.io.importers._wiremock_request import PathInfo
from sandbox.io.importers._wiremock_templates import translate

FAULTS = {
    "CONNECTION_RESET_BY_PEER": "reset",
    "EMPTY_RESPONSE": "empty",
    "RANDOM_DATA_THEN_CLOSE": "garbage",
    "MALFORMED_RESPONSE_CHUNK": "garbage",
}
_KNOWN = {
    "status", "headers", "body", "jsonBody", "base64Body", "bodyFileName",
    "fixedDelayMilliseconds", "delayDistribution", "chunkedDribbleDelay", "fault",
    "transformers", "transformerParameters", "statusMessage",
}  # fmt: skip
FILES_DIR = "__files"


@dataclass
class Sources:
    """Where body files come from, the read budget, and where copies go."""

    files: Path | None  # the `__files` folder, if any
    budget: Budget
    copies: dict[str, bytes]


def build_answer(
    resp: dict[str, Any], where: Where, info: PathInfo, sources: Sources, tag: str
) -> dict[str, Any] | None:
    """`{"response": ...}` or `{"fault": ...}` for a route, or None when nothing can answer."""
    if "proxyBaseUrl" in resp:
        where.at("proxyBaseUrl").drop(
            "proxying to another host has no counterpart (stubs only proxy to services of "
            "the same profile); the mapping is left out"
        )
        return None
    for key in resp:
        if key not in _KNOWN:
            where.at(key).drop(f"response field {key!r} has no counterpart")
    if "fault" in resp:
        return _fault(resp, where)
    transformers = resp.get("transformers") or []
    templated = "response-template" in transformers
    for index, name in enumerate(transformers):
        if name != "response-template":
            where.at("transformers", index).drop(f"the {name!r} transformer has no counterpart")
    if "transformerParameters" in resp:
        where.at("transformerParameters").drop("transformer parameters have no counterpart")
    if "statusMessage" in resp:
        where.at("statusMessage").drop("the status line uses the standard reason phrase")

    def text(value: str, at: Where) -> str:
        return translate(value, at, info) if templated else escape_template(value)

    out: dict[str, Any] = {}
    status = resp.get("status", 200)
    if isinstance(status, bool) or not isinstance(status, int | str) or not _status(status):
        where.at("status").drop(f"status {status!r} is not 100..599; 200 is sent")
        status = 200
    status = int(status)
    if status != 200:
        out["status"] = status
    headers = _headers(resp.get("headers") or {}, where.at("headers"), text)
    if headers:
        out["headers"] = headers
    _body(resp, where, sources, tag, text, out)
    delay = _delay(resp, where)
    if delay:
        out["delay"] = delay
    return {"response": out}


def _status(value: int | str) -> bool:
    return str(value).isdigit() and 100 <= int(value) <= 599


def _fault(resp: dict[str, Any], where: Where) -> dict[str, Any] | None:
    name = str(resp["fault"])
    if name not in FAULTS:
        where.at("fault").drop(f"the fault {name} has no counterpart; the mapping is left out")
        return None
    if name == "MALFORMED_RESPONSE_CHUNK":
        where.at("fault").approximate(
            "MALFORMED_RESPONSE_CHUNK sends a 200 status line before the garbage; "
            "`garbage` sends random bytes from the first byte"
        )
    if "fixedDelayMilliseconds" in resp or "delayDistribution" in resp:
        where.at("fault").drop("a route with a fault has no delay; the delay is left out")
    return {"fault": FAULTS[name]}


def _headers(raw: dict[str, Any], where: Where, text: Any) -> dict[str, str]:
    headers = {}
    for name, value in raw.items():
        if isinstance(value, list):
            where.at(name).approximate("several values are sent as one, joined by ', '")
            value = ", ".join(str(v) for v in value)
        headers[str(name)] = text(str(value), where.at(name))
    return headers


def _json_text(value: Any, where: Where, text: Any) -> Any:
    if isinstance(value, str):
        return text(value, where)
    if isinstance(value, dict):
        return {k: _json_text(v, where.at(k), text) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_text(v, where.at(i), text) for i, v in enumerate(value)]
    return value


def _body(
    resp: dict[str, Any], where: Where, sources: Sources, tag: str, text: Any, out: dict[str, Any]
) -> None:
    if "jsonBody" in resp:
        out["json"] = _json_text(resp["jsonBody"], where.at("jsonBody"), text)
        if not any(k.lower() == "content-type" for k in out.get("headers", {})):
            # WireMock sends no Content-Type of its own for jsonBody; the stub's json says JSON
            where.at("jsonBody").approximate("answered with Content-Type: application/json")
    elif "body" in resp:
        body = resp["body"]
        out["body"] = text(body if isinstance(body, str) else json.dumps(body), where.at("body"))
    elif "base64Body" in resp:
        try:
            data = base64.b64decode(str(resp["base64Body"]), validate=True)
        except binascii.Error:
            where.at("base64Body").drop("the body is not valid base64; it is left out")
            return
        try:
            out["body"] = escape_template(data.decode("utf-8"))
        except UnicodeDecodeError:
            sources.copies[f"{FILES_DIR}/{tag}.bin"] = data
            out["file"] = f"{FILES_DIR}/{tag}.bin"
    elif "bodyFileName" in resp:
        copied = _file(str(resp["bodyFileName"]), where.at("bodyFileName"), sources)
        if copied is not None:
            out["file"] = copied
            if "response-template" in (resp.get("transformers") or []):
                where.at("bodyFileName").drop("body files are sent as they are, not as templates")


def _file(name: str, where: Where, sources: Sources) -> str | None:
    rel = PurePosixPath(name)
    if rel.is_absolute() or ".." in rel.parts or "{{" in name or not rel.parts:
        where.drop(f"the body file {name!r} is outside __files or templated; it is left out")
        return None
    key = f"{FILES_DIR}/{rel}"
    if key in sources.copies:
        return key
    path = sources.files / rel if sources.files else None
    if path is None or file_kind(path) != "file":
        where.drop(f"the body file {name!r} is not in __files; the answer has no body")
        return None
    sources.copies[key] = sources.budget.read(path, key)
    return key


def _delay(resp: dict[str, Any], where: Where) -> str | None:
    ms: float = 0
    if isinstance(fixed := resp.get("fixedDelayMilliseconds"), int | float):
        ms += fixed
    if isinstance(dist := resp.get("delayDistribution"), dict):
        kind = dist.get("type")
        if kind == "uniform":
            ms += (float(dist.get("lower", 0)) + float(dist.get("upper", 0))) / 2
        elif kind == "lognormal":
            ms += float(dist.get("median", 0))
        where.at("delayDistribution").approximate(
            f"a random ({kind}) delay becomes a fixed one of its middle value"
        )
    if isinstance(dribble := resp.get("chunkedDribbleDelay"), dict):
        ms += float(dribble.get("totalDuration", 0))
        where.at("chunkedDribbleDelay").approximate(
            "the body is sent at once after the whole duration, not in chunks"
        )
    return f"{ms:g}ms" if ms > 0 else None
