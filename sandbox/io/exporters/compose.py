"""Export a profile as a compose file: each stub service runs the sandbox engine in a container."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sandbox.io.exporters._common import (
    IMAGE,
    PROBE_INTERVAL,
    PROFILE_DIR,
    Exported,
    ExportResult,
    begin_export,
    write_text,
)
from sandbox.io.write import profile_yaml
from sandbox.net.addresses import format_hostport

COMPOSE_FILE = "compose.yaml"


def export_compose(profile_path: Path, out_dir: Path, *, strict: bool = False) -> ExportResult:
    """Write `compose.yaml`, a `Dockerfile` and one folder per stub service into `out_dir`.

    Raises ProfileNotFound / ProfileError for a profile that does not load, StrictError
    (nothing written) when `strict` and anything does not carry over exactly.
    """
    profile, result, services = begin_export(profile_path, out_dir, strict=strict)
    doc = compose_document(profile.name, services)
    for svc in services:
        write_text(out_dir / svc.host / "profile.yaml", svc.profile_text, result)
        for rel, content in svc.files.items():
            path = out_dir / svc.host / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            result.written.append(path)
    write_text(out_dir / COMPOSE_FILE, _header(profile.name) + profile_yaml(doc), result)
    return result


def _header(name: str) -> str:
    return (
        f"# Exported from the sandbox profile `{name}`: each stub runs `sandbox up` in container\n"
        "# mode. Ports are published on loopback only. Build and run: docker compose up --build\n"
    )


def compose_document(name: str, services: list[Exported]) -> dict[str, Any]:
    """The compose file as data (kept apart from writing, so tests can validate it)."""
    by_name = {s.name: s for s in services}
    out: dict[str, Any] = {}
    for svc in services:
        entry: dict[str, Any] = {
            "image": IMAGE,
            "build": {"context": ".", "dockerfile": "Dockerfile"},
            "command": ["up", f"{PROFILE_DIR}/profile.yaml", "--container-listen"],
            "volumes": [f"./{svc.host}:{PROFILE_DIR}:ro"],
            # Published on the host's loopback only: nothing is reachable from another machine.
            "ports": [f"{format_hostport(svc.host_address, svc.port)}:{svc.port}"],
            "healthcheck": {
                "test": ["CMD", *svc.probe],
                "interval": f"{PROBE_INTERVAL:g}s",
                "timeout": "3s",
                "retries": svc.retries,
            },
            "labels": {
                "io.sandbox.profile": name,
                "io.sandbox.service": svc.name,
                "io.sandbox.config-hash": svc.config_hash,
            },
        }
        if svc.depends_on:
            entry["depends_on"] = {
                by_name[dep].host: {"condition": "service_healthy"} for dep in svc.depends_on
            }
        out[svc.host] = entry
    return {"name": name, "services": out}
