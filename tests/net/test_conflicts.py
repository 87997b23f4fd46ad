"""Tests for sandbox.net.conflicts: the rules on hand-built tables, then against the kernel."""

from __future__ import annotations

import errno
import ipaddress
import json
import socket
from collections.abc import Callable
from typing import Any

import pytest

from sandbox.errors import BindError
from sandbox.net.addresses import IPAddress
from sandbox.net.conflicts import (
    Blocker,
    blockers,
    is_free,
    next_free_address,
    next_free_port,
)
from sandbox.net.listeners import Listener, Owner
from sandbox.net.sockets import bind_listener, bound_address
from sandbox.net.table import read_bindv6only, read_table
from tests.netns import netns_json

Spare = Callable[[int], list[ipaddress.IPv4Address]]
ip = ipaddress.ip_address
PG = Owner(4127, "postgres", "postgres -D /var/lib/pg", "postgres")
HIDDEN = Owner(None, None, None, None)


def at(address: str, port: int = 5432, *, v6only: bool | None = None, **kw: Any) -> Listener:
    return Listener(ip(address), port, kw.get("protocol", "tcp"), kw.get("owner", PG), v6only)


def rules(address: str, port: int, table: list[Listener], **kw: Any) -> list[str]:
    return [b.rule for b in blockers(ip(address), port, table, **kw)]


@pytest.mark.parametrize(
    ("held", "target", "expected"),
    [
        # exact, and what coexists with it
        (at("127.0.0.2"), "127.0.0.2", ["exact"]),
        (at("127.0.0.2"), "127.0.0.3", []),
        (at("127.0.0.1"), "::1", []),
        (at("::1"), "127.0.0.1", []),
        (at("::1"), "::1", ["exact"]),
        # the IPv4 wildcard takes the port on every IPv4 address, never on IPv6
        (at("0.0.0.0"), "127.0.0.2", ["wildcard"]),
        (at("0.0.0.0"), "127.0.0.1", ["wildcard"]),
        (at("0.0.0.0"), "::1", []),
        # [::] takes ::1 always; IPv4 only when dual-stack
        (at("::", v6only=False), "::1", ["wildcard"]),
        (at("::", v6only=True), "::1", ["wildcard"]),
        (at("::", v6only=False), "127.0.0.2", ["dual-stack"]),
        (at("::", v6only=True), "127.0.0.2", []),
        (at("::"), "127.0.0.2", ["dual-stack"]),  # unknown: the default is dual-stack
        # an IPv4-mapped listener is an IPv4 listener
        (at("::ffff:127.0.0.2"), "127.0.0.2", ["mapped"]),
        (at("::ffff:127.0.0.2"), "127.0.0.3", []),
        (at("::ffff:127.0.0.2"), "::1", []),
        (at("::ffff:0.0.0.0"), "127.0.0.2", ["wildcard"]),
        # other ports, other protocols, other machines' addresses
        (at("127.0.0.2", 5433), "127.0.0.2", []),
        (at("127.0.0.2", protocol="udp"), "127.0.0.2", []),
        (at("192.168.1.5"), "127.0.0.2", []),
    ],
)
def test_rules(held: Listener, target: str, expected: list[str]) -> None:
    assert rules(target, 5432, [held]) == expected


def test_unknown_v6only_follows_the_system_default() -> None:
    table = [at("::")]
    assert rules("127.0.0.2", 5432, table, default_v6only=True) == []
    assert rules("127.0.0.2", 5432, table, default_v6only=False) == ["dual-stack"]
    # What the listener itself reports wins over the default.
    assert rules("127.0.0.2", 5432, [at("::", v6only=False)], default_v6only=True) == ["dual-stack"]


def test_port_0_never_conflicts() -> None:
    table = [at("127.0.0.2", 0), at("0.0.0.0", 0), at("::", 0)]
    assert blockers(ip("127.0.0.2"), 0, table) == []
    assert is_free(ip("127.0.0.2"), 0, table)


def test_udp_rules_use_udp_sockets_only() -> None:
    table = [at("0.0.0.0", 53, protocol="udp"), at("127.0.0.2", 53)]
    assert rules("127.0.0.2", 53, table, protocol="udp") == ["wildcard"]
    assert rules("127.0.0.2", 53, table, protocol="tcp") == ["exact"]


def test_every_blocker_is_listed() -> None:
    table = [at("127.0.0.2"), at("0.0.0.0"), at("::", v6only=False), at("127.0.0.3")]
    assert rules("127.0.0.2", 5432, table) == ["exact", "wildcard", "dual-stack"]


def test_a_mapped_target_is_checked_as_ipv4() -> None:
    assert rules("::ffff:127.0.0.2", 5432, [at("127.0.0.2")]) == ["exact"]


