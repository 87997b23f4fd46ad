"""Import mountebank imposters (`{"imposters": [...]}` or one imposter) as http and tcp stubs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sandbox.errors import SourceError
from sandbox.io.importers._common import profile_name
from sandbox.io.importers._mountebank_imposters import http_routes, tcp_spec
from sandbox.io.importers._source import (
    Budget,
    parse_json,
    require_source,
)
from sandbox.io.importers._where import Where
from sandbox.io.report import ImportResult

# Fields with no effect on answers: a saved configuration carries them, and they are ignored.
_SILENT = {"protocol", "port", "name", "stubs", "defaultResponse", "mode", "recordRequests",
           "numberOfRequests", "requests", "_links"}  # fmt: skip
_TLS = {"key", "cert", "mutualAuth", "ciphers", "rejectUnauthorized"}


def import_mountebank(source: Path) -> ImportResult:
    """A profile with one service per imposter, each keeping its port on its own address.

    Raises SourceError (exit code 3) for a source that is missing, not a regular file,
    over the size limit, not JSON (mountebank's EJS templates must be rendered first), or
    holding no imposters.
    """
    if require_source(source) != "file":
        raise SourceError(
            f"{source} is a folder; the mountebank import reads an imposters file.",
            hint="Save it with `mb save` (or GET /imposters?replayable=true) and import that.",
        )
    shown = source.name
    data = parse_json(Budget().read(source, shown), shown)
    if isinstance(data, dict) and isinstance(data.get("imposters"), list):
        imposters = [(("imposters", i), imp) for i, imp in enumerate(data["imposters"])]
    elif isinstance(data, dict) and "protocol" in data:
        imposters = [((), data)]  # type: ignore[list-item]
    else:
        raise SourceError(
            f"{shown} holds neither an `imposters` array nor an imposter (no `protocol`).",
        )
    result = ImportResult(profile={})
    services: dict[str, Any] = {}
    for parts, imposter in imposters:
        where = Where(result, shown, tuple(parts))
        service = _service(imposter, where, result)
        if service is not None:
            services[_name(imposter, services)] = service
    if not services:
        raise SourceError(f"{shown} has no http or tcp imposter to import.")
    result.profile = {
        "name": profile_name(source, "mountebank"),
        "description": f"mountebank imposters imported from {shown}",
        "services": services,
    }
    return result


def _name(imposter: dict[str, Any], taken: dict[str, Any]) -> str:
    given = imposter.get("name")
    base = profile_name(Path(str(given)), "imposter") if given else ""
    if not base:
        base = f"{imposter.get('protocol', 'imposter')}-{imposter.get('port', 'auto')}"
    name, count = base, 2
    while name in taken:
        name, count = f"{base}-{count}", count + 1
    return name


def _service(imposter: Any, where: Where, result: ImportResult) -> dict[str, Any] | None:
    if not isinstance(imposter, dict):
        where.drop("an imposter that is not an object is left out")
        return None
    protocol = imposter.get("protocol")
    if protocol not in ("http", "https", "tcp"):
        where.at("protocol").drop(f"{protocol!r} imposters have no counterpart; left out")
        return None
    port = imposter.get("port", "auto")
    if not (port == "auto" or (isinstance(port, int) and 1 <= port <= 65535)):
        where.at("port").drop(f"port {port!r} is not 1..65535; the kernel picks one")
        port = "auto"
    for key in imposter:
        if key in _TLS:
            continue
        if key not in _SILENT:
            where.at(key).drop(f"imposter field {key!r} has no counterpart")
    if protocol == "https":
        where.at("protocol").approximate("served as plain http: the stub does not speak TLS")
    tag = f"{protocol}-{port}"
    service: dict[str, Any] = {
        "kind": "tcp" if protocol == "tcp" else "http",
        "description": f"mountebank {protocol} imposter"
        + (f" {imposter['name']}" if imposter.get("name") else ""),
        "address": "auto",
        "port": port,
        "ready": {"tcp": True},
    }
    if protocol == "tcp":
        if "defaultResponse" in imposter:
            where.at("defaultResponse").drop("a tcp stub says nothing when no rule matches")
        service["tcp"] = tcp_spec(imposter, where)
    else:
        service["routes"] = http_routes(imposter, where, result.files, tag)
    return service
