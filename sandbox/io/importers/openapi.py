"""Import an OpenAPI 3.0/3.1 or Swagger 2.0 document as a profile with one http stub."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sandbox.errors import SourceError
from sandbox.io.importers._common import (
    MALFORMED,
    as_map,
    literal_json,
    literal_text,
    slug,
)
from sandbox.io.importers.openapi_load import load_document
from sandbox.io.importers.openapi_ops import Operation, is_json, operations, server_of, version_of
from sandbox.io.importers.openapi_refs import Resolver
from sandbox.io.importers.openapi_schema import ExampleMaker
from sandbox.io.importers.openapi_validate import conditions, match_of, rejections
from sandbox.io.report import ImportResult

_PATH_FORMS = {"integer": r"\d+", "number": r"[0-9.eE+-]+", "boolean": "true|false"}
_IDENT = re.compile(r"[^A-Za-z0-9_]")


def import_openapi(source: Path, *, seed: int = 0, validate_requests: bool = False) -> ImportResult:
    """One `http` service answering every operation of the document at `source`.

    Raises SourceError (exit code 3) when the file is missing, not a regular file, over
    the size limit, not YAML/JSON, or not an OpenAPI 3.x / Swagger 2.0 document.
    """
    doc = load_document(source)
    version = version_of(doc)
    if version is None:
        raise SourceError(
            f"{source} is not an OpenAPI document: it has neither `openapi: 3.x` nor "
            '`swagger: "2.0"` at the top.',
        )
    result = ImportResult(profile={})
    name = source.name
    resolver = Resolver(doc, name, result)
    server = server_of(doc, version)
    for where, kind, what in server.notes:
        (result.drop if kind == "dropped" else result.approximate)(f"{name}{where}", what)
    _report_unserved(doc, name, result)
    builder = _Builder(name, resolver, ExampleMaker(resolver, seed), result, validate_requests)
    ops = operations(doc, version, resolver, server.prefix)
    ops.sort(key=lambda op: [1 if "{" in seg else 0 for seg in op.path.split("/")])
    routes: list[dict[str, Any]] = []
    fallbacks: list[dict[str, Any]] = []
    for op in ops:
        try:
            own, after = builder.routes(op)
        except MALFORMED as exc:
            result.drop(
                f"{name}{op.where}",
                f"this operation has a field of a shape that cannot be read "
                f"({type(exc).__name__}: {exc}); it is not served",
            )
            continue
        routes += own
        fallbacks += after
    info = _mapping(doc.get("info"))
    title = str(info.get("title") or source.stem)
    service = slug(title, "api")
    label = f"{title} {info.get('version', '')}".strip()
    result.profile = {
        "name": service,
        "description": f"{label}, imported from the OpenAPI document {name}",
        "services": {
            service: {
                "kind": "http",
                "description": f"{label} ({len(ops)} operations)",
                "address": "auto",
                "port": server.port,
                "routes": routes + fallbacks,
            }
        },
    }
    return result


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _report_unserved(doc: dict[str, Any], name: str, result: ImportResult) -> None:
    components = _mapping(doc.get("components"))
    for where, value in (
        ("#/components/securitySchemes", components.get("securitySchemes")),
        ("#/securityDefinitions", doc.get("securityDefinitions")),
    ):
        if value:
            result.drop(
                f"{name}{where}",
                "security schemes are not enforced: the stub answers requests without credentials",
            )
    if doc.get("webhooks"):
        result.drop(f"{name}#/webhooks", "webhooks are not sent: a stub only answers requests")


class _Builder:
    """Routes for one operation: its answer, its other documented answers, its request checks."""

    def __init__(
        self,
        name: str,
        resolver: Resolver,
        maker: ExampleMaker,
        result: ImportResult,
        validate: bool,
    ) -> None:
        self.name, self.resolver, self.maker = name, resolver, maker
        self.result, self.validate = result, validate
        self._noted: set[tuple[str, str]] = set()

    def note(self, kind: str, where: str, what: str) -> None:
        """Report a loss once: the same answer is built for several routes."""
        if (where, what) not in self._noted:
            self._noted.add((where, what))
            (self.result.drop if kind == "dropped" else self.result.approximate)(
                self.loc(where), what
            )

    def loc(self, where: str) -> str:
        return f"{self.name}{where}"

    def routes(self, op: Operation) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The operation's routes, and the routes that must come after every operation's."""
        path, typed = self.path_pattern(op)
        base: dict[str, Any] = {"method": op.method, "path": path}
        conds = conditions(op, self.resolver) if self.validate else []
        if conds:
            self.note(
                "approximated",
                op.where,
                "requests are checked only for required query parameters and headers (and "
                "their simple types) and required top-level JSON body fields (and their "
                "JSON types); nested fields, formats, lengths and ranges are not checked",
            )
        if op.callbacks:
            self.note(
                "dropped",
                f"{op.where}/callbacks",
                "callbacks are not sent: a stub only answers requests",
            )
        chosen, others = self.pick_status(op)
        own: list[dict[str, Any]] = []
        for status, code, reason in others:
            header = {"Prefer": rf"\bcode={status}\b"}
            if reason:
                header = {"Prefer": rf"\b{reason}\b"}
            own.append(self.route(base, conds, header, op, code, status))
        if chosen is None:
            self.note(
                "approximated",
                f"{op.where}/responses",
                "no response is documented: the stub answers 204 with no body",
            )
            own.append({**base, **self.matched(conds, {}), "response": {"status": 204}})
        else:
            code, status = chosen
            for example_name in self.extra_examples(op, code):
                header = {"Prefer": rf"\bexample={re.escape(example_name)}\b"}
                own.append(self.route(base, conds, header, op, code, status, example_name))
            own.append(self.route(base, conds, {}, op, code, status))
        after = rejections(op.method, path, conds) if conds else []
        if self.validate and typed:
            loose = re.sub(r"\{([A-Za-z_]\w*):[^{}]*\}", r"{\1}", path)
            after.append(
                {
                    "method": op.method,
                    "path": loose,
                    "response": {
                        "status": 400,
                        "json": {
                            "error": "the request does not fit the API description",
                            "field": "path",
                            "expected": ", ".join(f"{n}: {k}" for n, k in typed),
                        },
                    },
                }
            )
        return own, after

    def matched(self, conds: list[Any], headers: dict[str, str]) -> dict[str, Any]:
        match = match_of(conds)
        if headers:
            match["headers"] = {**match.get("headers", {}), **headers}
        return {"match": match} if match else {}

    def route(
        self,
        base: dict[str, Any],
        conds: list[Any],
        headers: dict[str, str],
        op: Operation,
        code: str,
        status: int,
        example: str | None = None,
    ) -> dict[str, Any]:
        answer = self.answer(op, code, status, example)
        return {**base, **self.matched(conds, headers), "response": answer}

    def path_pattern(self, op: Operation) -> tuple[str, list[tuple[str, str]]]:
        """`/pets/{petId}` -> `/pets/{petId:\\d+}` when petId is an integer; the typed names."""
        kinds = {p.name: p.schema for p in op.params if p.location == "path"}
        typed: list[tuple[str, str]] = []

        def one(found: re.Match[str]) -> str:
            raw = found.group(1)
            name = _IDENT.sub("_", raw)
            if not name or name[0].isdigit():
                name = f"p_{name}"
            if name != raw:
                self.note(
                    "approximated",
                    op.where,
                    f"path parameter {raw!r} is named {name!r} in the route "
                    "(a route parameter is a Python identifier)",
                )
            schema = self.resolver.deref(kinds.get(raw, {}), op.where)
            kind = schema.get("type") if isinstance(schema, dict) else None
            enum = schema.get("enum") if isinstance(schema, dict) else None
            if isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum):
                pattern = "|".join(re.escape(v) for v in enum)
                typed.append((name, "one of " + ", ".join(enum)))
                return "{" + f"{name}:(?:{pattern})" + "}"
            if isinstance(kind, str) and kind in _PATH_FORMS:
                typed.append((name, kind))
                return "{" + f"{name}:{_PATH_FORMS[kind]}" + "}"
            return "{" + name + "}"

        return re.sub(r"\{([^{}/]+)\}", one, op.path), typed

    def pick_status(
        self, op: Operation
    ) -> tuple[tuple[str, int] | None, list[tuple[int, str, str]]]:
        """The answer to give by default (first 2xx), and the others reachable with `Prefer`."""
        numbered: list[tuple[int, str]] = []
        for code in op.responses:
            upper = code.upper()
            if re.fullmatch(r"[1-5]\d\d", code):
                numbered.append((int(code), code))
            elif re.fullmatch(r"[1-5]XX", upper):
                numbered.append((int(upper[0]) * 100, code))
                self.note(
                    "approximated",
                    f"{op.where}/responses/{code}",
                    f"the range {code} is answered as {upper[0]}00",
                )
        numbered.sort()
        success = [n for n in numbered if 200 <= n[0] < 300]
        if success:
            status, code = success[0]
        elif numbered:
            status, code = numbered[0]
        elif "default" in op.responses:
            status, code = 200, "default"
            self.note(
                "approximated",
                f"{op.where}/responses/default",
                "only a `default` answer is documented: it is sent as 200",
            )
        else:
            return None, []
        others = [(s, c, "") for s, c in numbered if c != code]
        if "default" in op.responses and code != "default":
            self.note(
                "dropped",
                f"{op.where}/responses/default",
                "the `default` answer has no status code; it is not served",
            )
        return (code, status), others

    def media_of(self, op: Operation, code: str) -> tuple[str | None, dict[str, Any]]:
        resp = op.responses[code]
        content = resp.get("content") if isinstance(resp.get("content"), dict) else {}
        if not content:
            return None, {}
        media = next((m for m in content if is_json(m)), next(iter(content)))
        for other in content:
            if other != media:
                self.note(
                    "approximated",
                    f"{op.where}/responses/{code}/content",
                    f"{other} is documented too; only {media} is answered",
                )
        obj = self.resolver.deref(content[media], op.where)
        return media, obj if isinstance(obj, dict) else {}

    def extra_examples(self, op: Operation, code: str) -> list[str]:
        """Names of the named examples after the first, each reachable with Prefer: example=NAME."""
        _media, obj = self.media_of(op, code) if code in op.responses else (None, {})
        examples = obj.get("examples")
        if "example" in obj or not isinstance(examples, dict):
            return []
        return [str(n) for n in list(examples)[1:]]

    def answer(self, op: Operation, code: str, status: int, example: str | None) -> dict[str, Any]:
        where = f"{op.where}/responses/{code}"
        resp = op.responses.get(code, {})
        out: dict[str, Any] = {"status": status}
        headers = self.headers(resp, where)
        media, obj = self.media_of(op, code) if resp else (None, {})
        value, have = self.example(obj, where, example)
        if media is None:
            if headers:
                out["headers"] = headers
            return out
        schema = self.resolver.deref(obj.get("schema"), where) if "schema" in obj else None
        binary = isinstance(schema, dict) and schema.get("format") in ("binary", "byte")
        if not have and schema is not None and not binary:
            value, have = self.maker.make(obj["schema"], where), True
        if is_json(media):
            if media != "application/json":
                headers["Content-Type"] = media
            if value is None and have:
                headers["Content-Type"] = media
                out["headers"], out["body"] = headers, "null"
                return out
            if headers:
                out["headers"] = headers
            if have:
                out["json"] = literal_json(value)
            return out
        headers["Content-Type"] = media
        out["headers"] = headers
        if binary or (not have and not media.startswith("text/")):
            if binary or schema is not None:
                self.note(
                    "dropped",
                    where,
                    f"the {media} answer is binary or has no "
                    "example: the stub answers with an empty body",
                )
            return out
        if have:
            if not isinstance(value, str):
                self.note(
                    "approximated",
                    where,
                    f"the {media} answer is generated from its schema and written as JSON text",
                )
                value = json.dumps(value)
            out["body"] = literal_text(value)
        return out

    def example(self, obj: dict[str, Any], where: str, name: str | None) -> tuple[Any, bool]:
        """The documented example of a media type: `example`, or a named one of `examples`."""
        if "example" in obj:
            return obj["example"], True
        examples = obj.get("examples")
        if not isinstance(examples, dict) or not examples:
            return None, False
        key = name if name in examples else next(iter(examples))
        item = self.resolver.deref(examples[key], f"{where}/examples/{key}")
        if isinstance(item, dict) and "value" in item:
            return item["value"], True
        if isinstance(item, dict) and "externalValue" in item:
            self.note(
                "dropped",
                f"{where}/examples/{key}",
                f"the example at {item['externalValue']} is not fetched",
            )
        return None, False

    def headers(self, resp: dict[str, Any], where: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, raw in as_map(resp.get("headers")).items():
            if str(name).lower() == "content-type":
                continue
            header = self.resolver.deref(raw, f"{where}/headers/{name}")
            if not isinstance(header, dict):
                continue
            if "example" in header:
                value = header["example"]
            else:
                value = self.maker.make(header.get("schema", {}), f"{where}/headers/{name}")
            out[str(name)] = literal_text(value if isinstance(value, str) else json.dumps(value))
        return out
