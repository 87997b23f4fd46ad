"""`import`, `export` and `up --container-listen` through the real CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Cli

pytestmark = pytest.mark.e2e

SAMPLES = Path(__file__).resolve().parents[1] / "io" / "samples"
# One sample per format, each with at least one loss (so --strict must fail on it), and the
# name of the profile it becomes.
IMPORTS = {
    "openapi": (SAMPLES / "openapi" / "petstore.yaml", "petstore"),
    "wiremock": (SAMPLES / "wiremock" / "shop", "shop"),
    "mountebank": (SAMPLES / "mountebank" / "mixed-protocols.json", "mixed-protocols"),
    "har": (SAMPLES / "har" / "login-flow.har", "login-flow"),
    "compose": (SAMPLES / "compose" / "blog" / "compose.yaml", "blog"),
}


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:  # literal loopback URLs only
        return response.status, response.read().decode()


@pytest.mark.parametrize("fmt", sorted(IMPORTS))
def test_import_writes_a_valid_profile_and_its_report(cli: Cli, fmt: str) -> None:
    source, name = IMPORTS[fmt]
    profile = cli.cwd / "profiles" / f"{name}.yaml"
    report = cli.cwd / "profiles" / f"{name}.import-report.txt"

    strict = cli("import", fmt, str(source), "--strict")
    assert strict.returncode == 3, strict.stderr
    assert "with --strict nothing was written" in strict.stderr
    assert not (cli.cwd / "profiles").exists(), "--strict wrote something"

    done = cli("import", fmt, str(source))
    assert done.returncode == 0, done.stderr
    assert f"wrote {Path('profiles') / f'{name}.yaml'}" in done.stdout
    assert profile.is_file()
    assert report.is_file()
    valid = cli("validate", str(profile))
    assert valid.returncode == 0, valid.stderr
    text = report.read_text()
    assert text.startswith(f"Import report: {source} ({fmt}),")
    rows = [line for line in text.splitlines() if line.startswith(("dropped", "approximated"))]
    # The strict refusal listed every loss, one line each: the report has the same ones.
    listed = [line for line in strict.stderr.splitlines() if line.startswith("  ")]
    assert rows
    assert len(rows) == len(listed)

    before = profile.read_bytes()
    again = cli("import", fmt, str(source))
    assert again.returncode == 2
    assert f"refuses to overwrite {Path('profiles') / f'{name}.yaml'}" in again.stderr
    assert "--force" in again.stderr
    assert profile.read_bytes() == before
    assert cli("import", fmt, str(source), "--force").returncode == 0


def test_import_json_output_and_report(cli: Cli) -> None:
    source, _ = IMPORTS["har"]
    done = cli("import", "har", str(source), "-o", "mine/flow.yaml", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["profile"] == str(Path("mine") / "flow.yaml")
    assert result["name"] == "login-flow"
    assert (cli.cwd / result["profile"]).is_file()
    assert result["files"][0] == result["profile"]
    assert result["losses"], "the sample has losses"
    assert {tuple(loss) for loss in result["losses"]} == {("kind", "location", "what")}
    assert result["report"] == str(Path("mine") / "flow.import-report.json")
    written = json.loads((cli.cwd / result["report"]).read_text())
    assert written["losses"] == result["losses"]
    # Secrets are redacted by default and kept on request.
    assert any("redacted" in loss["what"] for loss in result["losses"])
    kept = cli.json("import", "har", str(source), "-o", "kept.yaml", "--keep-secrets")
    assert not any("redacted" in loss["what"] for loss in kept["losses"])


def test_import_options_reach_the_importer(cli: Cli) -> None:
    source, _ = IMPORTS["openapi"]
    plain = cli("import", "openapi", str(source), "-o", "plain.yaml", "--seed", "7")
    checked = cli("import", "openapi", str(source), "-o", "checked.yaml", "--validate-requests")
    assert plain.returncode == checked.returncode == 0, plain.stderr + checked.stderr
    assert (cli.cwd / "plain.yaml").read_text() != (cli.cwd / "checked.yaml").read_text()
    wiremock, _ = IMPORTS["wiremock"]
    ported = cli("import", "wiremock", str(wiremock), "-o", "w.yaml", "--port", "9123")
    assert ported.returncode == 0, ported.stderr
    services = yaml.safe_load((cli.cwd / "w.yaml").read_text())["services"]
    assert [s["port"] for s in services.values()] == [9123]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["har", "x.har", "--seed", "1"], "--seed applies to `import openapi` only"),
        (["compose", "c.yml", "--validate-requests"], "--validate-requests applies to"),
        (["openapi", "o.yaml", "--keep-secrets"], "--keep-secrets applies to `import har`"),
        (["mountebank", "m.json", "--port", "80"], "--port applies to `import wiremock`"),
        (["postman", "p.json"], "the formats are openapi, wiremock, mountebank, har, compose"),
    ],
)
def test_import_refuses_what_does_not_apply(cli: Cli, args: list[str], says: str) -> None:
    done = cli("import", *args)
    assert done.returncode == 2
    assert says in done.stderr
    assert "Traceback" not in done.stderr


def test_import_of_a_missing_source_is_exit_3(cli: Cli) -> None:
    done = cli("import", "openapi", str(cli.cwd / "nowhere.yaml"))
    assert done.returncode == 3
    assert "nowhere.yaml" in done.stderr
    assert not (cli.cwd / "profiles").exists()


def _stub(name: str, **extra: Any) -> dict[str, Any]:
    routes = [{"path": "/health", "response": {"body": "ok"}}]
    services: dict[str, Any] = {"api": {"kind": "http", "port": 8000, "routes": routes}}
    services.update(extra)
    return {"name": name, "services": services}


@pytest.mark.parametrize(
    ("engine", "main_file"), [("compose", "compose.yaml"), ("k8s", "kubernetes.yaml")]
)
def test_export_writes_its_files(
    cli: Cli, write_profile: Callable[[dict[str, Any]], Path], engine: str, main_file: str
) -> None:
    path = write_profile(_stub("shipping"))
    done = cli("export", engine, str(path))
    assert done.returncode == 0, done.stderr
    folder = cli.cwd / f"shipping-{engine}"
    assert (folder / main_file).is_file()
    assert (folder / "Dockerfile").is_file()
    for name in (main_file, "Dockerfile"):
        assert str(Path(f"shipping-{engine}") / name) in done.stdout
    assert "exact" in done.stdout

    refused = cli("export", engine, str(path))
    assert refused.returncode == 2
    assert "is not empty" in refused.stderr

    again = cli.json("export", engine, str(path), "--force")
    assert again["engine"] == engine
    assert again["profile"] == str(path)
    assert str(Path(f"shipping-{engine}") / main_file) in again["files"]
    assert again["losses"] == []


@pytest.mark.parametrize("engine", ["compose", "k8s"])
def test_export_strict_fails_on_a_command_service(
    cli: Cli, write_profile: Callable[[dict[str, Any]], Path], engine: str
) -> None:
    worker = {"kind": "command", "run": "python -m http.server {port} --bind {address}"}
    path = write_profile(_stub("withjob", worker=worker))
    done = cli("export", engine, str(path), "-o", "out", "--strict")
    assert done.returncode == 3
    assert "`worker` is a command service" in done.stderr
    assert not (cli.cwd / "out").exists()

    loose = cli.json("export", engine, str(path), "-o", "out")
    assert [loss["kind"] for loss in loose["losses"]] == ["dropped"]
    assert "worker" in loose["losses"][0]["location"]


def test_export_takes_a_profile_by_name(cli: Cli) -> None:
    done = cli.json("export", "compose", "web-db-api", "-o", "bundled")
    assert done["profile"].endswith("web-db-api.yaml")
    assert (cli.cwd / "bundled" / "compose.yaml").is_file()


def test_container_listen_is_refused_with_detach(cli: Cli) -> None:
    done = cli("up", "web-db-api", "--container-listen", "-d")
    assert done.returncode == 2
    assert "cannot be combined with -d" in done.stderr
    assert not list(cli.state.glob("*/state.json")), "nothing may start"


def test_container_listen_is_refused_outside_a_container(cli: Cli, tmp_path: Path) -> None:
    # This machine may itself be a container: look for the markers under an empty root.
    env = {k: v for k, v in cli.env.items() if k != "container"}
    env["SANDBOX_CONTAINER_ROOT"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "sandbox", "up", "web-db-api", "--container-listen"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=cli.cwd,
        check=False,
    )
    assert done.returncode == 2
    assert "only safe inside a container" in done.stderr
    assert not list(cli.state.glob("*/state.json")), "nothing may start"


def test_imported_wiremock_stubs_come_up_and_answer(cli: Cli, spare_loopback: Any) -> None:
    source, _ = IMPORTS["wiremock"]
    done = cli("import", "wiremock", str(source), "-o", "shop.yaml")
    assert done.returncode == 0, done.stderr
    path = cli.cwd / "shop.yaml"
    # The import keeps WireMock's fixed port; here the kernel picks one, on an address of
    # this test's own, so the test never depends on a port being free.
    data = yaml.safe_load(path.read_text())
    (address,) = spare_loopback(1)
    for service in data["services"].values():
        service["port"] = "auto"
        service["address"] = str(address)
    path.write_text(yaml.safe_dump(data, sort_keys=False))

    up = cli("up", str(path), "-d")
    assert up.returncode == 0, up.stderr
    (running,) = cli.json("status", "shop")["sandboxes"]
    (service,) = running["services"]
    assert service["address"] == str(address)
    code, body = _get(service["url"] + "/products")
    assert code == 200
    assert json.loads(body) == [{"id": 1, "name": "Lamp"}, {"id": 2, "name": "Desk"}]
    code, page = _get(service["url"] + "/")  # served from a file the import wrote
    assert code == 200
    assert page == (source / "__files" / "pages" / "home.html").read_text()

    t0 = time.monotonic()
    down = cli("down", "shop")
    assert down.returncode == 0, down.stderr
    assert time.monotonic() - t0 < 30


def test_the_readme_import_and_export_commands_run(cli: Cli) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Bring existing setups in", 1)[1].split("```", 2)[1]
    commands = [line.split("#")[0].split()[2:] for line in block.splitlines() if line[:2] == "$ "]
    assert [c[:2] for c in commands] == [["import", "openapi"], ["export", "compose"]]
    shutil.copy(IMPORTS["openapi"][0], cli.cwd / "petstore.yaml")
    for args in commands:
        done = cli(*args)
        assert done.returncode == 0, f"sandbox {' '.join(args)}: {done.stderr}"
    assert (cli.cwd / "profiles" / "petstore.import-report.txt").is_file()
    assert (cli.cwd / "deploy" / "compose.yaml").is_file()
