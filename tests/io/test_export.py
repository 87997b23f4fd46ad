"""Export to compose and Kubernetes: valid by the published schemas, loopback only, round trip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator, Draft202012Validator

from sandbox.errors import SandboxError, StrictError
from sandbox.io.exporters.compose import export_compose
from sandbox.io.exporters.k8s import export_k8s
from sandbox.io.importers.compose import import_compose
from sandbox.io.report import LossKind
from sandbox.profile.loader import load_profile, load_profile_text

SCHEMAS = Path(__file__).parent / "schemas"
BUNDLED = Path(__file__).resolve().parents[2] / "sandbox" / "profiles" / "web-db-api.yaml"

PROFILE = """\
name: shop
services:
  web:
    kind: http
    port: 8080
    depends_on: [api]
    routes:
      - path: /
        response: {body: "api at {{ services.api.url }}, db at {{ services.db_main.address }}"}
      - path: /logo.svg
        response: {file: files/logo.svg}
      - path: /api/{rest:.*}
        proxy: api
  api:
    kind: http
    address: 127.0.0.42
    port: 8000
    depends_on: [db_main]
    ready: {http: /health, timeout: 5s}
    routes:
      - path: /health
        response: {json: {ok: true}}
  db_main:
    kind: tcp
    address: "::1"
    tcp: {banner: "ready\\r\\n"}
"""
WITH_COMMAND = (
    PROFILE
    + """\
  worker:
    kind: command
    depends_on: [api]
    run: python -m worker --api {services.api.url}
