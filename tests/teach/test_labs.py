"""`sandbox lab`: every lab started, checked, stopped, and nothing left behind.

Labs use fixed, documented address:ports (they are teaching material), so every CLI test here
runs inside a private network namespace of its own (`NamespacedCli`): fixed ports there can
clash with nothing on the machine, nor with tests running alongside.
"""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.errors import UsageError
from sandbox.net.addresses import format_hostport
from sandbox.output import Printer
from sandbox.output.labs import render_stopped
from sandbox.profile.loader import bundled_dir, load_profile
from sandbox.runtime.teardown import DownReport
from sandbox.teach import holder
from sandbox.teach.labs import (
    INSTRUCTIONS,
    LABS,
    LabStatus,
    get_lab,
    localhost_case,
)
from tests.helpers import gone
from tests.netns_cli import NamespacedCli, private_netns


@pytest.fixture
def ns(tmp_path: Path) -> Iterator[NamespacedCli]:
    with private_netns(tmp_path) as cli:
        yield cli


def _endpoints(lab: str) -> set[str]:
    profile = load_profile(bundled_dir() / f"lab-{lab}.yaml")
    return {format_hostport(s.address, int(s.port)) for s in profile.services.values()}


# -- without a namespace: the registry, the texts, the holder's arguments -------------------


def test_every_lab_has_its_bundled_profile_and_instructions() -> None:
    assert list(LABS) == ["port-taken", "same-port", "localhost", "one-address"]
    for name, lab in LABS.items():
        profile = load_profile(bundled_dir() / f"{lab.profile}.yaml")
        assert profile.name == lab.sandbox == f"lab-{name}"
        assert name in INSTRUCTIONS
        for service in profile.services.values():
            assert service.address != "auto"
            assert service.port != "auto"


def test_an_unknown_lab_is_a_usage_error_listing_the_labs() -> None:
    with pytest.raises(UsageError) as caught:
        get_lab("port-takn")
    assert all(name in caught.value.message for name in LABS)


@pytest.mark.parametrize("name", list(LABS))
def test_the_instructions_fill_in_from_a_status(name: str) -> None:
    profile = load_profile(bundled_dir() / f"lab-{name}.yaml")
    services = [
        {"name": n, "address": s.address, "port": s.port, "url": f"x://{s.address}:{s.port}",
         "pid": 4242, "kind": s.kind, "state": "open", "reachable": True, "latency_ms": 0.1}
        for n, s in profile.services.items()
    ]  # fmt: skip
    facts = {"command": "prog --flag", "localhost_case": "CASE."}
    text = LabStatus(LABS[name], {"services": services}, facts).instructions
    assert "{" not in text
    for service in services:
        assert f"{service['address']}:{service['port']}" in text


@pytest.mark.parametrize(
    ("addresses", "says"),
    [
        (["127.0.0.1"], "127.0.0.1 only"),
        (["::1", "127.0.0.1"], "tries only the first address"),
        (["127.0.0.1", "::1"], "trying 127.0.0.1 first"),
        (["::1"], "no client reaches this server"),
        ([], "does not resolve"),
    ],
)
def test_localhost_case_names_the_machine_s_case(addresses: list[str], says: str) -> None:
    assert says in localhost_case(addresses, 8300, "boom")


