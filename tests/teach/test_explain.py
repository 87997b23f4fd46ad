"""Tests for sandbox.teach.explain: every verdict against real held sockets on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import io
import ipaddress
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox.errors import BindError, UsageError
from sandbox.net.addresses import format_hostport
from sandbox.net.listeners import Listener, Owner
from sandbox.net.sockets import bind_listener
from sandbox.output import Printer
from sandbox.output.explain import render
from sandbox.probe import ProbeState, resolve
from sandbox.proc.processes import ref_for
from sandbox.runtime.state import SandboxRecord, ServiceRecord, StateDir
from sandbox.teach.explain import Explanation, explain
from tests.netns import netns_json

Spare = Callable[[int], list[ipaddress.IPv4Address]]


@contextlib.contextmanager
def holding(address: str, *, listen: bool = True, v6only: int | None = 1) -> Iterator[int]:
    """A TCP socket bound to address:0 for the block (listening unless told); yields its port."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        if family == socket.AF_INET6 and v6only is not None:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
        try:
            sock.bind((address, 0))
        except OSError as exc:
            pytest.skip(f"cannot bind {address} here: {exc}")
        if listen:
            sock.listen()
        yield sock.getsockname()[1]


def can_bind(address: str, port: int) -> bool:
    try:
        bind_listener(address, port).close()
    except BindError:
        return False
    return True


async def one(
    target: str, state_root: Path | None = None, table: list[Listener] | None = None
) -> Explanation:
    if table is None:
        results = await explain(target, state_root=state_root)
    else:
        results = await explain(target, state_root=state_root, table_reader=lambda: table)
    [result] = results
    json.dumps(result.to_json())  # always plain JSON
    return result


async def test_an_exact_holder_is_named_with_its_pid_and_concrete_ways_out(
    spare_loopback: Spare,
) -> None:
    a = str(spare_loopback(1)[0])
    with holding(a) as port:
        result = await one(f"{a}:{port}")
        # The ways out name a free address and a free port: they really bind, right now.
        assert result.free_address is not None
        assert result.free_port is not None
        assert result.free_address != a
        assert can_bind(result.free_address, port)
        assert result.free_port != port
        assert can_bind(a, result.free_port)
    assert result.verdict == "in-use-exact"
    assert not result.bindable
    assert result.bind.errno == "EADDRINUSE"
    assert result.table_agrees
    [blocker] = result.blockers
    assert blocker.rule == "exact"
    assert blocker.listener.owner is not None
    assert blocker.listener.owner.pid == os.getpid()
    assert result.probe is not None
    assert result.probe.state is ProbeState.OPEN
    assert any(f"`kill {os.getpid()}`" in way for way in result.ways_out)
    assert any(f"{result.free_address}:{port}" in way for way in result.ways_out)
    assert any(f"{a}:{result.free_port}" in way for way in result.ways_out)
    assert any("--on-conflict next-address" in way for way in result.ways_out)
    assert "Rule exact" in " ".join(result.sentences)


async def test_refused_with_a_neighbour_on_the_same_port(spare_loopback: Spare) -> None:
    a, b = (str(x) for x in spare_loopback(2))
    with holding(a) as port:
        result = await one(f"{b}:{port}")
    assert result.verdict == "refused-neighbour"
    assert result.bindable
    assert not result.blockers
    assert result.probe is not None
    assert result.probe.state is ProbeState.REFUSED
    assert [str(n.address) for n in result.neighbours if n.port == port] == [a]
    assert f"{a}:{port}" in " ".join(result.sentences)
    [way] = result.ways_out
    assert way.startswith(f"Dial {a}:{port} instead")


async def test_a_free_endpoint(spare_loopback: Spare) -> None:
    a = str(spare_loopback(1)[0])
    with holding(a) as port:
        pass  # a port the kernel just handed out, released again
    result = await one(f"{a}:{port}")
    assert result.bindable
    assert result.table_agrees
    assert not result.blockers
    assert result.bind.ok
    assert result.bind.errno is None
    assert result.probe is not None
    assert result.probe.state is ProbeState.REFUSED
    # Another test may hold this port on another address; then it is a neighbour.
    assert result.verdict == ("refused-neighbour" if result.neighbours else "free")
    if not result.neighbours:
        assert result.ways_out == ()
        assert result.sentences[0].startswith(f"{a}:{port} can be bound now")