@pytest.mark.parametrize("target", ["0.0.0.0", "::"])
def test_a_wildcard_target_is_refused(target: str) -> None:
    with pytest.raises(ValueError, match="wildcard"):
        blockers(ip(target), 5432, [])


def test_wildcard_reason_and_fix() -> None:
    (found,) = blockers(ip("127.0.0.5"), 5432, [at("0.0.0.0")])
    assert found == Blocker(
        at("0.0.0.0"),
        "wildcard",
        'taken by pid 4127 "postgres -D /var/lib/pg" (user postgres) (listening on '
        "0.0.0.0:5432, which blocks the port on every 127.x address)",
        found.fix,
    )
    assert found.fix.startswith("Stop pid 4127 (`kill 4127`)")
    assert "--on-conflict next-port" in found.fix
    assert "another 127.x address cannot help" in found.fix
    assert "(::1 can: 0.0.0.0:5432 leaves IPv6 alone)" in found.fix
    assert "next-address" not in found.fix


def test_dual_stack_reason_says_whether_it_is_known() -> None:
    (known,) = blockers(ip("127.0.0.5"), 5432, [at("::", v6only=False)])
    (assumed,) = blockers(ip("127.0.0.5"), 5432, [at("::")])
    assert "listening on [::]:5432, dual-stack, which blocks" in known.reason
    assert "dual-stack unless it set IPV6_V6ONLY" in assumed.reason
    assert "another address cannot help" in known.fix


@pytest.mark.parametrize(("held", "rule"), [("127.0.0.5", "exact"), ("::ffff:127.0.0.5", "mapped")])
def test_exact_and_mapped_fix_offers_another_address_or_port(held: str, rule: str) -> None:
    (found,) = blockers(ip("127.0.0.5"), 5432, [at(held)])
    assert found.rule == rule
    assert found.reason.startswith('taken by pid 4127 "postgres -D /var/lib/pg"')
    assert f"listening on [{held}]:5432" in found.reason or f"on {held}:5432" in found.reason
    assert "`kill 4127`" in found.fix
    assert "--on-conflict next-address" in found.fix
    assert "--on-conflict next-port" in found.fix


def test_an_owner_we_cannot_see_is_named_as_such() -> None:
    (found,) = blockers(ip("127.0.0.5"), 5432, [at("127.0.0.5", owner=HIDDEN)])
    assert "a process of another user" in found.reason
    assert "kill" not in found.fix
    assert "`sudo ss -lntp 'sport = :5432'`" in found.fix


def test_ipv6_wildcard_that_is_v6only_suggests_ipv4() -> None:
    (found,) = blockers(ip("::1"), 5432, [at("::", v6only=True)])
    assert found.rule == "wildcard"
    assert "every IPv6 address, ::1 included" in found.reason
    assert "127.x address" in found.fix


def test_next_free_port_skips_blocked_and_taken() -> None:
    addr = ip("127.0.0.5")
    table = [at("127.0.0.5", 8080), at("0.0.0.0", 8081), at("127.0.0.6", 8083)]
    assert next_free_port(addr, 8080, table) == 8082
    assert next_free_port(addr, 8080, table, taken=[(addr, 8082)]) == 8083
    assert next_free_port(addr, 8080, table, taken=[(ip("127.0.0.7"), 8082)]) == 8082
    assert next_free_port(addr, 8080, table, limit=8081) is None
    assert next_free_port(addr, 65535, [at("127.0.0.5", 65535)]) is None
    assert next_free_port(addr, 0, table) == 0


def test_next_free_address_skips_blocked_and_taken() -> None:
    table = [at("127.0.0.2"), at("::ffff:127.0.0.3")]
    candidates = [ip(f"127.0.0.{i}") for i in range(2, 7)]
    assert next_free_address(candidates, 5432, table) == ip("127.0.0.4")
    taken = [(ip("127.0.0.4"), 5432), (ip("127.0.0.5"), 1)]
    assert next_free_address(candidates, 5432, table, taken=taken) == ip("127.0.0.5")
    assert next_free_address(candidates, 5432, [at("0.0.0.0")]) is None
    assert next_free_address(iter(candidates), 5432, []) == ip("127.0.0.2")


# Against the kernel, in this namespace: exact listeners and what coexists with them.


def _outcome(address: IPAddress, port: int) -> int | None:
    """Bind address:port for real; None when it worked, else the errno."""
    try:
        bind_listener(address, port).close()
    except BindError as exc:
        return exc.errno
    return None


def _predicted(address: IPAddress, port: int) -> list[str]:
    table = read_table(protocols=("tcp",))
    return [b.rule for b in blockers(address, port, table, default_v6only=read_bindv6only())]


