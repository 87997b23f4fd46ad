"""Import a docker-compose file as a profile of `command` services, reporting every loss."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sandbox.errors import ProfileError, SourceError
from sandbox.io.importers.compose_context import ComposeContext
from sandbox.io.importers.compose_env import environment
from sandbox.io.importers.compose_health import compose_seconds, readiness, seconds_text
from sandbox.io.importers.compose_interpolate import Interpolator, parse_env_file
from sandbox.io.importers.compose_ports import PortMapping, parse_expose, parse_port
from sandbox.io.importers.compose_program import program
from sandbox.io.importers.compose_sandbox import exported_stub
from sandbox.io.importers.compose_shape import check_shapes
from sandbox.io.report import ImportResult
from sandbox.profile.loader import load_profile_data

# Keys of a compose service that this importer reads; every other key is reported dropped.
_READ = {
    "image", "command", "entrypoint", "ports", "expose", "environment", "env_file",
    "depends_on", "healthcheck", "deploy", "scale", "restart", "stop_signal",
    "stop_grace_period", "build", "container_name",
}  # fmt: skip
_STOP_SIGNALS = {"SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGKILL"}


def import_compose(
    source: Path,
    *,
    env: Mapping[str, str] | None = None,
    env_file_dir: Path | None = None,
) -> ImportResult:
    """Read a compose file and return the profile (as data) with its import report.

    Variables come from `env` (default: this process's environment), then from the `.env`
    file in `env_file_dir` (default: the compose file's folder). Raises SourceError for a
    file that cannot be read, is not a compose file, or needs a variable that is not set.
    """
    doc = _load(source)
    folder = env_file_dir if env_file_dir is not None else source.parent
    variables = dict(os.environ if env is None else env)
    dotenv = folder / ".env"
    if dotenv.is_file():
        interpolate = Interpolator(variables)
        for key, value in parse_env_file(dotenv).items():
            # The process environment wins over .env, as in compose.
            variables.setdefault(key, interpolate(value, f"{dotenv}:{key}"))
    interpolate = Interpolator(variables)
    doc = _interpolated(doc, interpolate, f"{source}#")
    return _Importer(source, doc, interpolate).run()


def _load(source: Path) -> dict[str, Any]:
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read the compose file {source}: {exc}.") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SourceError(f"{source} is not valid YAML: {exc}.") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict):
        raise SourceError(
            f"{source} is not a compose file: it has no `services` mapping.",
            "Give the docker-compose.yml (or compose.yaml) of the application.",
        )
    if not doc["services"]:
        raise SourceError(f"{source} defines no services.")
    return doc


def _interpolated(node: Any, interpolate: Interpolator, where: str) -> Any:
    if isinstance(node, str):
        return interpolate(node, where)
    if isinstance(node, dict):
        return {k: _interpolated(v, interpolate, f"{where}/{k}") for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolated(v, interpolate, f"{where}/{i}") for i, v in enumerate(node)]
    return node


def profile_name(text: str) -> str:
    """A compose name as a profile name: lowercase, `.` as `-`, starting with a letter."""
    name = re.sub(r"[^a-z0-9_-]", "-", text.lower()).strip("-_") or "compose"
    if not name[0].isalpha():
        name = "s-" + name
    return name[:63]


class _Importer(ComposeContext):
    """One pass over the services of a compose file, building the profile and the report."""

    def __init__(self, source: Path, doc: dict[str, Any], interpolate: Interpolator) -> None:
        super().__init__(source, interpolate)
        self.doc = doc
        self.services: dict[str, dict[str, Any]] = doc["services"]
        self.jobs: set[str] = set()  # waited on with service_completed_successfully

    def run(self) -> ImportResult:
        name = self.doc.get("name")
        base = name if isinstance(name, str) and name else self.source.resolve().parent.name
        self.result.profile = {
            "name": profile_name(base),
            "description": f"Imported from {self.source.name}",
            "services": {},
        }
        for key in self.doc:
            if key not in ("services", "name"):
                self.result.drop(self.at(key), f"top-level `{key}` has no counterpart in a profile")
        check_shapes(self.source, self.services)
        for cname, spec in self.services.items():
            self._names(cname, spec)
            self._collect_ports(cname, spec)
        self._referenced_ports()
        for cname, mappings in self.ports.items():
            kept = mappings[0].target if mappings else min(self.targets[cname], default=None)
            self.main[cname] = set() if kept is None else {kept}
        for cname, spec in self.services.items():
            for pname in self.replicas[cname]:
                self.result.profile["services"][pname] = self._service(cname, pname, spec)
        for cname in self.jobs:
            for pname in self.replicas[cname]:
                self._as_job(self.result.profile["services"][pname])
        # Replicas repeat their service's losses word for word: keep each once.
        self.result.losses = list(dict.fromkeys(self.result.losses))
        if self.interpolate.unset:
            names = ", ".join(sorted(self.interpolate.unset))
            self.result.approximate(
                self.at(), f"variables not set, replaced by empty text as compose does: {names}"
            )
        self._check_valid()
        return self.result

    def _check_valid(self) -> None:
        """What compose would refuse too (a dependency cycle) fails here, not at `up`."""
        try:
            load_profile_data(self.result.profile, str(self.source))
        except ProfileError as exc:
            raise SourceError(
                f"{self.source} cannot become a valid profile:\n"
                + "\n".join(f"  {p}" for p in exc.problems),
                "Compose refuses such a file as well; fix it, then import again.",
            ) from None

    def _names(self, cname: str, spec: dict[str, Any]) -> None:
        base = profile_name(cname)
        if base != cname:
            self.result.approximate(
                self.at("services", cname), f"service `{cname}` is named `{base}` in the profile"
            )
        count: object = 1
        deploy = spec.get("deploy")
        if isinstance(deploy, dict) and "replicas" in deploy:
            count = deploy["replicas"]
        elif "scale" in spec:
            count = spec["scale"]
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            count = 1
            self.result.drop(self.at("services", cname, "deploy", "replicas"), "not a number")
        if count == 0:
            self.result.drop(
                self.at("services", cname), f"`{cname}` has 0 replicas: it is left out"
            )
        elif count > 1:
            self.result.approximate(
                self.at("services", cname, "deploy", "replicas"),
                f"{count} replicas became services {base}-1 .. {base}-{count}, each on its own "
                f"address; a reference to host `{cname}` points at {base}-1",
            )
        wanted = [base] if count == 1 else [f"{base}-{i}"[:63] for i in range(1, count + 1)]
        self.replicas[cname] = [self._unique(cname, name) for name in wanted]

    def _unique(self, cname: str, name: str) -> str:
        """`name`, or `name-2`, `name-3`... when another service already has it (`a.b`, `a-b`)."""
        taken = {n for names in self.replicas.values() for n in names}
        chosen, i = name, 1
        while chosen in taken:
            i += 1
            chosen = f"{name[:60]}-{i}"
        if chosen != name:
            self.result.approximate(
                self.at("services", cname), f"`{name}` is taken: this service is `{chosen}`"
            )
        return chosen

    def _collect_ports(self, cname: str, spec: dict[str, Any]) -> None:
        def note(where: str, what: str) -> None:
            self.result.drop(where, what)

        mappings: list[PortMapping] = []
        for i, entry in enumerate(spec.get("ports") or []):
            found = parse_port(entry, self.at("services", cname, "ports", i), note)
            if found is not None:
                mappings.append(found)
        self.ports[cname] = mappings
        self.targets[cname] = {m.target for m in mappings}
        for i, entry in enumerate(spec.get("expose") or []):
            port = parse_expose(entry, self.at("services", cname, "expose", i), note)
            if port is not None:
                self.targets[cname].add(port)

    def _referenced_ports(self) -> None:
        """A service that publishes nothing listens where the others say: `db:5432`.

        Only what services run and are told is searched: `image: redis:7` is no port.
        """
        keys = ("command", "entrypoint", "environment", "healthcheck")
        text = yaml.safe_dump([s.get(k) for s in self.services.values() for k in keys])
        for cname in self.services:
            if self.targets[cname]:
                continue
            for found in re.finditer(rf"(?<![\w.-]){re.escape(cname)}:(\d+)(?![\w.-])", text):
                if 1 <= int(found.group(1)) <= 65535:
                    self.targets[cname].add(int(found.group(1)))
                    break

    @staticmethod
    def _as_job(service: dict[str, Any]) -> None:
        """A service others wait on with service_completed_successfully: a `job` that must
        exit 0 before they start. Its completion is its readiness, so no other check."""
        if service.get("kind") != "command":
            return
        service["job"] = True
        service.pop("ready", None)
        service.pop("restart", None)
        service.pop("max_restarts", None)
        if service.get("port") == "auto":
            service["port"] = "none"

    def _service(self, cname: str, pname: str, spec: dict[str, Any]) -> dict[str, Any]:
        found = exported_stub(self.source.parent, spec)
        if found is not None:
            return self._stub(cname, pname, spec, *found)
        for key in spec:
            if key not in _READ:
                self.result.drop(
                    self.at("services", cname, key), f"`{key}` has no counterpart in a profile"
                )
        out: dict[str, Any] = {"kind": "command"}
        image = spec.get("image")
        if isinstance(image, str):
            out["description"] = f"image {image}"
        out["port"] = self._port(cname, pname)
        deps = self._depends_on(cname, spec.get("depends_on"))
        if deps:
            out["depends_on"] = deps
        ready = self._ready(cname, spec)
        if ready is not None:
            out["ready"] = ready
        env = environment(self, cname, spec)
        if env:
            out["env"] = env
        out["run"] = program(self, cname, pname, spec)
        self._lifecycle(cname, spec, out)
        return out

    def _stub(
        self, cname: str, pname: str, spec: dict[str, Any], stub: dict[str, Any], path: Path
    ) -> dict[str, Any]:
        """A service `sandbox export` wrote: the stub it runs comes back as it was exported."""
        self.result.approximate(
            self.at("services", cname),
            f"`{cname}` runs the sandbox stub of {path}: imported as that {stub['kind']} stub "
            "(names in its templates stay as the export wrote them)",
        )
        out = {"kind": stub["kind"]}
        out.update((k, v) for k, v in stub.items() if k not in ("port", "depends_on", "address"))
        out["port"] = self._port(cname, pname)
        deps = self._depends_on(cname, spec.get("depends_on"))
        if deps:
            out["depends_on"] = deps
        return out

    def _port(self, cname: str, pname: str) -> int | str:
        mappings = self.ports[cname]
        where = self.at("services", cname, "ports")
        if mappings:
            first = mappings[0]
            for extra in mappings[1:]:
                self.result.drop(where, f"port {extra.target} is dropped: a service has one port")
            if first.host_ip is not None:
                self.result.approximate(
                    where,
                    f"host address {first.host_ip} is not kept: `{pname}` gets its own "
                    "loopback address",
                )
            port = first.published or first.target
            if first.published is not None and first.published != first.target:
                self.result.approximate(
                    where,
                    f"published port {first.published} is the service's port; the "
                    f"container port {first.target} in its command and in references to it "
                    "became {port}",
                )
            return port
        if self.targets[cname]:
            return min(self.targets[cname])
        return "auto"

    def _depends_on(self, cname: str, value: object) -> list[str]:
        where = self.at("services", cname, "depends_on")
        conditions: dict[str, str] = {}
        if isinstance(value, list):
            conditions = {str(v): "service_started" for v in value}
        elif isinstance(value, dict):
            for dep, options in value.items():
                cond = options.get("condition") if isinstance(options, dict) else None
                conditions[str(dep)] = cond if isinstance(cond, str) else "service_started"
                if isinstance(options, dict):
                    for key in sorted(set(options) - {"condition"}):
                        self.result.drop(f"{where}/{dep}/{key}", f"`{key}` has no counterpart")
        deps: list[str] = []
        for dep, cond in conditions.items():
            if dep == cname:
                self.result.drop(f"{where}/{dep}", "a service cannot wait for itself")
                continue
            if dep not in self.replicas:
                self.result.drop(f"{where}/{dep}", f"`{dep}` is not a service of this file")
                continue
            if not self.replicas[dep]:
                self.result.drop(f"{where}/{dep}", f"`{dep}` has 0 replicas and is left out")
                continue
            deps.extend(self.replicas[dep])
            if cond == "service_started":
                self.result.approximate(
                    f"{where}/{dep}",
                    f"service_started: waits until `{dep}` is ready, not "
                    "only started (a profile's dependency always waits for readiness)",
                )
            elif cond == "service_completed_successfully":
                self.jobs.add(dep)  # a one-shot job: dependents start once it exits 0
        return deps

    def _ready(self, cname: str, spec: dict[str, Any]) -> dict[str, Any] | None:
        check = spec.get("healthcheck")
        if isinstance(check, dict):
            mapped = readiness(check)
            if mapped.loss is not None:
                where = self.at("services", cname, "healthcheck")
                if mapped.ready is None:
                    self.result.drop(where, mapped.loss)
                elif not mapped.exact:
                    self.result.approximate(where, mapped.loss)
            if mapped.ready is not None:
                return mapped.ready
        if not self.targets[cname]:
            # Without a port the default TCP check could never pass: the first output line is
            # the best sign of life a worker gives.
            self.result.approximate(
                self.at("services", cname),
                f"`{cname}` listens on no port the file names: it counts as ready at its "
                "first line of output (ready.log); change `ready:` if it listens",
            )
            return {"log": "."}
        return None

    def _lifecycle(self, cname: str, spec: dict[str, Any], out: dict[str, Any]) -> None:
        where = self.at("services", cname)
        restart = spec.get("restart")
        if isinstance(restart, str) and restart != "no":
            out["restart"] = "on-failure"
            policy, _, count = restart.partition(":")
            if policy == "on-failure" and count.isdigit():
                out["max_restarts"] = min(int(count), 100)
            elif policy != "on-failure":
                self.result.approximate(
                    f"{where}/restart", f"restart: {restart} became on-failure (at most 3 times)"
                )
        signal = spec.get("stop_signal")
        if isinstance(signal, str):
            if signal in _STOP_SIGNALS:
                out["stop_signal"] = signal
            else:
                self.result.drop(f"{where}/stop_signal", f"{signal} is not one the profile allows")
        grace = compose_seconds(spec.get("stop_grace_period"))
        if grace is not None:
            out["stop_timeout"] = seconds_text(grace)
        deploy = spec.get("deploy")
        if isinstance(deploy, dict):
            for key in sorted(set(deploy) - {"replicas"}):
                self.result.drop(f"{where}/deploy/{key}", f"deploy.{key} has no counterpart")
        if "container_name" in spec:
            self.result.drop(f"{where}/container_name", "a container name has no counterpart")