async def test_ipv6_loopback_in_use_offers_an_ipv4_address() -> None:
    with holding("::1") as port:
        result = await one(f"[::1]:{port}")
        assert result.free_address is not None
        assert ipaddress.ip_address(result.free_address).version == 4
        assert can_bind(result.free_address, port)
    assert result.endpoint == f"[::1]:{port}"
    assert result.verdict == "in-use-exact"
    assert [b.rule for b in result.blockers] == ["exact"]
    assert any("only IPv6 loopback address" in way for way in result.ways_out)
    # Another address cannot be chosen for ::1 by the plan: only the port option is offered.
    assert not any("next-address" in way for way in result.ways_out)


async def test_ipv6_loopback_free_next_to_an_ipv4_holder() -> None:
    with holding("127.0.0.1") as port:
        result = await one(f"[::1]:{port}")
    # 127.0.0.1:P and [::1]:P coexist (FIELD-NOTES 5).
    assert result.bindable
    assert result.verdict == "refused-neighbour"
    assert any(str(n.address) == "127.0.0.1" for n in result.neighbours)


async def test_a_bound_but_not_listening_socket_is_trusted_over_the_table(
    spare_loopback: Spare,
) -> None:
    a = str(spare_loopback(1)[0])
    with holding(a, listen=False) as port:
        result = await one(f"{a}:{port}")
    assert result.verdict == "in-use-unlisted"
    assert not result.bindable
    assert result.bind.errno == "EADDRINUSE"
    assert not result.table_agrees
    assert not result.blockers
    assert result.probe is not None
    assert result.probe.state is ProbeState.REFUSED
    assert "Trust the bind" in result.sentences[0]
    assert any(f"sport = :{port}" in way for way in result.ways_out)


async def test_a_stale_table_entry_loses_to_a_real_bind(spare_loopback: Spare) -> None:
    a = spare_loopback(1)[0]
    with holding(str(a)) as port:
        pass
    ghost = Listener(a, port, "tcp", Owner(None, None, None, None))
    result = await one(f"{a}:{port}", table=[ghost])
    assert result.bindable
    assert result.verdict == "free"
    assert not result.table_agrees
    assert [b.listener for b in result.blockers] == [ghost]
    assert "Trust the bind" in result.sentences[0]


async def test_what_localhost_would_reach(spare_loopback: Spare) -> None:
    a = str(spare_loopback(1)[0])
    with holding("127.0.0.1") as port:
        result = await one(f"{a}:{port}")
    resolved = await resolve("localhost", port)
    assert [x.address for x in result.localhost] == resolved
    for entry in result.localhost:
        assert entry.listening == (entry.address == "127.0.0.1")
    if "127.0.0.1" in resolved:
        assert f"reaches 127.0.0.1:{port}, not {a}:{port}" in " ".join(result.sentences)


def _record(address: str, port: int) -> SandboxRecord:
    service = ServiceRecord("db", "tcp", address, port, f"tcp://{address}:{port}", "/l/db.log")
    return SandboxRecord(
        name="demo",
        profile="demo",
        profile_path=None,
        supervisor=ref_for(os.getpid()),
        started_at=time.time(),
        status="running",
        services=(service,),
    )


async def test_a_service_of_a_running_sandbox(spare_loopback: Spare, tmp_path: Path) -> None:
    a = str(spare_loopback(1)[0])
    with holding(a) as port:
        StateDir(tmp_path, "demo").write(_record(a, port))
        result = await one("demo/db", state_root=tmp_path)
    assert result.target == "demo/db"
    assert result.endpoint == f"{a}:{port}"
    assert result.verdict == "in-use-exact"
    assert any("`sandbox down demo`" in way for way in result.ways_out)
    assert not any("`kill" in way for way in result.ways_out)
    owner = result.to_json()["blockers"][0]["listener"]["owner"]  # type: ignore[index]
    assert owner["sandbox"] == "demo"


async def test_unknown_sandbox_service_or_state_root(spare_loopback: Spare, tmp_path: Path) -> None:
    StateDir(tmp_path, "demo").write(_record(str(spare_loopback(1)[0]), 5))
    with pytest.raises(UsageError, match='no service "web"; it has: db'):
        await explain("demo/web", state_root=tmp_path)
    with pytest.raises(UsageError, match='No sandbox named "other" is running'):
        await explain("other/db", state_root=tmp_path)
    with pytest.raises(UsageError, match="no state folder"):
        await explain("demo/db", state_root=None)


