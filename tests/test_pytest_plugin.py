"""The pytest plugin, run by pytester: fixtures bring profiles up and leave nothing behind."""

from __future__ import annotations

import ipaddress
import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import gone, listening

pytest_plugins = ["pytester"]

SERVER = Path(__file__).resolve().parent / "programs" / "echo_server.py"

# The inner test module: every test notes where its services were (and the program's pid)
# in SEEN before touching them, so the outer test can check that all of it is gone.
INNER = """
import json
import shlex
import urllib.request
from pathlib import Path

import pytest

ADDRESSES = {addresses!r}
SEEN = Path({seen!r})
SERVE = " ".join([shlex.quote({python!r}), shlex.quote({server!r}), "{{address}} {{port}}"])


def note(sb, service, **extra):
    entry = {{"address": sb.address(service), "port": sb.port(service), **extra}}
    with SEEN.open("a") as out:
        out.write(json.dumps(entry) + "\\n")


def get(address, port, path):
    with urllib.request.urlopen(f"http://{{address}}:{{port}}{{path}}", timeout=5) as answer:
        return answer.read().decode()


def stub(name, address):
    route = {{"path": "/hi", "response": {{"body": name}}}}
    services = {{"api": {{"kind": "http", "address": address, "port": "auto", "routes": [route]}}}}
    return {{"name": name, "services": services}}


def test_a_stub_answers(sandbox_factory):
    sb = sandbox_factory(stub("plug-stub", ADDRESSES[0]))
    note(sb, "api")
    assert get(sb.address("api"), sb.port("api"), "/hi") == "plug-stub"


def test_a_program_fails_on_purpose(sandbox_factory):
    app = {{"kind": "command", "address": ADDRESSES[1], "port": "auto", "run": SERVE}}
    sb = sandbox_factory({{"name": "plug-cmd", "services": {{"app": app}}}})
    info = json.loads(get(sb.address("app"), sb.port("app"), "/env"))
    note(sb, "app", pid=info["pid"])
    assert info["env"]["SANDBOX_APP_PORT"] == str(sb.port("app"))
    assert info == "something else", "failing on purpose"


@pytest.fixture(scope="module")
def shared(module_sandbox_factory):
    return module_sandbox_factory(stub("plug-module", ADDRESSES[2]))


def test_module_scope_first(shared):
    note(shared, "api")
    assert get(shared.address("api"), shared.port("api"), "/hi") == "plug-module"


def test_module_scope_second_sees_the_same_sandbox(shared):
    first = json.loads(SEEN.read_text().splitlines()[-1])
    assert (first["address"], first["port"]) == (shared.address("api"), shared.port("api"))


def test_session_scope(session_sandbox_factory):
    sb = session_sandbox_factory(stub("plug-session", ADDRESSES[3]))
    note(sb, "api")
    assert get(sb.address("api"), sb.port("api"), "/hi") == "plug-session"
"""


# The inner conftest: right after each test's teardown (before the process could exit and
# take everything with it) it notes what still listens on the addresses and which noted
# programs still live.
INNER_CONFTEST = """
import ipaddress
import json
from pathlib import Path

from sandbox.net.table import read_table

ADDRESSES = {addresses!r}
SEEN = Path({seen!r})
AFTER = Path({after!r})


def alive(pid):
    try:
        stat = Path(f"/proc/{{pid}}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def pytest_runtest_logfinish(nodeid, location):
    table = read_table(protocols=("tcp",))
    listening = {{
        a: [x.port for x in table if x.address == ipaddress.ip_address(a)] for a in ADDRESSES
    }}
    seen = [json.loads(line) for line in SEEN.read_text().splitlines()] if SEEN.exists() else []
    pids = [e["pid"] for e in seen if "pid" in e and alive(e["pid"])]
    with AFTER.open("a") as out:
        out.write(json.dumps({{"test": nodeid.split("::")[-1], "listening": listening,
                              "alive": pids}}) + "\\n")
"""


def test_fixtures_leave_no_listener_even_when_a_test_fails(
    pytester: pytest.Pytester, spare_loopback: Callable[[int], list[ipaddress.IPv4Address]]
) -> None:
    addresses = [str(a) for a in spare_loopback(4)]
    seen = pytester.path / "seen.jsonl"
    pytester.makeini(
        "[pytest]\nfilterwarnings = error\nasyncio_default_fixture_loop_scope = function\n"
    )
    after = pytester.path / "after.jsonl"
    pytester.makeconftest(
        INNER_CONFTEST.format(addresses=addresses, seen=str(seen), after=str(after))
    )
    pytester.makepyfile(
        test_inner=INNER.format(
            addresses=addresses, seen=str(seen), python=sys.executable, server=str(SERVER)
        )
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)

    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: failing on purpose*"])
    entries = [json.loads(line) for line in seen.read_text().splitlines()]
    assert sorted({e["address"] for e in entries}) == sorted(addresses)
    assert all(e["port"] > 0 for e in entries)
    snapshots = {s["test"]: s for s in map(json.loads, after.read_text().splitlines())}
    stub, program, module, _ = addresses
    # Function scope: gone right after the test, the failed one included.
    assert snapshots["test_a_stub_answers"]["listening"][stub] == []
    assert snapshots["test_a_program_fails_on_purpose"]["listening"][program] == []
    assert snapshots["test_a_program_fails_on_purpose"]["alive"] == []
    # Module scope: alive between the module's tests, gone after its last one.
    assert snapshots["test_module_scope_second_sees_the_same_sandbox"]["listening"][module]
    last = snapshots["test_session_scope"]["listening"]
    assert last == {address: [] for address in addresses}
    for address in addresses:
        assert listening(address) == [], f"something still listens on {address}"
    (pid,) = [e["pid"] for e in entries if "pid" in e]
    assert gone(pid)


VERIFY_INNER = """
import urllib.request


def test_the_stub_was_not_called_as_expected(sandbox_factory):
    route = {{"method": "GET", "path": "/orders", "response": {{"body": "none"}}}}
    api = {{"kind": "http", "address": {address!r}, "routes": [route]}}
    sb = sandbox_factory({{"name": "plug-verify", "services": {{"api": api}}}})
    urllib.request.urlopen(sb.url("api") + "/orders", timeout=5).read()
    assert sb.verify("api", method="GET", path="/orders", times=1) == 1
    sb.verify("api", method="POST", path="/orders", times=1)
"""


def test_a_failed_verify_is_reported_by_pytest_with_what_was_received(
    pytester: pytest.Pytester, spare_loopback: Callable[[int], list[ipaddress.IPv4Address]]
) -> None:
    [address] = spare_loopback(1)
    pytester.makeini(
        "[pytest]\nfilterwarnings = error\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(test_inner=VERIFY_INNER.format(address=str(address)))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*VerificationError: api: expected POST /orders exactly 1 time, received it 0 times.",
            "*api received 1 (all listed):",
            "*#* GET /orders -> 200 (routes[[]0] GET /orders)",
            "*nearest misses:",
            "*#* GET /orders: method GET, not POST",
        ]
    )
    assert listening(str(address)) == []