def test_exact_listener_prediction_matches_the_kernel(spare_loopback: Spare) -> None:
    held_addr, neighbour = spare_loopback(2)
    with bind_listener(held_addr, 0) as held:
        port = bound_address(held)[1]
        assert _predicted(held_addr, port) == ["exact"]
        assert _outcome(held_addr, port) == errno.EADDRINUSE
        assert _predicted(neighbour, port) == []
        assert _outcome(neighbour, port) is None


def test_ipv4_and_ipv6_localhost_coexist_as_predicted() -> None:
    try:
        v6 = bind_listener("::1", 0)
    except BindError:
        pytest.skip("::1 is not bindable here")
    with v6:
        port = bound_address(v6)[1]
        if not is_free(ip("127.0.0.1"), port, read_table(protocols=("tcp",))):
            pytest.skip(f"127.0.0.1:{port} happens to be taken by someone else")
        assert _predicted(ip("::1"), port) == ["exact"]
        assert _outcome(ip("::1"), port) == errno.EADDRINUSE
        with bind_listener("127.0.0.1", port) as v4:
            assert bound_address(v4) == (ip("127.0.0.1"), port)
            assert _predicted(ip("127.0.0.1"), port) == ["exact"]


# Against the kernel, in a private namespace: wildcard holders, prediction == reality.


def compare_in_namespace(holder: str, v6only: bool | None, reuse: bool, bindv6only: bool) -> None:
    """Runs in the namespace: hold `holder`:P, then predict and try every target on P."""
    with open("/proc/sys/net/ipv6/bindv6only", "w") as sysctl:
        sysctl.write("1" if bindv6only else "0")
    family = socket.AF_INET6 if ":" in holder else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as held:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, int(reuse))
        if v6only is not None:
            held.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
        held.bind((holder, 0))
        held.listen()
        port = held.getsockname()[1]
        result = {
            target: {"predicted": _predicted(ip(target), port), "errno": _outcome(ip(target), port)}
            for target in ("127.0.0.2", "127.0.0.1", "::1")
        }
    print(json.dumps(result))


W, D = ["wildcard"], ["dual-stack"]


@pytest.mark.netns
@pytest.mark.parametrize(
    ("holder", "v6only", "reuse", "bindv6only", "expected"),
    [
        ("0.0.0.0", None, True, False, {"127.0.0.2": W, "127.0.0.1": W, "::1": []}),
        ("0.0.0.0", None, False, False, {"127.0.0.2": W, "127.0.0.1": W, "::1": []}),
        ("::", False, True, False, {"127.0.0.2": D, "127.0.0.1": D, "::1": W}),
        ("::", False, False, True, {"127.0.0.2": D, "127.0.0.1": D, "::1": W}),
        ("::", None, True, False, {"127.0.0.2": D, "127.0.0.1": D, "::1": W}),
        ("::", True, True, False, {"127.0.0.2": [], "127.0.0.1": [], "::1": W}),
        ("::", None, True, True, {"127.0.0.2": [], "127.0.0.1": [], "::1": W}),
        (
            "::ffff:127.0.0.2",
            None,
            True,
            False,
            {"127.0.0.2": ["mapped"], "127.0.0.1": [], "::1": []},
        ),
        ("::ffff:0.0.0.0", None, True, False, {"127.0.0.2": W, "127.0.0.1": W, "::1": []}),
        ("127.0.0.2", None, True, False, {"127.0.0.2": ["exact"], "127.0.0.1": [], "::1": []}),
        ("127.0.0.1", None, True, False, {"127.0.0.2": [], "127.0.0.1": ["exact"], "::1": []}),
        ("::1", None, True, False, {"127.0.0.2": [], "127.0.0.1": [], "::1": ["exact"]}),
    ],
)
def test_prediction_matches_the_kernel_in_a_namespace(
    holder: str, v6only: bool | None, reuse: bool, bindv6only: bool, expected: dict[str, list[str]]
) -> None:
    call = f"compare_in_namespace({holder!r}, {v6only!r}, {reuse!r}, {bindv6only!r})"
    seen = netns_json(f"from tests.net.test_conflicts import compare_in_namespace; {call}")
    for target, outcome in seen.items():
        blocked = outcome["errno"] is not None
        # The key property: what blockers() predicts is what bind() does.
        assert bool(outcome["predicted"]) == blocked, (target, outcome)
        assert outcome["errno"] in (None, errno.EADDRINUSE), (target, outcome)
    # And both agree with the documented rules (FIELD-NOTES §3-5).
    assert {target: outcome["predicted"] for target, outcome in seen.items()} == expected
