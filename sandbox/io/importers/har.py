"""Import a HAR 1.2 recording (browser devtools export): one http stub per recorded origin."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from sandbox.errors import SourceError
from sandbox.io.importers._common import (
    MALFORMED,
    slug,
    unique,
)
from sandbox.io.importers._source import parse_json, read_source
from sandbox.io.importers.har_answers import REDACTED, build_answer, secret_query
from sandbox.io.report import ImportResult

_DEFAULT_PORTS = {"http": 80, "https": 443}
_ENCODED_SLASH = re.compile("%2f", re.IGNORECASE)


def _decoded(path: str) -> str:
    """The path as the stub matches it: percent-escapes decoded, except an encoded slash."""
    return "%2F".join(unquote(part) for part in _ENCODED_SLASH.split(path))


@dataclass
class _Request:
    """One distinct request (method, path, query) and every answer it got, in order."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    where: str
    answers: list[dict[str, Any]] = field(default_factory=list)
    bodies: set[str] = field(default_factory=set)


@dataclass
class _Origin:
    scheme: str
    host: str
    port: int
    name: str
    requests: dict[tuple[str, str, tuple[tuple[str, str], ...]], _Request] = field(
        default_factory=dict
    )


def import_har(source: Path, *, keep_secrets: bool = False) -> ImportResult:
    """A profile with one `http` service per origin of the recording at `source`.

    Binary answers become extra files (`result.files`) under `har-files/`. Raises
    SourceError (exit code 3) when the file is missing, not a regular file, over the size
    limit, not JSON, or has no `log.entries` list.
    """
    doc = parse_json(read_source(source, "HAR file"), str(source), "HAR file")
    log = doc.get("log") if isinstance(doc, dict) else None
    entries = log.get("entries") if isinstance(log, dict) else None
    if not isinstance(entries, list):
        raise SourceError(
            f"{source} is not a HAR file: it has no `log.entries` list.",
            "export it from the browser's network panel with 'Save all as HAR'",
        )
    result = ImportResult(profile={})
    reader = _Reader(source.name, result, keep_secrets)
    for index, entry in enumerate(entries):
        where = f"#/log/entries/{index}"
        try:
            reader.entry(entry, where)
        except MALFORMED as exc:
            result.drop(
                f"{source.name}{where}",
                f"this entry has a field of a shape that cannot be read "
                f"({type(exc).__name__}: {exc}); it is skipped",
            )
    if not reader.origins:
        raise SourceError(f"{source} records no HTTP request with an answer to import.")
    reader.global_notes()
    profile_name = slug(source.stem, "har")
    result.profile = {
        "name": profile_name,
        "description": f"{len(reader.origins)} origins recorded in {source.name}",
        "services": {o.name: reader.service(o) for o in reader.origins.values()},
    }
    return result