async def test_a_profile_yields_one_explanation_per_service(
    spare_loopback: Spare, tmp_path: Path
) -> None:
    pool = ipaddress.IPv4Network(f"{spare_loopback(1)[0]}/24", strict=False)
    a, b, c = (str(pool.network_address + n) for n in (1, 2, 3))
    with holding(a) as port:
        path = tmp_path / "demo.yaml"
        path.write_text(
            f"name: demo\npool: {pool}\nservices:\n"
            f"  db: {{kind: tcp, address: {a}, port: {port}}}\n"
            f"  api: {{kind: tcp, address: {b}, port: auto}}\n"
        )
        results = await explain(str(path), state_root=None)
    by_target = {r.target: r for r in results}
    assert set(by_target) == {"demo/db", "demo/api"}
    db, api = by_target["demo/db"], by_target["demo/api"]
    assert db.verdict == "in-use-exact"
    # The next address of the pool that another service of the profile does not use.
    assert db.free_address == c
    assert any("`sandbox up demo`" in way for way in db.ways_out)
    assert api.verdict == "any-port"
    assert api.bindable


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("10.0.0.1:80", "not a loopback address"),
        ("0.0.0.0:80", "wildcard"),
        ("[::]:80", "wildcard"),
        ("no-such-profile-here", "neither ADDRESS:PORT"),
    ],
)
async def test_targets_that_are_not_loopback_are_refused(target: str, words: str) -> None:
    with pytest.raises(UsageError, match=words):
        await explain(target, state_root=None)


async def test_render_prints_the_sentences_and_ways_out(spare_loopback: Spare) -> None:
    a = str(spare_loopback(1)[0])
    with holding(a) as port:
        results = await explain(f"{a}:{port}", state_root=None)
    stream = io.StringIO()
    render(results, Printer(out=stream, err=io.StringIO(), colour=False))
    text = stream.getvalue()
    assert text.startswith(f"{a}:{port}  in-use-exact\n")
    assert "Ways out:" in text
    assert f"`kill {os.getpid()}`" in text
    flat = " ".join(text.split())
    for sentence in results[0].sentences + results[0].ways_out:
        assert " ".join(sentence.split()) in flat


# -- wildcard and dual-stack holders, only inside a private network namespace ----------------


def explain_in_namespace(holder: str, v6only: int | None, target: str) -> None:
    """In the namespace child: hold HOLDER:0, explain TARGET on that port, print the JSON."""
    with holding(holder, v6only=v6only) as port:
        results = asyncio.run(explain(format_hostport(target, port), state_root=None))
    facts = [r.to_json() for r in results]
    print(json.dumps({"pid": os.getpid(), "port": port, "results": facts}))


@pytest.mark.netns
@pytest.mark.parametrize(
    ("holder", "v6only", "target", "verdict", "rules", "free_address"),
    [
        ("0.0.0.0", None, "127.0.0.2", "blocked-by-wildcard", ["wildcard"], "::1"),
        ("0.0.0.0", None, "::1", "refused-neighbour", [], None),
        ("::", 0, "127.0.0.2", "blocked-by-dual-stack", ["dual-stack"], None),
        ("::", 0, "::1", "blocked-by-wildcard", ["wildcard"], None),
        ("::", 1, "127.0.0.2", "refused-neighbour", [], None),
        ("::", 1, "::1", "blocked-by-wildcard", ["wildcard"], "127.0.0.2"),
    ],
)
def test_wildcard_and_dual_stack_holders_in_a_namespace(
    holder: str,
    v6only: int | None,
    target: str,
    verdict: str,
    rules: list[str],
    free_address: str | None,
) -> None:
    call = f"explain_in_namespace({holder!r}, {v6only!r}, {target!r})"
    seen = netns_json(f"from tests.teach.test_explain import explain_in_namespace; {call}")
    [result] = seen["results"]
    port = seen["port"]
    assert result["verdict"] == verdict
    assert [b["rule"] for b in result["blockers"]] == rules
    assert result["bindable"] == (not rules)
    assert result["bind"]["errno"] == (None if not rules else "EADDRINUSE")
    assert result["free_address"] == free_address
    assert result["probe"]["state"] == ("refused" if not rules else "open")
    listener = result["blockers"][0]["listener"] if rules else result["neighbours"][0]
    assert (listener["address"], listener["port"]) == (holder, port)
    assert listener["owner"]["pid"] == seen["pid"]
    if rules:  # the holder's own port would do on another number, never on another 127.x
        assert result["free_port"] not in (None, port)
        assert not any("next-address" in way for way in result["ways_out"])
    else:
        wildcard = "127.0.0.1" if holder == "0.0.0.0" else "[::1]"
        assert result["ways_out"][0].startswith(f"Dial {wildcard}:{port} instead")
