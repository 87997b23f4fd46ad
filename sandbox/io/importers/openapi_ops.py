"""Read an OpenAPI 3.x or Swagger 2.0 document into operations of one shape, plus its port."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sandbox.io.importers._common import MALFORMED, as_list, as_map, as_strs, pointer
from sandbox.io.importers.openapi_refs import Resolver

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
DEFAULT_PORT = 8080
_BRACES = re.compile(r"\{[^{}/]+\}")
_SCHEMA_KEYS = (
    "type",
    "format",
    "enum",
    "items",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "default",
    "multipleOf",
    "minItems",
    "maxItems",
)


@dataclass
class Param:
    name: str
    location: str  # path, query, header, cookie
    required: bool
    schema: dict[str, Any]
    where: str


@dataclass
class Body:
    required: bool
    media: str
    schema: Any
    where: str


@dataclass
class Operation:
    method: str
    path: str  # the document's path template, with the server's base path in front
    where: str
    params: list[Param] = field(default_factory=list)
    body: Body | None = None
    responses: dict[str, dict[str, Any]] = field(default_factory=dict)  # 3.x-shaped
    callbacks: bool = False


def version_of(doc: dict[str, Any]) -> str | None:
    """`2.0`, `3.0` or `3.1`, or None when the document is neither."""
    if str(doc.get("swagger", "")).startswith("2."):
        return "2.0"
    found = re.match(r"^3\.(\d+)", str(doc.get("openapi", "")))
    if found:
        return "3.0" if found.group(1) == "0" else "3.1"
    return None


@dataclass
class Server:
    port: int
    prefix: str  # base path, without a trailing slash
    notes: list[tuple[str, str, str]]  # (location, kind, what)


def server_of(doc: dict[str, Any], version: str) -> Server:
    """The port and base path to serve on, from `servers` (3.x) or `host`/`basePath` (2.0)."""
    notes: list[tuple[str, str, str]] = []
    if version == "2.0":
        host = doc.get("host")
        schemes = as_strs(doc.get("schemes")) or ["http"]
        url = f"{schemes[0]}://{host}{doc.get('basePath') or ''}" if host else None
        where = "#/host"
        prefix_only = str(doc.get("basePath") or "")
    else:
        servers = [s for s in as_list(doc.get("servers")) if isinstance(s, dict) and "url" in s]
        url, where, prefix_only = None, "#/servers", ""
        if servers:
            url = _expand(servers[0])
            where = "#/servers/0"
            for index in range(1, len(servers)):
                notes.append(
                    (
                        f"#/servers/{index}",
                        "dropped",
                        f"server {servers[index]['url']} is not served: only the first server is",
                    )
                )
    if url is None or url.startswith("/") or "://" not in url:
        prefix = (url or prefix_only).rstrip("/")
        notes.append(
            (
                where,
                "approximated",
                f"no loopback server URL with a port: the stub listens on {DEFAULT_PORT}",
            )
        )
        return Server(DEFAULT_PORT, _prefix(prefix), notes)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a bad port or a malformed [IPv6] host: nothing usable in it
        parts, port = urlsplit(""), None
    prefix = parts.path
    if not _loopback(parts.hostname or ""):
        notes.append(
            (
                where,
                "approximated",
                f"server {url} is not on loopback: the stub listens on its own loopback "
                f"address, port {DEFAULT_PORT}",
            )
        )
        port = None
    elif port is None:
        notes.append(
            (
                where,
                "approximated",
                f"server {url} names no port: the stub listens on {DEFAULT_PORT}",
            )
        )
    if parts.scheme == "https":
        notes.append(
            (
                where,
                "approximated",
                "the server is https: the stub answers plain HTTP (TLS is not served)",
            )
        )
    return Server(port or DEFAULT_PORT, _prefix(prefix), notes)


def _prefix(path: str) -> str:
    """A base path as a route prefix: `/v1`, or empty; never a trailing slash or braces."""
    path = path.strip().strip("/")
    return "/" + path if path and "{" not in path and "}" not in path else ""


def _expand(server: dict[str, Any]) -> str:
    url = str(server["url"])
    for name, var in as_map(server.get("variables")).items():
        if isinstance(var, dict) and "default" in var:
            url = url.replace("{" + str(name) + "}", str(var["default"]))
    return url


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def operations(
    doc: dict[str, Any], version: str, resolver: Resolver, prefix: str
) -> list[Operation]:
    """Every operation of `paths`, with path-level parameters merged into each.

    A path that is not a route path, or an operation whose fields have shapes that cannot be
    read, is reported as dropped and left out; the others are still imported.
    """
    found: list[Operation] = []
    for path, item in as_map(doc.get("paths")).items():
        item_where = "#" + pointer("paths", path)
        item = resolver.deref(item, item_where)
        if not isinstance(item, dict) or path.startswith("x-"):
            continue
        literal = _BRACES.sub("", path)
        if not path.startswith("/") or "{" in literal or "}" in literal:
            resolver.result.drop(
                f"{resolver.source}{item_where}",
                f"{path!r} is not a path template (it must start with / and close every {{)",
            )
            continue
        for method in METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            where = "#" + pointer("paths", path, method)
            try:
                found.append(_operation(doc, version, resolver, prefix, path, item, method, op))
            except MALFORMED as exc:
                resolver.result.drop(
                    f"{resolver.source}{where}",
                    f"this operation has a field of a shape that cannot be read "
                    f"({type(exc).__name__}: {exc}); it is not served",
                )
    return found


def _operation(
    doc: dict[str, Any],
    version: str,
    resolver: Resolver,
    prefix: str,
    path: str,
    item: dict[str, Any],
    method: str,
    op: dict[str, Any],
) -> Operation:
    item_where, where = "#" + pointer("paths", path), "#" + pointer("paths", path, method)
    operation = Operation(method.upper(), prefix + path, where)
    operation.callbacks = bool(op.get("callbacks"))
    shared = as_list(item.get("parameters"))
    own = as_list(op.get("parameters"))
    params = _params(shared, f"{item_where}/parameters", own, f"{where}/parameters", resolver)
    if version == "2.0":
        _swagger_operation(doc, op, params, operation, resolver)
        return operation
    operation.params = [p for p in params if p.location != "body"]
    operation.body = _request_body(op, where, resolver)
    for code, raw in as_map(op.get("responses")).items():
        resp = resolver.deref(raw, f"{where}/responses/{code}")
        if isinstance(resp, dict):
            operation.responses[code] = resp
    return operation


def _params(
    shared: list[Any], shared_where: str, own: list[Any], own_where: str, resolver: Resolver
) -> list[Param]:
    merged: dict[tuple[str, str], Param] = {}
    for items, base in ((shared, shared_where), (own, own_where)):
        for index, raw in enumerate(items):
            where = f"{base}/{index}"
            param = resolver.deref(raw, where)
            if not isinstance(param, dict) or "name" not in param:
                continue
            location = str(param.get("in", "query"))
            schema = param.get("schema")
            if location != "body" and not isinstance(schema, dict):
                schema = {k: param[k] for k in _SCHEMA_KEYS if k in param}  # Swagger 2.0 form
                if "x-example" in param:
                    schema["example"] = param["x-example"]
            if "example" in param:
                schema = {**(schema or {}), "example": param["example"]}
            required = bool(param.get("required")) or location == "path"
            key = (str(param["name"]), location)
            merged[key] = Param(key[0], location, required, schema or {}, where)
    return list(merged.values())


def _request_body(op: dict[str, Any], where: str, resolver: Resolver) -> Body | None:
    body_where = f"{where}/requestBody"
    body = resolver.deref(op.get("requestBody"), body_where)
    if not isinstance(body, dict):
        return None
    content = as_map(body.get("content"))
    if not isinstance(content, dict) or not content:
        return None
    media = next((m for m in content if is_json(m)), next(iter(content)))
    media_obj = content[media] if isinstance(content[media], dict) else {}
    where = f"{body_where}/content/{_escape(str(media))}"
    return Body(bool(body.get("required")), str(media), media_obj.get("schema") or {}, where)


def _swagger_operation(
    doc: dict[str, Any], op: dict[str, Any], params: list[Param], out: Operation, resolver: Resolver
) -> None:
    """Swagger 2.0: a `body` parameter becomes the request body, responses take 3.x's shape."""
    consumes = as_strs(op.get("consumes")) or as_strs(doc.get("consumes")) or ["application/json"]
    produces = as_strs(op.get("produces")) or as_strs(doc.get("produces")) or ["application/json"]
    out.params = [p for p in params if p.location not in ("body", "formData")]
    form = [p for p in params if p.location == "formData"]
    for p in params:
        if p.location == "body":
            out.body = Body(p.required, str(consumes[0]), p.schema, f"{p.where}/schema")
    if form and out.body is None:
        props = {p.name: p.schema for p in form}
        required = [p.name for p in form if p.required]
        schema = {"type": "object", "properties": props, "required": required}
        out.body = Body(bool(required), str(consumes[0]), schema, form[0].where)
    for code, raw in as_map(op.get("responses")).items():
        where = f"{out.where}/responses/{code}"
        resp = resolver.deref(raw, where)
        if not isinstance(resp, dict):
            continue
        converted: dict[str, Any] = {"description": resp.get("description", "")}
        raw_examples = resp.get("examples")
        examples: dict[str, Any] = raw_examples if isinstance(raw_examples, dict) else {}
        if "schema" in resp or examples:
            media_types = list(examples) or list(produces)
            converted["content"] = {
                str(m): {
                    "schema": resp.get("schema", {}),
                    **({"example": examples[m]} if m in examples else {}),
                }
                for m in media_types
            }
        headers = as_map(resp.get("headers"))
        if isinstance(headers, dict):
            converted["headers"] = {
                name: {"schema": h, **({"example": h["x-example"]} if "x-example" in h else {})}
                for name, h in headers.items()
                if isinstance(h, dict)
            }
        out.responses[str(code)] = converted


def is_json(media: str) -> bool:
    base = media.split(";")[0].strip().lower()
    return base == "application/json" or base.endswith("+json")


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")