class _Reader:
    def __init__(self, name: str, result: ImportResult, keep_secrets: bool) -> None:
        self.name, self.result, self.keep_secrets = name, result, keep_secrets
        self.origins: dict[tuple[str, str, int], _Origin] = {}
        self.names: set[str] = set()
        self.request_headers = self.request_bodies = self.timings = False

    def loc(self, where: str) -> str:
        return f"{self.name}{where}"

    def entry(self, entry: Any, where: str) -> None:
        request = entry.get("request") if isinstance(entry, dict) else None
        response = entry.get("response") if isinstance(entry, dict) else None
        if not isinstance(request, dict) or not isinstance(response, dict):
            self.result.drop(self.loc(where), "an entry without request and response; skipped")
            return
        url = str(request.get("url", ""))
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            self.result.drop(
                self.loc(f"{where}/request/url"), f"{url[:80]!r} is not an http(s) URL; skipped"
            )
            return
        status = response.get("status")
        if not isinstance(status, int) or not 100 <= status <= 599:
            self.result.drop(
                self.loc(f"{where}/response/status"),
                f"no answer was recorded for {url[:80]} (status {status}: blocked, "
                "cancelled or failed); skipped",
            )
            return
        path = _decoded(parts.path or "/")
        if "{" in path or "}" in path:
            self.result.drop(
                self.loc(f"{where}/request/url"),
                f"the path {path} has braces, which a route path cannot hold literally; skipped",
            )
            return
        origin = self.origin(parts.scheme, parts.hostname, parts.port, where)
        method = str(request.get("method", "GET")).upper()
        if not re.fullmatch(r"[A-Z]+", method):
            self.result.drop(self.loc(f"{where}/request/method"), f"{method!r} is not a method")
            return
        query = self.query(parts.query, f"{where}/request/queryString")
        key = (method, path, query)
        known = origin.requests.get(key)
        if known is None:
            known = origin.requests[key] = _Request(method, path, query, where)
        stem = f"har-files/{origin.name}/entry-{where.rsplit('/', 1)[-1]}"
        answer = build_answer(response, f"{where}/response", stem, self.keep_secrets)
        for pointer, kind, what in answer.notes:
            (self.result.drop if kind == "dropped" else self.result.approximate)(
                self.loc(pointer), what
            )
        if answer.file is not None:
            self.result.files[answer.file[0]] = answer.file[1]
        known.answers.append(answer.response)
        post = request.get("postData")
        if isinstance(post, dict) and post.get("text"):
            self.request_bodies = True
            known.bodies.add(str(post["text"]))
            if len(known.bodies) == 2:
                self.result.approximate(
                    self.loc(f"{where}/request/postData"),
                    f"{method} {path} was sent with different bodies; the "
                    "route answers each in turn whatever the body",
                )
        self.request_headers = self.request_headers or bool(request.get("headers"))
        self.timings = self.timings or bool(entry.get("timings"))

    def origin(self, scheme: str, host: str, port: int | None, where: str) -> _Origin:
        key = (scheme, host.lower(), port or _DEFAULT_PORTS[scheme])
        found = self.origins.get(key)
        if found is None:
            base = slug(key[1], "host")
            if base in self.names or any(o.host == key[1] for o in self.origins.values()):
                base = slug(f"{key[1]}-{key[2]}", "host")
            found = _Origin(scheme, key[1], key[2], unique(base, self.names))
            self.origins[key] = found
            if scheme == "https":
                self.result.approximate(
                    self.loc(f"{where}/request/url"),
                    f"https://{key[1]}:{key[2]} is served as plain HTTP on "
                    f"port {key[2]}: TLS is not served",
                )
        return found

    def query(self, text: str, where: str) -> tuple[tuple[str, str], ...]:
        pairs = []
        for name, value in parse_qsl(text, keep_blank_values=True):
            if secret_query(name) and not self.keep_secrets:
                self.result.approximate(
                    self.loc(where),
                    f"the query parameter {name}'s value is redacted: the "
                    "route matches any value (import with --keep-secrets "
                    "to keep it)",
                )
                value = REDACTED
            pairs.append((name, value))
        return tuple(sorted(pairs))

    def global_notes(self) -> None:
        if self.request_headers:
            self.result.drop(
                self.loc("#/log/entries/*/request/headers"),
                "request headers and cookies are not matched: requests are told "
                "apart by method, path and query only",
            )
        if self.request_bodies:
            self.result.drop(
                self.loc("#/log/entries/*/request/postData"), "request bodies are not matched"
            )
        if self.timings:
            self.result.approximate(
                self.loc("#/log/entries/*/timings"),
                "answers are sent at once: recorded timings are not replayed",
            )

    def service(self, origin: _Origin) -> dict[str, Any]:
        routes = []
        order = {
            (r.method, r.path): i for i, r in reversed(list(enumerate(origin.requests.values())))
        }
        ranked = sorted(
            origin.requests.values(), key=lambda r: (order[(r.method, r.path)], -len(r.query))
        )
        for request in ranked:
            route: dict[str, Any] = {"method": request.method, "path": request.path}
            if request.query:
                route["match"] = {"query": self.query_match(request)}
            distinct = [a for i, a in enumerate(request.answers) if a not in request.answers[:i]]
            if len(distinct) == 1:
                route["response"] = request.answers[0]
            else:
                route["responses"] = request.answers
            routes.append(route)
        return {
            "kind": "http",
            "description": f"recorded from {origin.scheme}://{origin.host}:{origin.port}",
            "address": "auto",
            "port": origin.port,
            "routes": routes,
        }

    def query_match(self, request: _Request) -> dict[str, str]:
        values: dict[str, list[str]] = {}
        for name, value in request.query:
            values.setdefault(name, []).append(value)
        match: dict[str, str] = {}
        for name, given in values.items():
            if REDACTED in given:
                match[name] = ""
            elif len(given) == 1:
                match[name] = f"^{re.escape(given[0])}$"
            else:
                match[name] = "^(" + "|".join(re.escape(v) for v in given) + ")$"
                self.result.approximate(
                    self.loc(f"{request.where}/request/queryString"),
                    f"the query parameter {name} is repeated; the route "
                    "asks for any one of its values",
                )
        return match