@pytest.mark.parametrize(
    "argv",
    [["0.0.0.0", "80"], ["::", "80"], ["10.0.0.1", "80"], ["127.0.0.1", "0"], ["127.0.0.1"],
     ["localhost", "80"]],
)  # fmt: skip
def test_the_holder_listens_on_loopback_literals_only(argv: list[str]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (each a different message)
        holder.parse(argv)


def test_render_stopped_says_when_a_lab_was_not_running() -> None:
    buffer = io.StringIO()
    render_stopped(DownReport(name="lab-same-port", supervisor_was_alive=False), Printer(buffer))
    assert buffer.getvalue() == 'lab "same-port" is not running.\n'


# -- in a namespace: the real thing ---------------------------------------------------------


@pytest.mark.netns
@pytest.mark.e2e
@pytest.mark.parametrize("name", list(LABS))
def test_a_lab_starts_answers_and_stops_leaving_nothing(ns: NamespacedCli, name: str) -> None:
    want = _endpoints(name)
    started = ns("lab", "start", name)
    assert started.returncode == 0, started.stderr
    assert f"lab {name}:" in started.stdout
    assert f"sandbox lab stop {name}" in started.stdout
    status = ns.json("status")["sandboxes"]
    assert [s["name"] for s in status] == [f"lab-{name}"]
    assert all(s["reachable"] for s in status[0]["services"])
    assert want <= ns.listening()
    listed = {e["name"]: e for e in ns.json("lab", "list")["labs"]}
    assert listed[name]["state"] == "running"
    assert set(listed[name]["endpoints"]) == want
    pids = [status[0]["supervisor_pid"], *(s["pid"] for s in status[0]["services"] if s["pid"])]

    stopped = ns.json("lab", "stop", name)
    assert stopped["clean"]
    assert stopped["stopped"]
    assert not want & ns.listening()
    assert ns.json("status") == {"sandboxes": []}
    assert not (ns.state / f"lab-{name}").exists()
    assert all(gone(pid) for pid in pids)
    assert {e["name"]: e["state"] for e in ns.json("lab", "list")["labs"]}[name] == "stopped"
    again = ns("lab", "stop", name)
    assert (again.returncode, again.stdout) == (0, f'lab "{name}" is not running.\n')


@pytest.mark.netns
@pytest.mark.e2e
def test_port_taken_is_a_foreign_conflict_for_web_db_api(ns: NamespacedCli) -> None:
    lab = ns.json("lab", "start", "port-taken")
    (service,) = lab["status"]["services"]
    pid = service["pid"]
    assert (service["address"], service["port"]) == ("127.20.0.2", 8000)
    assert f"pid {pid}" in lab["instructions"]
    assert "sandbox.teach.holder 127.20.0.2 8000" in lab["facts"]["command"]

    plan = ns("plan", "web-db-api", "--json")
    assert plan.returncode == 4
    (conflict,) = json.loads(plan.stdout)["conflicts"]
    assert conflict["service"] == "api"
    assert conflict["owner"]["pid"] == pid
    assert "sandbox.teach.holder" in conflict["owner"]["cmdline"]
    assert conflict["owner"]["sandbox"] is None  # a foreign process, not a sandbox of ours
    text = ns("plan", "web-db-api").stdout
    assert f"kill {pid}" in text
    assert "of ours" not in text

    # The holder is a real server: it greets, then answers the line it is sent.
    talk = ns.python(
        "import json, socket\n"
        "with socket.create_connection(('127.20.0.2', 8000), timeout=5) as s:\n"
        "    f = s.makefile('rwb')\n"
        "    hello = f.readline().decode(); f.write(b'hi\\r\\n'); f.flush()\n"
        "    print(json.dumps([hello, f.readline().decode()]))"
    )
    assert talk == [f"holder pid {pid} holds 127.20.0.2:8000\r\n", "you said: hi\r\n"]

    moved = ns.json("plan", "web-db-api", "--on-conflict", "next-address")
    assert moved["conflicts"] == []
    assert [m["service"] for m in moved["moves"]] == ["api"]
    assert ns("lab", "stop", "port-taken").returncode == 0
    assert ns("plan", "web-db-api").returncode == 0
    assert gone(pid)


@pytest.mark.netns
@pytest.mark.e2e
def test_a_lab_whose_port_is_taken_fails_with_4_and_starts_nothing(ns: NamespacedCli) -> None:
    assert ns("up", "web-db-api", "-d").returncode == 0
    taken = ns("lab", "start", "port-taken")
    assert taken.returncode == 4
    assert "holder (127.20.0.2:8000) is taken by pid" in taken.stderr
    assert "-m sandbox.runtime.supervisor" in taken.stderr  # the owner's command line, capped
    assert "sandbox lab start port-taken` again" in taken.stderr
    assert not (ns.state / "lab-port-taken" / "state.json").exists()
    assert [s["name"] for s in ns.json("status")["sandboxes"]] == ["web-db-api"]
    twice = ns("lab", "start", "same-port")
    assert twice.returncode == 0, twice.stderr
    again = ns("lab", "start", "same-port")
    assert again.returncode == 4
    assert "lab same-port is already running" in again.stderr


@pytest.mark.netns
@pytest.mark.e2e
def test_same_port_two_services_answer_on_their_own_addresses(ns: NamespacedCli) -> None:
    assert ns("lab", "start", "same-port").returncode == 0
    answers = ns.python(
        "import json, urllib.request\n"
        "got = {}\n"
        "for a in ('127.30.0.1', '127.30.0.2'):\n"
        "    with urllib.request.urlopen(f'http://{a}:8080/', timeout=5) as r:\n"
        "        got[a] = json.loads(r.read())\n"
        "print(json.dumps(got))"
    )
    assert answers == {
        "127.30.0.1": {"service": "blue", "url": "http://127.30.0.1:8080"},
        "127.30.0.2": {"service": "green", "url": "http://127.30.0.2:8080"},
    }
    listeners = [x for x in ns.json("ports")["listeners"] if x["port"] == 8080]
    assert sorted(x["address"] for x in listeners) == ["127.30.0.1", "127.30.0.2"]


@pytest.mark.netns
@pytest.mark.e2e
def test_localhost_probe_follows_this_machine_s_resolution(ns: NamespacedCli) -> None:
    lab = ns.json("lab", "start", "localhost")
    resolved = list(
        dict.fromkeys(
            str(info[4][0])
            for info in socket.getaddrinfo("localhost", 8300, type=socket.SOCK_STREAM)
        )
    )
    assert lab["facts"]["localhost_resolves_to"] == resolved
    case = " ".join(localhost_case(resolved, 8300).split())
    assert case in " ".join(lab["instructions"].split())  # wrapped for the terminal

    probe = ns("probe", "localhost:8300", "--json")
    results = json.loads(probe.stdout)["results"]
    assert [r["address"] for r in results] == [a for a in resolved if a in ("127.0.0.1", "::1")]
    states = {r["address"]: r["state"] for r in results}
    assert states.get("127.0.0.1", "open") == "open"
    assert states.get("::1", "refused") == "refused"
    assert probe.returncode == (5 if "::1" in states else 0)

    v6 = ns("probe", "[::1]:8300", "--json")
    assert v6.returncode == 5
    (result,) = json.loads(v6.stdout)["results"]
    assert result["state"] == "refused"
    assert "but 127.0.0.1:8300" in result["detail"]


@pytest.mark.netns
@pytest.mark.e2e
def test_one_address_answers_there_only_with_the_neighbour_hint(ns: NamespacedCli) -> None:
    assert ns("lab", "start", "one-address").returncode == 0
    here = ns.json("probe", "127.40.0.7:9000")["results"][0]
    assert here["state"] == "open"
    pong = ns.python(
        "import json, socket\n"
        "with socket.create_connection(('127.40.0.7', 9000), timeout=5) as s:\n"
        "    f = s.makefile('rwb')\n"
        "    banner = f.readline().decode(); f.write(b'PING\\r\\n'); f.flush()\n"
        "    print(json.dumps([banner, f.readline().decode()]))"
    )
    assert pong == ["db on 127.40.0.7:9000 only\r\n", "+PONG\r\n"]
    for elsewhere in ("127.40.0.8:9000", "127.0.0.1:9000"):
        done = ns("probe", elsewhere, "--json")
        assert done.returncode == 5
        (result,) = json.loads(done.stdout)["results"]
        assert result["state"] == "refused"
        assert "but 127.40.0.7:9000" in result["detail"]
        assert "wrong address?" in result["detail"]


@pytest.mark.netns
@pytest.mark.e2e
def test_down_all_removes_labs_like_any_sandbox(ns: NamespacedCli) -> None:
    for name in ("same-port", "one-address"):
        assert ns("lab", "start", name).returncode == 0
    down = ns.json("down", "--all")
    assert sorted(r["name"] for r in down["sandboxes"]) == ["lab-one-address", "lab-same-port"]
    assert all(r["clean"] for r in down["sandboxes"])
    assert not (_endpoints("same-port") | _endpoints("one-address")) & ns.listening()
    assert {e["state"] for e in ns.json("lab", "list")["labs"]} == {"stopped"}


@pytest.mark.netns
@pytest.mark.e2e
def test_unknown_lab_exits_2(ns: NamespacedCli) -> None:
    done = ns("lab", "start", "nope")
    assert done.returncode == 2
    assert "port-taken, same-port, localhost, one-address" in done.stderr
