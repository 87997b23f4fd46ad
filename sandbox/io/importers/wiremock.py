"""Import WireMock stub mappings (a `mappings/` folder, one mapping, or a `mappings` array)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sandbox.errors import SourceError
from sandbox.io.importers._common import profile_name
from sandbox.io.importers._source import (
    Budget,
    file_kind,
    parse_json,
    require_source,
)
from sandbox.io.importers._where import Where
from sandbox.io.importers._wiremock_answer import Sources, build_answer
from sandbox.io.importers._wiremock_match import build_match
from sandbox.io.importers._wiremock_request import REQUEST_KEYS, route_path
from sandbox.io.importers._wiremock_scenarios import Mapped, scenario_routes
from sandbox.io.report import ImportResult

SERVICE = "wiremock"
DEFAULT_PORT = 8080  # WireMock's own default port
DEFAULT_PRIORITY = 5  # WireMock's priority for a mapping that sets none
_SILENT = {"id", "uuid", "name", "persistent", "metadata", "insertionIndex"}  # no behaviour
_HANDLED = {"request", "response", "priority", "scenarioName", "requiredScenarioState",
            "newScenarioState", *_SILENT}  # fmt: skip
_REQUEST_EXTRA = {"cookies", "basicAuthCredentials"}


def import_wiremock(source: Path, *, port: int = DEFAULT_PORT) -> ImportResult:
    """A profile with one `http` service answering like the WireMock mappings in `source`.

    `source` is a folder holding `mappings/` (and `__files/`), a folder of mapping files, a
    single mapping file, or a file with a top-level `mappings` array. Raises SourceError
    (exit code 3) for a missing or irregular source, one over the size limit, or bad JSON.
    """
    kind = require_source(source)
    budget = Budget()
    if kind == "folder":
        folder = source / "mappings" if file_kind(source / "mappings") == "folder" else source
        paths = sorted(p for p in folder.rglob("*.json") if p.is_file())
        if not paths:
            raise SourceError(
                f"{folder} holds no mapping files (*.json).",
                hint="Point the import at a WireMock root (with mappings/) or a mapping file.",
            )
        root, files = source, source / "__files"
    else:
        paths, root = [source], source.parent
        files = (
            source.parent.parent / "__files"
            if source.parent.name == "mappings"
            else source.parent / "__files"
        )
    result = ImportResult(profile={})
    sources = Sources(files if file_kind(files) == "folder" else None, budget, result.files)
    entries: list[tuple[Where, Any]] = []
    for path in paths:
        shown = path.relative_to(root).as_posix()
        data = parse_json(budget.read(path, shown), shown)
        entries.extend(_entries(data, Where(result, shown)))
    mapped = [m for n, (w, e) in enumerate(entries) if (m := _convert(e, w, n, sources))]
    routes = _order(mapped)
    service: dict[str, Any] = {
        "kind": "http",
        "description": f"imported from WireMock mappings in {source.name}",
        "address": "auto",
        "port": port,
        # a TCP connect: a fault or a slow answer on `/` must not fail readiness
        "ready": {"tcp": True},
        "routes": routes,
    }
    result.profile = {
        "name": profile_name(source, "wiremock"),
        "description": f"WireMock stubs imported from {source.name}",
        "services": {SERVICE: service},
    }
    return result


def _entries(data: Any, where: Where) -> list[tuple[Where, Any]]:
    if isinstance(data, dict) and isinstance(data.get("mappings"), list):
        return [(where.at("mappings", i), m) for i, m in enumerate(data["mappings"])]
    if isinstance(data, dict) and "request" in data:
        return [(where, data)]
    if isinstance(data, list):
        return [(where.at(i), m) for i, m in enumerate(data)]
    where.drop("the file is neither a mapping nor a `mappings` array; it is left out")
    return []


def _convert(entry: Any, where: Where, order: int, sources: Sources) -> Mapped | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("request"), dict):
        where.drop("a mapping without a `request` object is left out")
        return None
    for key in entry:
        if key not in _HANDLED:
            where.at(key).drop(f"mapping field {key!r} has no counterpart")
    req = entry["request"]
    for key in req:
        if key not in REQUEST_KEYS | _REQUEST_EXTRA:
            where.at("request", key).drop(
                f"request field {key!r} cannot be matched; the route matches without it"
            )
    found = route_path(req, where.at("request"))
    if found is None:
        return None
    path, info, query = found
    route: dict[str, Any] = {}
    method = str(req.get("method", "ANY")).upper()
    if not method.isalpha() or not method.isascii():
        where.at("request", "method").drop(f"{method!r} is not an HTTP method; left out")
        return None
    if method != "ANY":
        route["method"] = method
    route["path"] = path
    if match := build_match(req, where.at("request"), query):
        route["match"] = match
    response = entry.get("response")
    if not isinstance(response, dict):
        response = {}
    tag = str(entry.get("id") or entry.get("uuid") or f"body-{order}")
    answer = build_answer(response, where.at("response"), info, sources, tag)
    if answer is None:
        return None
    route.update(answer)
    priority = entry.get("priority")
    return Mapped(
        route,
        where,
        priority if isinstance(priority, int) else DEFAULT_PRIORITY,
        order,
        scenario=entry.get("scenarioName"),
        required=entry.get("requiredScenarioState"),
        new_state=entry.get("newScenarioState"),
    )


def _order(mapped: list[Mapped]) -> list[dict[str, Any]]:
    """Routes in WireMock's order: lower priority first, then the mapping added last first."""
    plain: list[Mapped] = []
    groups: dict[str, list[Mapped]] = {}
    for m in mapped:
        if m.scenario is None:
            plain.append(m)
        else:
            groups.setdefault(str(m.scenario), []).append(m)
    for group in groups.values():
        plain.extend(scenario_routes(group))
    plain.sort(key=lambda m: (m.priority, -m.order))
    return [m.route for m in plain]
