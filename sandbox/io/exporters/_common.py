"""What compose and Kubernetes exports share: which stubs go, their one-service profiles, losses."""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sandbox._version import __version__
from sandbox.errors import SandboxError, StrictError
from sandbox.io.report import Loss, LossLog
from sandbox.net.addresses import allocate, default_pool
from sandbox.profile.loader import load_profile
from sandbox.profile.models import CommandService, HttpService, Profile, Service

IMAGE = f"loopback-sandbox:{__version__}"
PROFILE_DIR = "/sandbox"  # where a container finds its profile and files
DEFAULT_PORT = 8080  # the container port of a stub whose profile says `port: auto`
PROBE_INTERVAL = 1.0  # seconds between two health probes
_TEMPLATE = re.compile(
    r"\{\{\s*services(?:\.([A-Za-z0-9_]+)|\[\s*['\"]([a-z][a-z0-9_-]*)['\"]\s*\])"
    r"\.(url|address|port|name|host)\s*\}\}"
)
_LEFT = re.compile(r"\{\{[^}]*\bservices\b[^}]*\}\}")


@dataclass
class ExportResult(LossLog):
    """The files an export wrote and everything that did not carry over exactly."""

    written: list[Path] = field(default_factory=list)
    losses: list[Loss] = field(default_factory=list)


@dataclass(frozen=True)
class Exported:
    """One stub service as a container: its name there, ports, checks and its own profile."""

    name: str  # the profile's service name
    host: str  # its name on the container network (a DNS label)
    port: int  # the port it listens on inside its container
    host_address: str  # the loopback address its port is published on, on the host
    depends_on: list[str]  # profile names of the stub services it waits for
    probe: list[str]  # `sandbox probe ...` argv, run inside its container
    retries: int  # probes before the container counts as unhealthy
    profile_text: str  # the one-service profile the container runs
    files: dict[str, bytes]  # files its `file:` answers need, relative to the profile

    @property
    def config_hash(self) -> str:
        digest = hashlib.sha256(self.profile_text.encode())
        for rel in sorted(self.files):
            digest.update(rel.encode() + b"\0" + self.files[rel])
        return digest.hexdigest()[:12]


def dns_label(name: str) -> str:
    """A service name as a container-network host name: no `_`, ending in a letter or digit."""
    return name.replace("_", "-").rstrip("-")


def plan_export(profile: Profile, result: ExportResult, *, strict: bool) -> list[Exported]:
    """Every stub service of `profile` as a container; command services are reported.

    Raises StrictError, listing the losses, when `strict` and anything did not carry over.
    """
    where = profile.source or profile.name
    labels: dict[str, str] = {}
    for name in profile.services:
        other = labels.setdefault(dns_label(name), name)
        if other != name:
            raise SandboxError(
                f"{where}: services `{other}` and `{name}` would both be named "
                f"`{dns_label(name)}` in a container network (host names allow no `_`).",
                "Rename one of them in the profile before exporting it.",
            )
    hosts = _host_addresses(profile)
    ports = _ports(profile, hosts, where, result)
    stubs = [n for n, s in profile.services.items() if not isinstance(s, CommandService)]
    for name, spec in profile.services.items():
        if isinstance(spec, CommandService):
            result.drop(
                f"{where}#/services/{name}",
                f"`{name}` is a command service (`{spec.run}`): it needs an image of its own "
                "with that program; it is not exported",
            )
    out = [_one(profile, name, ports, hosts[name], stubs, result, where) for name in stubs]
    if strict and result.losses:
        raise StrictError(
            f"the export of {where} is not exact ({len(result.losses)} losses); with "
            "--strict nothing was written:\n"
            + "\n".join(f"  {loss.location}: {loss.what}" for loss in result.losses),
            "Run without --strict to write it anyway; the report lists every loss.",
        )
    return out


def _host_addresses(profile: Profile) -> dict[str, str]:
    """The addresses `sandbox up` would plan (before conflicts), to publish each port on."""
    literal = {
        ipaddress.ip_address(s.address) for s in profile.services.values() if s.address != "auto"
    }
    autos = [n for n, s in profile.services.items() if s.address == "auto"]
    assigned = allocate(autos, profile.pool or default_pool(profile.name), taken=literal)
    return {n: str(assigned.get(n) or s.address) for n, s in profile.services.items()}


def _ports(
    profile: Profile, hosts: dict[str, str], where: str, result: ExportResult
) -> dict[str, int]:
    """Each service's container port; `auto` becomes 8080, or the next port that is free on
    the same published host address (two `::1` services cannot both publish 8080)."""
    used = {(hosts[n], s.port) for n, s in profile.services.items() if s.port != "auto"}
    ports: dict[str, int] = {}
    for name, spec in profile.services.items():
        if isinstance(spec.port, int):
            ports[name] = spec.port
            continue
        port = DEFAULT_PORT
        while (hosts[name], port) in used:
            port += 1
        used.add((hosts[name], port))
        ports[name] = port
        if not isinstance(spec, CommandService):
            result.approximate(
                f"{where}#/services/{name}/port",
                f"`port: auto` became {port}: a container's port must be known in advance",
            )
    return ports