"""
)


def _profile(tmp_path: Path, text: str = PROFILE) -> Path:
    path = tmp_path / "src" / "shop.yaml"
    (path.parent / "files").mkdir(parents=True)
    (path.parent / "files" / "logo.svg").write_text("<svg/>")
    path.write_text(text)
    return path


def _schema(name: str) -> dict[str, Any]:
    return dict(json.loads((SCHEMAS / name).read_text()))


def _compose(tmp_path: Path, text: str = PROFILE) -> tuple[dict[str, Any], Path]:
    out = tmp_path / "out"
    export_compose(_profile(tmp_path, text), out)
    return yaml.safe_load((out / "compose.yaml").read_text()), out


def _errors(validator: Any, doc: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


@pytest.mark.parametrize("source", ["tmp", "bundled"])
def test_compose_export_is_valid_by_the_compose_spec(tmp_path: Path, source: str) -> None:
    out = tmp_path / "out"
    export_compose(_profile(tmp_path) if source == "tmp" else BUNDLED, out)
    doc = yaml.safe_load((out / "compose.yaml").read_text())
    validator = Draft7Validator(_schema("compose-spec.json"))
    assert _errors(validator, doc) == []
    doc["services"]["web"]["bogus"] = 1  # the validator does reject what is not compose
    assert _errors(validator, doc) != []


def test_compose_export_shape(tmp_path: Path) -> None:
    doc, out = _compose(tmp_path)
    services = doc["services"]
    assert list(services) == ["web", "api", "db-main"]  # `_` is not allowed in a host name
    api = services["api"]
    assert api["command"] == ["up", "/sandbox/profile.yaml", "--container-listen"]
    assert api["ports"] == ["127.0.0.42:8000:8000"]
    assert services["db-main"]["ports"] == ["[::1]:8080:8080"]  # port auto -> 8080
    for service in services.values():
        (published,) = service["ports"]
        assert published.startswith(("127.", "[::1]:")), "published on loopback only"
        assert service["healthcheck"]["test"][:3] == ["CMD", "sandbox", "probe"]
    assert api["healthcheck"]["test"][3] == "http://127.0.0.1:8000/health"
    assert api["healthcheck"]["retries"] == 5  # a 5s deadline, probed every second
    assert services["db-main"]["healthcheck"]["test"][3] == "127.0.0.1:8080"
    assert services["web"]["depends_on"] == {"api": {"condition": "service_healthy"}}
    assert api["depends_on"] == {"db-main": {"condition": "service_healthy"}}
    labels = api["labels"]
    assert labels["io.sandbox.profile"] == "shop"
    assert labels["io.sandbox.service"] == "api"
    assert len(labels["io.sandbox.config-hash"]) == 12
    assert (out / "Dockerfile").read_text().count('pip install --no-cache-dir "loopback-sandbox==')
    assert (out / "web" / "files" / "logo.svg").read_text() == "<svg/>"


def test_each_container_runs_a_valid_one_service_profile(tmp_path: Path) -> None:
    _, out = _compose(tmp_path)
    web = load_profile_text((out / "web" / "profile.yaml").read_text(), "web/profile.yaml")
    assert list(web.services) == ["web"]
    routes = web.services["web"].routes  # type: ignore[union-attr]
    body = routes[0].response.body  # type: ignore[union-attr]
    assert body == "api at http://api:8000, db at db-main", "names replace addresses"
    assert routes[2].response.status == 502  # type: ignore[union-attr]
    assert web.services["web"].depends_on == []  # compose waits; the container does not
    for name in ("api", "db-main"):
        load_profile_text((out / name / "profile.yaml").read_text(), name)


def test_config_hash_follows_the_service_profile(tmp_path: Path) -> None:
    first, _ = _compose(tmp_path / "a")
    second, _ = _compose(tmp_path / "b", PROFILE.replace("ok: true", "ok: false"))
    hash_of = {
        (run, name): doc["services"][name]["labels"]["io.sandbox.config-hash"]
        for run, doc in (("a", first), ("b", second))
        for name in ("web", "api")
    }
    assert hash_of["a", "web"] == hash_of["b", "web"]
    assert hash_of["a", "api"] != hash_of["b", "api"]


def test_losses_are_reported(tmp_path: Path) -> None:
    result = export_compose(_profile(tmp_path, WITH_COMMAND), tmp_path / "out")
    where = {loss.location.split("#")[1]: loss for loss in result.losses}
    assert where["/services/worker"].kind is LossKind.DROPPED
    assert "needs an image" in where["/services/worker"].what
    assert where["/services/web/routes/2/proxy"].kind is LossKind.DROPPED
    assert where["/services/db_main/port"].kind is LossKind.APPROXIMATED
    assert (
        "worker" not in yaml.safe_load((tmp_path / "out" / "compose.yaml").read_text())["services"]
    )


@pytest.mark.parametrize("export", [export_compose, export_k8s])
def test_strict_refuses_and_writes_nothing(tmp_path: Path, export: Any) -> None:
    out = tmp_path / "out"
    with pytest.raises(StrictError, match="command service") as caught:
        export(_profile(tmp_path, WITH_COMMAND), out, strict=True)
    assert "services/worker" in str(caught.value)
    assert not out.exists()


def test_auto_ports_on_one_address_stay_apart(tmp_path: Path) -> None:
    path = tmp_path / "six.yaml"
    path.write_text(
        "name: six\nservices:\n"
        "  a: {kind: tcp, address: '::1', port: 8080}\n"
        "  b: {kind: tcp, address: '::1'}\n"
        "  c: {kind: tcp, address: '::1'}\n"
    )
    export_compose(path, tmp_path / "out")
    doc = yaml.safe_load((tmp_path / "out" / "compose.yaml").read_text())
    published = [s["ports"][0] for s in doc["services"].values()]
    assert published == ["[::1]:8080:8080", "[::1]:8081:8081", "[::1]:8082:8082"]


def test_names_that_collide_as_host_names_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "clash.yaml"
    path.write_text("name: clash\nservices:\n  my_api: {kind: tcp}\n  my-api: {kind: tcp}\n")
    with pytest.raises(SandboxError, match="`my_api` and `my-api` would both be named `my-api`"):
        export_compose(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_strict_passes_a_profile_that_maps_exactly(tmp_path: Path) -> None:
    path = tmp_path / "exact.yaml"
    path.write_text(
        "name: exact\nservices:\n  a: {kind: tcp, port: 7000}\n"
        "  b: {kind: http, port: 7001, depends_on: [a], ready: {http: /}}\n"
    )
    result = export_compose(path, tmp_path / "out", strict=True)
    assert result.lossless
    assert {p.name for p in result.written} == {"Dockerfile", "profile.yaml", "compose.yaml"}


def _same(profile: Any, other: Any) -> list[str]:
    """Equivalence of a round trip: the same services, kinds, fixed ports and dependencies.

    Addresses are not compared (the import gives each service its own again), nor is a port
    the original left `auto` (the export must fix one).
    """
    problems = []
    if set(profile.services) != set(other.services):
        return [f"services {sorted(profile.services)} != {sorted(other.services)}"]
    for name, spec in profile.services.items():
        back = other.services[name]
        if back.kind != spec.kind:
            problems.append(f"{name}: kind {spec.kind} != {back.kind}")
        if spec.port != "auto" and back.port != spec.port:
            problems.append(f"{name}: port {spec.port} != {back.port}")
        if back.depends_on != spec.depends_on:
            problems.append(f"{name}: depends_on {spec.depends_on} != {back.depends_on}")
    return problems


def test_round_trip_export_then_import_gives_an_equivalent_profile(tmp_path: Path) -> None:
    original = load_profile(str(BUNDLED))
    out = tmp_path / "out"
    export_compose(BUNDLED, out)
    back = import_compose(out / "compose.yaml", env={})
    again = load_profile_text(yaml.safe_dump(back.profile, sort_keys=False), "round-trip")
    assert again.name == original.name
    assert _same(original, again) == []
    back.profile["services"]["api"]["port"] = 8001
    moved = load_profile_text(yaml.safe_dump(back.profile, sort_keys=False), "moved")
    assert _same(original, moved) == ["api: port 8000 != 8001"]  # the comparison can fail


KINDS = {
    "ConfigMap": "configmap-v1.json",
    "Deployment": "deployment-apps-v1.json",
    "Service": "service-v1.json",
}


def test_k8s_export_is_valid_by_the_kubernetes_schemas(tmp_path: Path) -> None:
    out = tmp_path / "out"
    export_k8s(_profile(tmp_path), out)
    docs = list(yaml.safe_load_all((out / "kubernetes.yaml").read_text()))
    assert [d["kind"] for d in docs] == ["ConfigMap", "Deployment", "Service"] * 3
    validators = {
        kind: Draft202012Validator(_schema(f"k8s-v1.33/{file}")) for kind, file in KINDS.items()
    }
    for doc in docs:
        assert _errors(validators[doc["kind"]], doc) == [], doc["metadata"]["name"]
    broken = {**docs[1], "spec": {**docs[1]["spec"], "replicas": "one"}}
    assert _errors(validators["Deployment"], broken) != []


def test_k8s_export_shape(tmp_path: Path) -> None:
    out = tmp_path / "out"
    export_k8s(_profile(tmp_path), out)
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(
        (out / "kubernetes.yaml").read_text()
    )}  # fmt: skip
    web = docs["Deployment", "web"]["spec"]["template"]
    (container,) = web["spec"]["containers"]
    assert container["args"] == ["up", "/sandbox/profile.yaml", "--container-listen"]
    assert container["readinessProbe"]["exec"]["command"] == [
        "sandbox", "probe", "http://127.0.0.1:8080/",
    ]  # fmt: skip
    (wait,) = web["spec"]["initContainers"]
    assert wait["command"][-2:] == ["api", "8000"], "web waits for api, as depends_on said"
    assert len(web["metadata"]["annotations"]["sandbox.io/config-hash"]) == 12
    assert docs["Service", "api"]["spec"]["type"] == "ClusterIP"
    config = docs["ConfigMap", "web-profile"]
    assert "http://api:8000" in config["data"]["profile.yaml"]
    assert config["data"]["file-files_logo.svg"] == "<svg/>"
    items = docs["Deployment", "web"]["spec"]["template"]["spec"]["volumes"][0]["configMap"]
    assert {"key": "file-files_logo.svg", "path": "files/logo.svg"} in items["items"]
