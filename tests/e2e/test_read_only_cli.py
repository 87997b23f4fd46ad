"""Read-only commands through the real CLI: validate, schema, plan, probe, ports, doctor."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Cli

pytestmark = pytest.mark.e2e


@pytest.fixture
def held(spare_loopback: Any) -> Iterator[Callable[..., socket.socket]]:
    """Bind (and by default listen on) loopback sockets; all closed after the test."""
    made: list[socket.socket] = []

    def hold(address: str | None = None, *, listen: bool = True) -> socket.socket:
        family = socket.AF_INET6 if address and ":" in address else socket.AF_INET
        sock = socket.socket(family)
        made.append(sock)
        sock.bind((address or str(spare_loopback(1)[0]), 0))
        if listen:
            sock.listen()
        return sock

    yield hold
    for sock in made:
        sock.close()


def test_validate_reports_every_problem_with_position(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\n"
        "services:\n"
        "  api:\n"
        "    kind: http\n"
        "    port: 70000\n"
        "    adress: 127.0.0.5\n"
        "  db:\n"
        "    kind: tcp\n"
        "    address: 0.0.0.0\n"
    )
    done = cli("validate", str(bad))
    assert done.returncode == 3
    assert "Traceback" not in done.stderr
    assert f"{bad}:5:11 services.api.port" in done.stderr
    assert f"{bad}:6:5 services.api.adress" in done.stderr
    assert f"{bad}:9:14 services.db.address" in done.stderr
    assert "another machine" in done.stderr


def test_validate_json_and_a_good_profile(cli: Cli) -> None:
    data = cli.json("validate", "web-db-api")
    assert data["results"][0]["valid"] is True


def test_schema_is_json_schema_of_the_format(cli: Cli) -> None:
    schema = json.loads(cli("schema").stdout)
    assert "$schema" in schema
    assert "services" in json.dumps(schema)


def test_profiles_lists_bundled_ones(cli: Cli) -> None:
    names = {p["name"]: p for p in cli.json("profiles")["profiles"]}
    assert {"web-db-api", "ipv6-pair"} <= set(names)
    assert names["web-db-api"]["origin"] == "bundled"


def test_plan_names_the_owner_of_a_conflict(
    cli: Cli, tmp_path: Path, held: Callable[..., socket.socket]
) -> None:
    sock = held()
    address, port = sock.getsockname()[:2]
    path = tmp_path / "p.yaml"
    path.write_text(
        f"name: p\nservices:\n  db:\n    kind: tcp\n    address: {address}\n    port: {port}\n"
    )
    done = cli("plan", str(path))
    assert done.returncode == 4
    assert f"pid {os.getpid()}" in done.stdout
    data = cli.json("plan", str(path))
    (conflict,) = data["conflicts"]
    assert conflict["owner"]["pid"] == os.getpid()
    assert conflict["listener"] == {"address": address, "port": port}
    moved = cli.json("plan", str(path), "--on-conflict", "next-port")
    assert moved["conflicts"] == []
    assert moved["services"][0]["port"] != port
    assert moved["moves"][0]["service"] == "db"


def test_probe_open_refused_and_the_neighbour_hint(
    cli: Cli, held: Callable[..., socket.socket], spare_loopback: Any
) -> None:
    listener = held()
    address, port = listener.getsockname()[:2]
    other = str(next(a for a in spare_loopback(2) if str(a) != address))
    ok = cli.json("probe", f"{address}:{port}")
    assert ok["results"][0]["state"] == "open"
    assert ok["results"][0]["latency_ms"] is not None
    refused = cli("probe", f"{other}:{port}", "--json")
    assert refused.returncode == 5
    result = json.loads(refused.stdout)["results"][0]
    assert result["state"] == "refused"
    assert f"{address}:{port}" in result["detail"]
    assert "wrong address" in result["detail"]


def test_probe_ipv6_and_localhost(cli: Cli, held: Callable[..., socket.socket]) -> None:
    v6 = held("::1")
    port = v6.getsockname()[1]
    data = cli.json("probe", f"[::1]:{port}", f"localhost:{port}")
    states = {r["target"]: r["state"] for r in data["results"]}
    assert states[f"[::1]:{port}"] == "open"
    localhost = [r for r in data["results"] if r["target"].startswith("localhost")]
    assert localhost, data
    assert all(r["address"] in ("127.0.0.1", "::1") for r in localhost)


def test_probe_refuses_non_loopback_targets(cli: Cli) -> None:
    done = cli("probe", "10.0.0.1:80")
    assert done.returncode == 2
    assert "not a network scanner" in done.stderr
    unbracketed = cli("probe", "::1:8080")
    assert unbracketed.returncode == 2
    assert "[::1]:8080" in unbracketed.stderr


def test_probe_http_url(cli: Cli, write_profile: Callable[[dict[str, Any]], Path],
                        spare_loopback: Any) -> None:  # fmt: skip
    (address,) = spare_loopback(1)
    path = write_profile({"name": "one", "services": {"api": {
        "kind": "http", "address": str(address),
        "routes": [{"path": "/health", "response": {"status": 204}}]}}})  # fmt: skip
    status = cli.json("up", str(path), "-d")
    url = status["services"][0]["url"] + "/health"
    data = cli.json("probe", url)
    assert data["results"][0]["http_status"] == 204
    by_name = cli.json("probe", str(path.with_suffix("")).rsplit("/", 1)[1])
    assert by_name["results"], by_name  # all() of nothing would pass
    assert all(r["state"] == "open" for r in by_name["results"])


def test_ports_lists_our_listener_with_owner(cli: Cli, held: Callable[..., socket.socket]) -> None:
    sock = held()
    address, port = sock.getsockname()[:2]
    listeners = cli.json("ports")["listeners"]
    mine = [x for x in listeners if x["address"] == address and x["port"] == port]
    assert len(mine) == 1
    assert mine[0]["pid"] == os.getpid()
    assert mine[0]["protocol"] == "tcp"


def test_doctor_json(cli: Cli) -> None:
    done = cli("doctor", "--json")
    data = json.loads(done.stdout)
    names = {c["name"] for c in data["checks"]}
    assert {"ipv4-range", "ipv6-loopback", "localhost"} <= names
    assert done.returncode == (1 if data["status"] == "problem" else 0)


def test_help_explains_exit_codes(cli: Cli) -> None:
    done = cli("--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "4 port conflict" in text
    assert "6 teardown incomplete" in text