def _one(
    profile: Profile,
    name: str,
    ports: dict[str, int],
    host_address: str,
    stubs: list[str],
    result: ExportResult,
    where: str,
) -> Exported:
    spec = profile.services[name]
    at = f"{where}#/services/{name}"
    deps = []
    for dep in spec.depends_on:
        if dep in stubs:
            deps.append(dep)
        else:
            result.drop(f"{at}/depends_on", f"the dependency on command service `{dep}` is lost")
    data = spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    data.pop("depends_on", None)
    data.pop("address", None)  # container mode decides where it listens
    data = {"kind": data.pop("kind"), "port": ports[name], **data}
    if isinstance(spec, HttpService):
        routes = data.get("routes", [])
        data["routes"] = [_route(route, i, at, result) for i, route in enumerate(routes)]
    data = _names_for_addresses(data, ports, at, result)
    single = {"name": profile.name, "services": {name: data}}
    text = yaml.safe_dump(single, sort_keys=False, allow_unicode=True)
    timeout = spec.ready.timeout if spec.ready is not None else 10.0
    return Exported(
        name=name,
        host=dns_label(name),
        port=ports[name],
        host_address=host_address,
        depends_on=deps,
        probe=probe_argv(spec, ports[name]),
        retries=max(1, math.ceil(timeout / PROBE_INTERVAL)),
        profile_text=text,
        files=_files(profile, spec, at),
    )


def _route(route: dict[str, Any], i: int, at: str, result: ExportResult) -> dict[str, Any]:
    target = route.get("proxy")
    if target is None:
        return route
    result.drop(
        f"{at}/routes/{i}/proxy",
        f"the route {route.get('path')} proxies to `{target}`, which runs in a container of "
        "its own; a profile proxies only within itself, so it answers 502 saying so",
    )
    kept = {k: v for k, v in route.items() if k not in ("proxy", "strip_prefix")}
    kept["response"] = {
        "status": 502,
        "body": f"sandbox export: this route proxied to {target}, which is not in this container",
    }
    return kept


def _names_for_addresses(node: Any, ports: dict[str, int], at: str, result: ExportResult) -> Any:
    """`{{ services.api.url }}` as `http://api:8000`: containers find each other by name."""
    if isinstance(node, dict):
        return {k: _names_for_addresses(v, ports, at, result) for k, v in node.items()}
    if isinstance(node, list):
        return [_names_for_addresses(v, ports, at, result) for v in node]
    if not isinstance(node, str):
        return node

    def one(found: re.Match[str]) -> str:
        peer = (found.group(1) or found.group(2)).replace("_", "-")
        peer = next((n for n in ports if dns_label(n) == dns_label(peer)), peer)
        if peer not in ports:
            return found.group(0)
        host, port, attr = dns_label(peer), ports[peer], found.group(3)
        values = {"address": host, "host": host, "port": str(port), "name": peer}
        return values.get(attr, f"http://{host}:{port}")

    text = _TEMPLATE.sub(one, node)
    if _LEFT.search(text):
        result.approximate(
            at, f"a template uses `services` in an expression the export cannot rewrite: {text!r}"
        )
    return text


def probe_argv(spec: Service, port: int) -> list[str]:
    """The health check: `sandbox probe` against the stub inside its own container."""
    ready = spec.ready
    if ready is not None and ready.http is not None:
        return ["sandbox", "probe", f"http://127.0.0.1:{port}{ready.http}"]
    if ready is None and isinstance(spec, HttpService):
        return ["sandbox", "probe", f"http://127.0.0.1:{port}/"]
    return ["sandbox", "probe", f"127.0.0.1:{port}"]


def _files(profile: Profile, spec: Service, at: str) -> dict[str, bytes]:
    if not isinstance(spec, HttpService):
        return {}
    wanted = {
        answer.file
        for route in spec.routes
        for answer in [route.response, *(route.responses or [])]
        if answer is not None and answer.file is not None
    }
    folder = Path(profile.source).parent if profile.source else Path.cwd()
    files: dict[str, bytes] = {}
    for rel in sorted(wanted):
        try:
            files[rel] = (folder / rel).read_bytes()
        except OSError as exc:
            raise SandboxError(f"{at}: the answer file {rel} cannot be read: {exc}.") from None
    return files


def dockerfile() -> str:
    """The image every exported stub runs: the sandbox engine, installed from PyPI."""
    return f"""\
# The sandbox engine, to run one stub service of an exported profile per container.
# Built by `docker compose build` (or `docker build -t {IMAGE} .`).
FROM python:3.11-slim
# From PyPI. To install a local build instead, put its wheel beside this file and replace
# the RUN line with:  COPY loopback_sandbox-*.whl /tmp/  then  RUN pip install /tmp/*.whl
RUN pip install --no-cache-dir "loopback-sandbox=={__version__}"
# Container mode (`up --container-listen`) is refused unless it runs in a container: this
# marks the image as one for engines that leave no /.dockerenv (containerd, CRI-O).
ENV container=oci
ENTRYPOINT ["sandbox"]
CMD ["up", "{PROFILE_DIR}/profile.yaml", "--container-listen"]
"""


def begin_export(
    profile_path: Path, out_dir: Path, *, strict: bool
) -> tuple[Profile, ExportResult, list[Exported]]:
    """Load and plan the export of a profile, and write the `Dockerfile` all its stubs run.

    Raises ProfileNotFound / ProfileError for a profile that does not load, StrictError
    (nothing written) when `strict` and anything does not carry over exactly.
    """
    profile = load_profile(str(profile_path))
    result = ExportResult()
    services = plan_export(profile, result, strict=strict)
    write_text(out_dir / "Dockerfile", dockerfile(), result)
    return profile, result, services


def write_text(path: Path, text: str, result: ExportResult) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    result.written.append(path)
